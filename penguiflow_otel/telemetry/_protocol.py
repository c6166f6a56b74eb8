"""The synchronous hook interface the runtime calls at each lifecycle point, and its no-op default.

Every hook is synchronous, O(1), never awaits and never raises (implementations catch everything
internally). The runtime keeps the opaque values hooks return (trace handle, enqueue stamp,
attempt handle, context token) and hands them back; it never inspects them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeAlias

__all__ = [
    "NO_OP_HOOKS",
    "AttemptOutcome",
    "DropReason",
    "NoOpHooks",
    "RoutedOutcome",
    "TelemetryHooks",
    "TraceEndReason",
]

TraceEndReason: TypeAlias = Literal["ok", "cancelled", "stopped"]
AttemptOutcome: TypeAlias = Literal["success", "error", "timeout", "deadline", "cancelled", "stopped"]
RoutedOutcome: TypeAlias = Literal["ok", "cancelled", "stopped"]
DropReason: TypeAlias = Literal["cancelled", "deadline", "join_timeout", "stop", "duplicate"]
ConsumerKind: TypeAlias = Literal["state_store", "middleware", "bus", "redactor", "retry_on"]


class TelemetryHooks(Protocol):
    """What the runtime calls; telemetry.md section 7.1 specifies each point."""

    def flow_started(self, flow: object) -> None: ...
    def flow_stopped(self, flow: object, discarded: int) -> None: ...
    def trace_started(self, flow: object, item: object, producer: object) -> object: ...
    def trace_ended(self, handle: object, reason: TraceEndReason) -> None: ...
    def enqueue_started(self, floe: object, item: object, producer: object, handle: object) -> object: ...
    def enqueue_finished(self, stamp: object, waited_s: float) -> None:
        """A put completed. Called only when it waited (``waited_s > 0``) or its item is untraced (a
        payload-only root may be open); a traced put that never suspended needs nothing more."""

    def dequeued(self, floe: object, stamp: object) -> None: ...
    def result_fetched(self, floe: object, stamp: object) -> None: ...
    def attempt_started(
        self, node: object, stamp: object, attempt: int, item: object, previous: object
    ) -> object: ...
    def enter_attempt(self, attempt: object) -> object: ...
    def exit_attempt(self, token: object) -> None: ...
    def attempt_ended(
        self,
        attempt: object,
        outcome: AttemptOutcome,
        exc: BaseException | None,
        *,
        retry_delay_s: float | None,
        failure_code: str | None,
        timeout_s: float | None = None,
    ) -> None: ...
    def routed(self, attempt: object, outcome: RoutedOutcome, blocked_s: float) -> None: ...
    def failed(
        self,
        node: object,
        stamp: object,
        attempt: object,
        code: str,
        exc: BaseException | None,
        phase: str | None,
    ) -> None: ...
    def joined(self, attempt: object, stamps: Sequence[object]) -> None: ...
    def dropped(
        self, flow: object, node_name: str, stamp: object, reason: DropReason, count: int
    ) -> None: ...
    def cancel_accepted(self, handle: object, purged: int) -> None: ...
    def chunk_emitted(self, owner: object, chunk: object) -> None: ...
    def consumer_failed(self, flow: object, kind: ConsumerKind) -> None: ...


class NoOpHooks:
    """Hooks that do nothing; the runtime skips calling them altogether when it sees this type."""

    def flow_started(self, flow: object) -> None:
        return None

    def flow_stopped(self, flow: object, discarded: int) -> None:
        return None

    def trace_started(self, flow: object, item: object, producer: object) -> object:
        return None

    def trace_ended(self, handle: object, reason: TraceEndReason) -> None:
        return None

    def enqueue_started(self, floe: object, item: object, producer: object, handle: object) -> object:
        return None

    def enqueue_finished(self, stamp: object, waited_s: float) -> None:
        return None

    def dequeued(self, floe: object, stamp: object) -> None:
        return None

    def result_fetched(self, floe: object, stamp: object) -> None:
        return None

    def attempt_started(
        self, node: object, stamp: object, attempt: int, item: object, previous: object
    ) -> object:
        return None

    def enter_attempt(self, attempt: object) -> object:
        return None

    def exit_attempt(self, token: object) -> None:
        return None

    def attempt_ended(
        self,
        attempt: object,
        outcome: AttemptOutcome,
        exc: BaseException | None,
        *,
        retry_delay_s: float | None,
        failure_code: str | None,
        timeout_s: float | None = None,
    ) -> None:
        return None

    def routed(self, attempt: object, outcome: RoutedOutcome, blocked_s: float) -> None:
        return None

    def failed(
        self,
        node: object,
        stamp: object,
        attempt: object,
        code: str,
        exc: BaseException | None,
        phase: str | None,
    ) -> None:
        return None

    def joined(self, attempt: object, stamps: Sequence[object]) -> None:
        return None

    def dropped(self, flow: object, node_name: str, stamp: object, reason: DropReason, count: int) -> None:
        return None

    def cancel_accepted(self, handle: object, purged: int) -> None:
        return None

    def chunk_emitted(self, owner: object, chunk: object) -> None:
        return None

    def consumer_failed(self, flow: object, kind: ConsumerKind) -> None:
        return None


NO_OP_HOOKS = NoOpHooks()


def resolve_hooks(flow: Any) -> TelemetryHooks:
    """The hooks a flow uses until it stops: ``OTelHooks`` when a provider is resolved, else no-ops."""
    from ._resolve import resolve_providers

    providers = resolve_providers()
    if providers.tracer_provider is None and providers.meter_provider is None:
        return NO_OP_HOOKS
    from ._hooks import OTelHooks

    hooks: TelemetryHooks = OTelHooks(flow, providers.tracer_provider, providers.meter_provider)
    return hooks
