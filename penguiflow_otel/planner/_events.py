"""Planner events: the ``PlannerEvent`` value, and the emitter that feeds callbacks and logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

__all__ = ["EventCallback", "EventEmitter", "PlannerEvent", "PlannerEventType"]

LOGGER = logging.getLogger("penguiflow_otel.planner")

PlannerEventType: TypeAlias = Literal[
    "run_start",
    "run_end",
    "step_start",
    "step_end",
    "llm_call_start",
    "llm_call_end",
    "llm_stream_chunk",
    "repair_attempt",
    "tool_call_start",
    "tool_call_end",
    "stream_chunk",
    "observation_clamped",
    "pause",
    "resume",
    "finish",
    "budget_exhausted",
]
_INFO_EVENTS = frozenset({"finish", "pause"})
_CONTENT_LOG_LIMIT = 2_000


@dataclass(frozen=True, slots=True)
class PlannerEvent:
    """Something that happened in a planner run; ``extra`` holds the event's own fields (read-only)."""

    event_type: PlannerEventType
    ts: float
    run_id: str
    session_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    trajectory_step: int | None = None
    node_name: str | None = None
    tool_call_id: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_payload(self) -> dict[str, Any]:
        """The event as one flat dict (``extra``'s keys beside the standard fields)."""
        payload: dict[str, Any] = {
            "event_type": self.event_type,
            "ts": self.ts,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "trajectory_step": self.trajectory_step,
            "node_name": self.node_name,
            "tool_call_id": self.tool_call_id,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }
        for key, value in self.extra.items():
            payload.setdefault(key, value)
        return payload


EventCallback: TypeAlias = Callable[[PlannerEvent], None]


class EventEmitter:
    """Builds events for one ``run()``/``resume()`` call and hands them to callbacks and the log.

    Callback failures are logged once per exception type and ignored. Log records carry ids,
    the tool name, latency and the error class; content (``extra``) only with capture on.
    """

    __slots__ = ("_callbacks", "_capture", "_failed_types", "run_id", "session_id")

    def __init__(
        self,
        callbacks: tuple[EventCallback, ...],
        *,
        run_id: str,
        session_id: str | None,
        capture_content: bool,
    ) -> None:
        self._callbacks = callbacks
        self._capture = capture_content
        self._failed_types: set[type[BaseException]] = set()
        self.run_id = run_id
        self.session_id = session_id

    def emit(
        self,
        event_type: PlannerEventType,
        *,
        ids: tuple[str | None, str | None] = (None, None),
        step: int | None = None,
        node_name: str | None = None,
        tool_call_id: str | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        **extra: Any,
    ) -> None:
        """Emit one event; ``ids`` is the ``(trace_id, span_id)`` of the span it belongs to."""
        event = PlannerEvent(
            event_type=event_type,
            ts=time.time(),
            run_id=self.run_id,
            session_id=self.session_id,
            trace_id=ids[0],
            span_id=ids[1],
            trajectory_step=step,
            node_name=node_name,
            tool_call_id=tool_call_id,
            latency_ms=latency_ms,
            error=error,
            extra=MappingProxyType(extra),
        )
        self._log(event)
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception as exc:
                if type(exc) not in self._failed_types:
                    self._failed_types.add(type(exc))
                    LOGGER.warning(
                        "planner event callback raised %s; ignored (logged once per type)",
                        type(exc).__name__,
                        exc_info=exc,
                    )

    def _log(self, event: PlannerEvent) -> None:
        level = logging.INFO if event.event_type in _INFO_EVENTS else logging.DEBUG
        if not LOGGER.isEnabledFor(level):
            return
        fields = [f"run_id={event.run_id}", f"trace_id={event.trace_id}", f"span_id={event.span_id}"]
        if event.trajectory_step is not None:
            fields.append(f"step={event.trajectory_step}")
        if event.node_name:
            fields.append(f"tool={event.node_name}")
        if event.tool_call_id:
            fields.append(f"tool_call_id={event.tool_call_id}")
        if event.latency_ms is not None:
            fields.append(f"latency_ms={event.latency_ms:.1f}")
        for key in ("error_type", "reason", "failure_reason"):
            if key in event.extra:
                fields.append(f"{key}={event.extra[key]}")
        if self._capture and event.extra:
            fields.append(f"content={dict(event.extra)!r}"[:_CONTENT_LOG_LIMIT])
        LOGGER.log(level, "planner %s %s", event.event_type, " ".join(fields))
