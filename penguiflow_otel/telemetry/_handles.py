"""The opaque values the runtime keeps for telemetry: trace handles, enqueue stamps, attempts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context

from .._errors import FlowError
from . import names as n

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Attempt", "Stamp", "TraceHandle", "description", "error_type_of"]

_perf = time.perf_counter
_DESCRIPTION_LIMIT = 256


class TraceHandle:
    """The root span of one flow trace and what its end needs."""

    __slots__ = (
        "base",
        "cancelled",
        "dropped",
        "error_code",
        "error_type",
        "root_context",
        "span",
        "started",
        "tenant",
    )

    def __init__(self, span: Span, tenant: str | None) -> None:
        self.span = span
        # The context current where the trace began (an HTTP server span's baggage, say): attempts
        # of this trace run in it, never in whatever the worker task inherited.
        self.base = otel_context.get_current()
        self.root_context: otel_context.Context | None = None
        self.started = _perf()
        self.tenant = tenant
        self.dropped = 0
        self.error_type: str | None = None
        self.error_code: str | None = None
        self.cancelled = False

    def fail(self, error_type: str, code: str | None) -> None:
        """Remember the first terminal failure of the trace."""
        if self.error_type is None:
            self.error_type = error_type
            self.error_code = code


class Stamp:
    """Carried beside each queued item: producer span, trace handle, enqueue time, item deadline."""

    __slots__ = ("deadline", "handle", "parent", "payload_root", "queue", "queued_at")

    def __init__(
        self, parent: Span | None, handle: TraceHandle | None, queue: str, deadline: float | None = None
    ) -> None:
        self.parent = parent
        self.handle = handle
        self.queue = queue
        self.queued_at = _perf()
        self.payload_root = False
        self.deadline = deadline  # a deadline skip's span carries it (telemetry.md section 7.2)


class Attempt:
    """One node attempt."""

    __slots__ = ("chunks", "first_chunk_s", "invoked_s", "node_name", "own_span", "span", "stamp", "started")

    def __init__(self, span: Span, own_span: bool, stamp: Stamp | None, node_name: str) -> None:
        self.span = span
        self.own_span = own_span
        self.stamp = stamp
        self.node_name = node_name
        self.started = _perf()
        self.invoked_s: float | None = None
        self.chunks = 0
        self.first_chunk_s: float | None = None


def error_type_of(exc: BaseException | None, outcome: str) -> str:
    """``error.type`` for a failed attempt: ``timeout``, ``deadline_exceeded`` or the class name."""
    if outcome == "timeout":
        return n.ERROR_TYPE_TIMEOUT
    if outcome == "deadline":
        return n.ERROR_TYPE_DEADLINE_EXCEEDED
    if isinstance(exc, FlowError) and exc.original_exc is not None:
        exc = exc.original_exc
    return type(exc).__name__ if exc is not None else n.OTHER


def description(exc: BaseException | None) -> str | None:
    """The status description: the exception text, truncated; ``None`` without an exception."""
    if exc is None:
        return None
    from .._dispatch import exception_text

    return exception_text(exc)[:_DESCRIPTION_LIMIT]
