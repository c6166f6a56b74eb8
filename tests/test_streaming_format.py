"""SSE and WebSocket formats, stream_flow and emit_stream_events (penguiflow_otel.streaming)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from flowkit import async_source, make_message

from penguiflow_otel.streaming import chunk_to_ws_json, emit_stream_events, format_sse_event, stream_flow
from penguiflow_otel.types import StreamChunk


def chunk(seq: int, text: str, *, done: bool = False, meta: dict[str, Any] | None = None) -> StreamChunk:
    """A chunk of stream s."""
    return StreamChunk(stream_id="s", seq=seq, text=text, done=done, meta=meta or {})


class FakeFlow:
    """Records emits and hands out scripted results; with none left, fetch waits forever."""

    def __init__(self, results: Iterable[object]) -> None:
        self.results = deque(results)
        self.emitted: list[tuple[object, object]] = []

    async def emit(self, msg: object, to: object = None) -> None:
        self.emitted.append((msg, to))

    async def fetch(self) -> object:
        if not self.results:
            await asyncio.Event().wait()
        return self.results.popleft()


class FakeContext:
    """Records every emit_chunk call's keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def emit_chunk(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    """Every item of an async iterator."""
    return [item async for item in stream]


def test_sse_event_of_a_plain_chunk() -> None:
    """A chunk renders as event, id and data lines ending in a blank line."""
    assert format_sse_event(chunk(3, "hello")) == "event: chunk\nid: 3\ndata: hello\n\n"


def test_sse_event_of_a_done_chunk_is_named_done() -> None:
    """A done chunk's default event name is done."""
    assert format_sse_event(chunk(0, "", done=True)) == "event: done\nid: 0\ndata: \n\n"


def test_sse_event_name_and_retry_can_be_given() -> None:
    """event_name replaces the default and retry_ms adds a retry line last."""
    rendered = format_sse_event(chunk(1, "x", done=True), event_name="token", retry_ms=1500)
    assert rendered == "event: token\nid: 1\ndata: x\nretry: 1500\n\n"


def test_sse_event_adds_meta_as_a_second_data_line() -> None:
    """Non-empty meta follows as JSON with default separators and non-ASCII kept."""
    rendered = format_sse_event(chunk(2, "hi", meta={"k": "v", "lang": "français"}), retry_ms=0)
    assert rendered == 'event: chunk\nid: 2\ndata: hi\ndata: {"k": "v", "lang": "français"}\nretry: 0\n\n'


def test_ws_json_holds_the_chunk_fields() -> None:
    """The WebSocket JSON has stream_id, seq, text, done and meta, non-ASCII kept."""
    text = chunk_to_ws_json(chunk(4, "é", meta={"a": 1}))
    assert text == '{"stream_id": "s", "seq": 4, "text": "é", "done": false, "meta": {"a": 1}}'


def test_ws_json_extra_updates_the_fields() -> None:
    """extra adds keys and overrides chunk fields."""
    decoded = json.loads(chunk_to_ws_json(chunk(4, "x"), extra={"type": "token", "seq": 99}))
    assert decoded == {"stream_id": "s", "seq": 99, "text": "x", "done": False, "meta": {}, "type": "token"}


async def test_stream_flow_emits_then_yields_chunks_until_done() -> None:
    """The parent is emitted with its targets; chunks are yielded up to the done one."""
    flow = FakeFlow([make_message(chunk(0, "a")), chunk(1, "b", done=True), "final"])
    parent = make_message("question")
    items = await collect(stream_flow(flow, parent, to="target"))
    assert items == [chunk(0, "a"), chunk(1, "b", done=True)]
    assert flow.emitted == [(parent, "target")]
    assert list(flow.results) == ["final"]


async def test_stream_flow_include_final_continues_past_done() -> None:
    """With include_final, fetching goes on after done until a non-chunk payload, which is yielded."""
    flow = FakeFlow([chunk(0, "a", done=True), chunk(0, "b"), make_message("final"), "unused"])
    items = await collect(stream_flow(flow, make_message("question"), include_final=True))
    assert items == [chunk(0, "a", done=True), chunk(0, "b"), "final"]


async def test_stream_flow_ends_at_the_first_non_chunk_payload() -> None:
    """A non-chunk payload is yielded and ends the stream, done or not."""
    flow = FakeFlow([chunk(0, "a"), {"answer": 42}, chunk(1, "b")])
    items = await collect(stream_flow(flow, make_message("question")))
    assert items == [chunk(0, "a"), {"answer": 42}]


async def test_stream_flow_yields_results_without_payload_as_is() -> None:
    """A result with no payload attribute is itself the payload."""
    assert await collect(stream_flow(FakeFlow([7]), make_message("question"))) == [7]


async def test_stream_flow_fetch_timeout_raises() -> None:
    """A fetch that outlasts timeout raises TimeoutError."""
    stream = stream_flow(FakeFlow([chunk(0, "a")]), make_message("question"), timeout=0.01)
    assert await anext(stream) == chunk(0, "a")
    with pytest.raises(TimeoutError):
        await anext(stream)


async def test_emit_stream_events_closes_the_stream_when_no_event_was_done() -> None:
    """Each event becomes one emit_chunk, and a final empty done chunk carries final_meta."""
    ctx = FakeContext()
    parent = make_message("question")
    await emit_stream_events(async_source("a", 2), ctx, parent, to="sink", final_meta={"reason": "end"})
    assert ctx.calls == [
        {"parent": parent, "text": "a", "done": False, "meta": {}, "to": "sink"},
        {"parent": parent, "text": "2", "done": False, "meta": {}, "to": "sink"},
        {"parent": parent, "text": "", "done": True, "meta": {"reason": "end"}, "to": "sink"},
    ]


async def test_emit_stream_events_uses_the_adapter_and_adds_no_final_after_done() -> None:
    """The adapter's (text, done, meta) is passed through; a done event suppresses the closing chunk."""
    ctx = FakeContext()
    parent = make_message("question")

    def adapt(event: tuple[str, bool]) -> tuple[str, bool, dict[str, Any]]:
        return event[0].upper(), event[1], {"raw": event[0]}

    await emit_stream_events(async_source(("a", False), ("b", True)), ctx, parent, adapter=adapt)
    assert ctx.calls == [
        {"parent": parent, "text": "A", "done": False, "meta": {"raw": "a"}, "to": None},
        {"parent": parent, "text": "B", "done": True, "meta": {"raw": "b"}, "to": None},
    ]


async def test_emit_stream_events_of_an_empty_source_sends_only_the_closing_chunk() -> None:
    """An empty source still ends the stream, with empty meta by default."""
    ctx = FakeContext()
    parent = make_message("question")
    await emit_stream_events(async_source(), ctx, parent)
    assert ctx.calls == [{"parent": parent, "text": "", "done": True, "meta": {}, "to": None}]
