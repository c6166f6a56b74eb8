"""``ToolContext``: what a tool receives as ``ctx``, and the signal that pauses a run."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, NoReturn, TypeAlias, get_args

__all__ = ["ChunkSink", "PauseSignal", "PlannerPauseReason", "ToolContext"]

PlannerPauseReason: TypeAlias = Literal[
    "approval_required", "await_input", "external_event", "constraints_conflict"
]
ChunkSink: TypeAlias = Callable[[dict[str, Any]], None]

_PAUSE_REASONS: tuple[str, ...] = get_args(PlannerPauseReason)


class PauseSignal(BaseException):
    """Raised by :meth:`ToolContext.pause` to stop the tool; the planner turns it into a pause.

    A ``BaseException``, so a tool's ``except Exception`` does not swallow it.
    """

    def __init__(self, reason: PlannerPauseReason, payload: Any) -> None:
        super().__init__(reason)
        self.reason: PlannerPauseReason = reason
        self.payload = payload


class ToolContext:
    """The ``ctx`` of a tool call.

    Attributes:
        llm_context: The run's ``llm_context`` (read-only).
        tool_context: The run's ``tool_context``: a mutable dict shared by the run's tools.
        tool_name: This tool's catalog name.
        tool_call_id: This call's id (``call_<step>``, ``call_<step>_<i>`` or ``call_<step>_join``).
        session_id: The planner session, if any.
        trace_id: ``tool_context["trace_id"]``, else the run's OpenTelemetry trace id.
    """

    __slots__ = (
        "_chunk_sink",
        "_deadline",
        "_pause_enabled",
        "llm_context",
        "session_id",
        "tool_call_id",
        "tool_context",
        "tool_name",
        "trace_id",
    )

    def __init__(
        self,
        *,
        llm_context: Mapping[str, Any] | None = None,
        tool_context: dict[str, Any] | None = None,
        tool_name: str = "",
        tool_call_id: str = "",
        session_id: str | None = None,
        trace_id: str | None = None,
        deadline_remaining: Callable[[], float | None] | None = None,
        pause_enabled: bool = True,
        chunk_sink: ChunkSink | None = None,
    ) -> None:
        self.llm_context: Mapping[str, Any] = MappingProxyType(dict(llm_context or {}))
        self.tool_context: dict[str, Any] = tool_context if tool_context is not None else {}
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id
        self.session_id = session_id
        self.trace_id = trace_id
        self._deadline = deadline_remaining
        self._pause_enabled = pause_enabled
        self._chunk_sink = chunk_sink

    def __repr__(self) -> str:
        return f"ToolContext(tool_name={self.tool_name!r}, tool_call_id={self.tool_call_id!r})"

    @property
    def deadline_remaining_s(self) -> float | None:
        """Seconds left before the run's deadline, or ``None`` without one."""
        return None if self._deadline is None else self._deadline()

    async def pause(self, reason: PlannerPauseReason, payload: Any = None) -> NoReturn:
        """Stop this tool and pause the run; the caller gets a ``PlannerPause`` with a resume token.

        Raises:
            RuntimeError: The planner has ``pause_enabled=False``.
            ValueError: ``reason`` is not a ``PlannerPauseReason``.
            TypeError: ``payload`` is not JSON-serialisable.
        """
        if not self._pause_enabled:
            raise RuntimeError("pausing is disabled for this planner (pause_enabled=False)")
        if reason not in _PAUSE_REASONS:
            raise ValueError(f"pause reason must be one of {', '.join(_PAUSE_REASONS)}; got {reason!r}")
        try:
            json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"pause payload must be JSON-serialisable: {exc}") from exc
        raise PauseSignal(reason, payload)

    async def emit_chunk(
        self,
        stream_id: str,
        seq: int,
        text: str,
        *,
        done: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Stream a piece of text to the run's event callbacks (a ``stream_chunk`` event)."""
        if self._chunk_sink is not None:
            self._chunk_sink(
                {"stream_id": stream_id, "seq": seq, "text": text, "done": done, "meta": dict(meta or {})}
            )
