"""What a flow's workers share and hold: node runtimes, worker states and their phases.

``phase`` records what a worker is doing with the item it holds, so the one ``except
CancelledError`` branch of the worker loop knows which telemetry handle is open.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._context import Context
    from ._edge import Floe, Inbox
    from ._node import Node
    from ._runner import PenguiFlow
    from ._traces import TraceRecord

__all__ = [
    "ATTEMPT",
    "BACKOFF",
    "CANCELLING",
    "CURRENT_WORKER",
    "DONE",
    "HELD",
    "IDLE",
    "ROUTE",
    "NodeRuntime",
    "WorkerState",
    "attempt_ended",
    "egress_floe",
]

CURRENT_WORKER: ContextVar[WorkerState | None] = ContextVar("penguiflow_otel_worker", default=None)

IDLE, HELD, ATTEMPT, BACKOFF, ROUTE, CANCELLING, DONE = range(7)


class NodeRuntime:
    """What the workers of one node share in one flow."""

    __slots__ = ("ctx", "direct", "inbox", "inflight", "is_egress", "node", "out_floes", "self_floe")

    def __init__(
        self, node: Node, ctx: Context, inbox: Inbox, out_floes: list[Floe], is_egress: bool
    ) -> None:
        self.node = node
        self.ctx = ctx
        self.inbox = inbox
        self.out_floes = out_floes
        self.is_egress = is_egress
        self.inflight = 0
        self.direct = True
        self.self_floe = next((floe for floe in out_floes if floe.target is node), None)


class WorkerState:
    """One worker: the item it holds, its phase, and its trace-cancel flag."""

    __slots__ = (
        "cancel_requested",
        "handle",
        "item",
        "node_rt",
        "phase",
        "record",
        "stamp",
        "task",
        "woke_fetch",
    )

    def __init__(self, node_rt: NodeRuntime) -> None:
        self.node_rt = node_rt
        self.task: asyncio.Task[None] | None = None
        self.item: object = None
        self.record: TraceRecord | None = None
        self.stamp: object = None
        self.handle: object = None
        self.phase = IDLE
        self.cancel_requested = False
        self.woke_fetch = False


def egress_floe(rt: NodeRuntime) -> Floe | None:
    """The node's edge to the Rookery, if it is an egress node."""
    if not rt.is_egress:
        return None
    for floe in rt.out_floes:
        if floe._inbox is None:
            return floe
    return None  # pragma: no cover - an egress node always has its egress edge


def attempt_ended(
    flow: PenguiFlow,
    handle: object,
    outcome: Any,
    exc: BaseException | None,
    delay: float | None,
    code: str | None,
    timeout_s: float | None = None,
) -> None:
    """Call the ``attempt_ended`` hook with the runtime's positional shorthand."""
    flow._hooks.attempt_ended(
        handle, outcome, exc, retry_delay_s=delay, failure_code=code, timeout_s=timeout_s
    )
