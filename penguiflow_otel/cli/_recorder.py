"""A span processor that keeps the finished spans of the one trace the demo shows (bounded)."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from ._report import SpanRecord

__all__ = ["TraceRecorder"]

_MAX_SPANS = 500


class TraceRecorder(SpanProcessor):
    """Keeps, as ``SpanRecord``s, the spans of watched trace ids; everything else is ignored.

    ``on_start`` and ``on_end`` are O(1) and never block, so it is safe beside the batch processor.
    """

    def __init__(self) -> None:
        self._watched: set[int] = set()
        self._spans: list[SpanRecord] = []
        self._lock = threading.Lock()

    def watch(self, trace_id: str) -> None:
        """Record the spans of this flow trace id (a 32-hex-digit id)."""
        self._watched.add(int(trace_id, 16))

    def spans(self) -> list[SpanRecord]:
        """The recorded spans."""
        with self._lock:
            return list(self._spans)

    def on_end(self, span: Any) -> None:
        ctx = span.context
        if ctx is None or ctx.trace_id not in self._watched:
            return
        start, end = span.start_time or 0, span.end_time or 0
        record = SpanRecord(
            name=span.name,
            trace_id=f"{ctx.trace_id:032x}",
            span_id=f"{ctx.span_id:016x}",
            parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
            start=f"{start:020d}",
            duration_ms=(end - start) / 1e6,
            status=span.status.status_code.name,
            attributes=dict(span.attributes or {}),
            links=len(span.links or ()),
        )
        with self._lock:
            if len(self._spans) < _MAX_SPANS:
                self._spans.append(record)
