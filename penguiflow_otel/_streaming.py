"""Stream chunks on the wire (SSE, WebSocket JSON) and bridges between flows and async streams.

``emit_chunk`` sequencing itself lives with the context; this module only uses the public API of
a flow (``emit``, ``fetch``) and of a context (``emit_chunk``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeAlias, TypeVar

from ._message import Message, StreamChunk

__all__ = [
    "ChunkEmitter",
    "EventAdapter",
    "StreamingFlow",
    "chunk_to_ws_json",
    "emit_stream_events",
    "format_sse_event",
    "stream_flow",
]

EventT = TypeVar("EventT")

EventAdapter: TypeAlias = Callable[[EventT], tuple[str, bool, dict[str, Any]]]
"""Turns one source event into ``(text, done, meta)``."""


class StreamingFlow(Protocol):
    """The part of a running flow :func:`stream_flow` uses."""

    async def emit(self, msg: Any, /, to: Any = None) -> object: ...

    async def fetch(self) -> Any: ...


class ChunkEmitter(Protocol):
    """The part of a node context :func:`emit_stream_events` uses."""

    async def emit_chunk(
        self, *, parent: Any, text: str, done: bool, meta: dict[str, Any], to: Any
    ) -> object: ...


def format_sse_event(
    chunk: StreamChunk, *, event_name: str | None = None, retry_ms: int | None = None
) -> str:
    """Render ``chunk`` as one Server-Sent Event, blank line included.

    The event name defaults to ``done`` or ``chunk``; non-empty ``meta`` adds a second ``data:``
    line holding it as JSON.
    """
    lines = [
        f"event: {event_name or ('done' if chunk.done else 'chunk')}",
        f"id: {chunk.seq}",
        f"data: {chunk.text}",
    ]
    if chunk.meta:
        import json  # loaded on first use, not by ``import penguiflow_otel``

        lines.append(f"data: {json.dumps(chunk.meta, ensure_ascii=False)}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    return "\n".join(lines) + "\n\n"


def chunk_to_ws_json(chunk: StreamChunk, *, extra: Mapping[str, Any] | None = None) -> str:
    """JSON text of the chunk's fields, updated by ``extra``, for a WebSocket frame."""
    body: dict[str, Any] = {
        "stream_id": chunk.stream_id,
        "seq": chunk.seq,
        "text": chunk.text,
        "done": chunk.done,
        "meta": chunk.meta,
    }
    if extra:
        body.update(extra)
    import json  # loaded on first use, not by ``import penguiflow_otel``

    return json.dumps(body, ensure_ascii=False)


async def stream_flow(
    flow: StreamingFlow,
    parent_msg: Message[Any],
    *,
    to: Any = None,
    timeout: float | None = None,
    include_final: bool = False,
) -> AsyncIterator[Any]:
    """Emit ``parent_msg``, then yield the flow's results' payloads as they are fetched.

    A ``done`` chunk ends the stream unless ``include_final``; the first payload that is not a
    :class:`StreamChunk` is yielded and always ends it. Each fetch waits at most ``timeout``
    seconds (``TimeoutError``). The caller stops the flow.
    """
    await flow.emit(parent_msg, to=to)
    while True:
        result = await _fetch(flow, timeout)
        payload = getattr(result, "payload", result)
        yield payload
        if not isinstance(payload, StreamChunk):
            return
        if payload.done and not include_final:
            return


async def _fetch(flow: StreamingFlow, timeout: float | None) -> Any:
    if timeout is None:
        return await flow.fetch()
    return await asyncio.wait_for(flow.fetch(), timeout)


def _as_text(event: object) -> tuple[str, bool, dict[str, Any]]:
    return str(event), False, {}


async def emit_stream_events(
    source: AsyncIterable[EventT],
    ctx: ChunkEmitter,
    parent_msg: Message[Any],
    *,
    adapter: EventAdapter[EventT] | None = None,
    to: Any = None,
    final_meta: dict[str, Any] | None = None,
) -> None:
    """Emit one chunk per event of ``source``, then a closing ``done`` chunk if none was done.

    ``adapter`` maps an event to ``(text, done, meta)``; by default ``(str(event), False, {})``.
    """
    convert: EventAdapter[EventT] = adapter if adapter is not None else _as_text
    done_seen = False
    async for event in source:
        text, done, meta = convert(event)
        await ctx.emit_chunk(parent=parent_msg, text=text, done=done, meta=meta, to=to)
        done_seen = done_seen or done
    if not done_seen:
        await ctx.emit_chunk(parent=parent_msg, text="", done=True, meta=final_meta or {}, to=to)
