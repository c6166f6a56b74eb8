"""The runtime's exception hierarchy.

::

    Exception
     ├── FlowError          code (a FlowErrorCode value), trace_id, to_payload(), __cause__
     └── TraceCancelled     .trace_id
    RuntimeError
     └── CycleError         bad graph at build time
    PermissionError
     └── TenantMismatch     names neither tenant

Cancellation itself travels as :class:`asyncio.CancelledError`, which no ``except Exception`` swallows.
The planner keeps its own errors module.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = ["CycleError", "FlowError", "FlowErrorCode", "TenantMismatch", "TraceCancelled"]


class FlowErrorCode(str, Enum):
    """Stable error codes carried by :class:`FlowError`."""

    NODE_TIMEOUT = "NODE_TIMEOUT"
    NODE_EXCEPTION = "NODE_EXCEPTION"
    TRACE_CANCELLED = "TRACE_CANCELLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    HOP_BUDGET_EXHAUSTED = "HOP_BUDGET_EXHAUSTED"
    TOKEN_BUDGET_EXHAUSTED = "TOKEN_BUDGET_EXHAUSTED"
    JOIN_TIMEOUT = "JOIN_TIMEOUT"


class FlowError(Exception):
    """A node's terminal failure, delivered as a value or raised.

    ``__cause__`` is the original exception, as ``raise ... from`` would set it.
    """

    def __init__(
        self,
        *,
        trace_id: str | None,
        node_name: str | None,
        code: FlowErrorCode | str,
        message: str,
        original_exc: BaseException | None = None,
        node_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.node_name = node_name
        self.node_id = node_id
        self.code: str = code.value if isinstance(code, FlowErrorCode) else str(code)
        self.message = message
        self.original_exc = original_exc
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.exception_type: str | None = type(original_exc).__name__ if original_exc is not None else None
        super().__init__(self._render())
        self.__cause__ = original_exc

    def _render(self) -> str:
        parts = [f"[{self.code}] {self.message}"]
        if self.trace_id:
            parts.append(f"trace={self.trace_id}")
        if self.node_name:
            parts.append(f"node={self.node_name}")
        return " ".join(parts)

    def __str__(self) -> str:
        return self._render()

    def unwrap(self) -> BaseException | None:
        """Return the original exception, if any."""
        return self.original_exc

    def to_payload(self) -> dict[str, Any]:
        """A JSON-friendly mapping: code and message, plus every present, non-empty field."""
        payload: dict[str, Any] = {"code": self.code, "message": self.message}
        for key in ("trace_id", "node_name", "node_id", "exception_type"):
            value = getattr(self, key)
            if value:
                payload[key] = value
        if self.metadata:
            payload["metadata"] = dict(self.metadata)
        return payload

    @classmethod
    def from_exception(
        cls,
        *,
        trace_id: str | None,
        node_name: str | None,
        node_id: str | None,
        exc: BaseException,
        code: FlowErrorCode | str,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> FlowError:
        """Build a FlowError around ``exc``; the message falls back to ``str(exc)``, then its class."""
        text = message or str(exc) or type(exc).__name__
        return cls(
            trace_id=trace_id,
            node_name=node_name,
            node_id=node_id,
            code=code,
            message=text,
            original_exc=exc,
            metadata=metadata,
        )


class TraceCancelled(Exception):
    """Raised to a trace-scoped caller whose trace was cancelled."""

    def __init__(self, trace_id: str | None) -> None:
        self.trace_id = trace_id
        super().__init__(f"trace cancelled: {trace_id}")


class CycleError(RuntimeError):
    """The flow's graph has a cycle and ``allow_cycles`` is off."""


class TenantMismatch(PermissionError):
    """A caller's tenant differs from the tenant bound to a trace. Names neither tenant."""

    def __init__(self, trace_id: str | None) -> None:
        self.trace_id = trace_id
        super().__init__(f"tenant mismatch for trace '{trace_id}'")
