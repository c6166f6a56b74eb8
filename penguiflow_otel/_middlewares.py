"""The middleware seam: async observers of :class:`FlowEvent`, and a logging middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol, TypeAlias

from ._events import FlowEvent

__all__ = ["LatencyCallback", "Middleware", "log_flow_events"]

LatencyCallback: TypeAlias = Callable[[str, float, FlowEvent], None]
"""Called as ``(event_type, latency_ms, event)``, e.g. to feed a histogram."""

_DEFAULT_LOGGER: Final = "penguiflow_otel.middlewares"
_CALLBACK_ERROR: Final = "log_flow_events_latency_callback_error"
_TIMED_EVENTS: Final = frozenset({"node_success", "node_error"})


class Middleware(Protocol):
    """An observer the flow awaits for each event, in registration order; it must not change outcomes."""

    async def __call__(self, event: FlowEvent) -> None: ...


def log_flow_events(
    logger: logging.Logger | None = None,
    *,
    start_level: int = logging.INFO,
    success_level: int = logging.INFO,
    error_level: int = logging.ERROR,
    latency_callback: LatencyCallback | None = None,
) -> Middleware:
    """A middleware that logs ``node_start``, ``node_success`` and ``node_error``; others are ignored.

    Each record's message is the event type and its attributes are ``event.to_payload()`` (plus
    ``error_payload`` on a ``node_error`` that carries one).

    Args:
        logger: Where to log; defaults to the ``penguiflow_otel.middlewares`` logger.
        start_level: Level of ``node_start`` records.
        success_level: Level of ``node_success`` records.
        error_level: Level of ``node_error`` records.
        latency_callback: Called for success and error events that have a latency. If it raises,
            the failure is logged with its traceback and swallowed.
    """
    log = logger if logger is not None else logging.getLogger(_DEFAULT_LOGGER)
    levels = {"node_start": start_level, "node_success": success_level, "node_error": error_level}

    async def middleware(event: FlowEvent) -> None:
        level = levels.get(event.event_type)
        if level is None:
            return
        payload = event.to_payload()
        error = event.error_payload
        if event.event_type == "node_error" and error is not None:
            payload["error_payload"] = dict(error)
        log.log(level, event.event_type, extra=payload)
        if latency_callback is None or event.event_type not in _TIMED_EVENTS or event.latency_ms is None:
            return
        try:
            latency_callback(event.event_type, float(event.latency_ms), event)
        except Exception:
            log.exception(
                _CALLBACK_ERROR,
                extra={
                    "event": _CALLBACK_ERROR,
                    "node_name": event.node_name,
                    "node_id": event.node_id,
                    "trace_id": event.trace_id,
                },
            )

    return middleware
