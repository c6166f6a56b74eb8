"""Typed runtime events (:class:`FlowEvent`) and their debugging view.

A FlowEvent exists for the compatibility consumers: the ``penguiflow_otel.core`` logger, the state
store and middlewares. Telemetry never reads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["FlowEvent", "format_flow_event"]

_TAG_TYPES = (str, int, float, bool)


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """One runtime event about a node, a trace or an endpoint.

    ``extra`` is stored as a read-only copy of the mapping given.
    """

    event_type: str
    ts: float
    node_name: str | None
    node_id: str | None
    trace_id: str | None
    attempt: int
    latency_ms: float | None
    queue_depth_in: int
    queue_depth_out: int
    outgoing_edges: int
    queue_maxsize: int
    trace_pending: int | None
    trace_inflight: int
    trace_cancelled: bool
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copy first, so later changes to the caller's mapping do not show through.
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def error_payload(self) -> Mapping[str, Any] | None:
        """A read-only copy of ``extra["flow_error"]`` when it is a mapping, else ``None``."""
        raw = self.extra.get("flow_error")
        if isinstance(raw, Mapping):
            return MappingProxyType(dict(raw))
        return None

    @property
    def queue_depth(self) -> int:
        """Incoming plus outgoing queue depth."""
        return self.queue_depth_in + self.queue_depth_out

    def to_payload(self) -> dict[str, Any]:
        """A fresh dict for structured logs: the core fields, ``trace_pending`` when set, then ``extra``."""
        payload: dict[str, Any] = {
            "ts": self.ts,
            "event": self.event_type,
            "node_name": self.node_name,
            "node_id": self.node_id,
            "trace_id": self.trace_id,
            "latency_ms": self.latency_ms,
            "q_depth_in": self.queue_depth_in,
            "q_depth_out": self.queue_depth_out,
            "q_depth_total": self.queue_depth,
            "outgoing": self.outgoing_edges,
            "queue_maxsize": self.queue_maxsize,
            "attempt": self.attempt,
            "trace_inflight": self.trace_inflight,
            "trace_cancelled": self.trace_cancelled,
        }
        if self.trace_pending is not None:
            payload["trace_pending"] = self.trace_pending
        payload.update(self.extra)
        return payload

    def metric_samples(self) -> dict[str, float]:
        """Numeric samples; a float-convertible ``extra["latency_ms"]`` overrides ``latency_ms``."""
        samples: dict[str, float] = {
            "queue_depth_in": float(self.queue_depth_in),
            "queue_depth_out": float(self.queue_depth_out),
            "queue_depth_total": float(self.queue_depth),
            "attempt": float(self.attempt),
            "trace_inflight": float(self.trace_inflight),
            "trace_cancelled": 1.0 if self.trace_cancelled else 0.0,
        }
        if self.trace_pending is not None:
            samples["trace_pending"] = float(self.trace_pending)
        if self.latency_ms is not None:
            samples["latency_ms"] = float(self.latency_ms)
        override = self.extra.get("latency_ms")
        if override is not None:
            with contextlib.suppress(TypeError, ValueError, OverflowError):
                samples["latency_ms"] = float(override)
        return samples

    def tag_values(self) -> dict[str, str]:
        """String tags: the event type, node name and id when set, and scalar ``extra`` values.

        The trace id is left out: it is unbounded and would explode a metric's cardinality.
        """
        tags = {"event_type": self.event_type}
        if self.node_name is not None:
            tags["node_name"] = self.node_name
        if self.node_id is not None:
            tags["node_id"] = self.node_id
        for key, value in self.extra.items():
            if isinstance(value, _TAG_TYPES):
                tags[key] = str(value)
        return tags


def format_flow_event(event: FlowEvent) -> dict[str, Any]:
    """``event.to_payload()``, plus ``flow_error`` and one ``flow_error_<key>`` per error field."""
    payload = event.to_payload()
    error = event.error_payload
    if error is not None:
        payload["flow_error"] = dict(error)
        for key, value in error.items():
            payload[f"flow_error_{key}"] = value
    return payload
