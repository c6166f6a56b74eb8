"""The ``dev`` server's view of its spans: the last 2000 kept in memory, and live feeds per trace.

A span processor beside the exporters: ``on_end`` is O(1) plus one call per follower of that
trace, and never blocks. A follower is called on its own event loop: directly when the span ends
on that loop's thread (so it sees the span before anything the loop runs next), else through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

__all__ = ["SpanBuffer", "SpanRecord", "span_forest"]

SpanRecord: TypeAlias = dict[str, Any]
_Follower: TypeAlias = tuple[asyncio.AbstractEventLoop, Callable[[SpanRecord], None]]

CAPACITY = 2000
_MAX_TEXT = 500


def _attribute(value: object) -> object:
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    if isinstance(value, Sequence):
        return [_attribute(item) for item in value]
    return value


def _record(span: ReadableSpan) -> SpanRecord | None:
    ctx = span.context
    if ctx is None:
        return None
    start, end = span.start_time or 0, span.end_time or 0
    attributes: Mapping[str, object] = span.attributes or {}
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "kind": span.kind.name,
        "start_time_unix_nano": start,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name,
        "attributes": {key: _attribute(value) for key, value in attributes.items()},
    }


class SpanBuffer(SpanProcessor):
    """Keeps the last ``capacity`` finished spans and feeds each to the followers of its trace."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._spans: deque[SpanRecord] = deque(maxlen=capacity)
        self._followers: dict[str, list[_Follower]] = {}
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        record = _record(span)
        if record is None:
            return
        with self._lock:
            self._spans.append(record)
            followers = tuple(self._followers.get(record["trace_id"], ()))
        for loop, deliver in followers:
            _deliver(loop, deliver, record)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The buffered spans of one trace (32 hex digits), in start order."""
        with self._lock:
            found = [record for record in self._spans if record["trace_id"] == trace_id]
        return sorted(found, key=lambda record: int(record["start_time_unix_nano"]))

    @contextmanager
    def follow(self, trace_id: str, deliver: Callable[[SpanRecord], None]) -> Iterator[None]:
        """Call ``deliver`` on the running loop with each span of ``trace_id`` that ends in the block."""
        follower: _Follower = (asyncio.get_running_loop(), deliver)
        with self._lock:
            self._followers.setdefault(trace_id, []).append(follower)
        try:
            yield
        finally:
            with self._lock:
                followers = self._followers.get(trace_id, [])
                followers.remove(follower)
                if not followers:
                    self._followers.pop(trace_id, None)


def _deliver(
    loop: asyncio.AbstractEventLoop, deliver: Callable[[SpanRecord], None], record: SpanRecord
) -> None:
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        deliver(record)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(deliver, record)


def span_forest(records: Sequence[SpanRecord]) -> list[SpanRecord]:
    """The spans of one trace as trees: each record gets a ``children`` list; the roots are returned."""
    nodes = {record["span_id"]: {**record, "children": []} for record in records}
    roots: list[SpanRecord] = []
    for node in nodes.values():
        parent = nodes.get(node["parent_id"] or "")
        (parent["children"] if parent is not None else roots).append(node)
    return roots
