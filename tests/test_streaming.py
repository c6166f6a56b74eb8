"""Streaming through a flow: emit_chunk sequencing and capacity, stream_flow, emit_stream_events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flowkit import async_source, fetch, make_message, wait_forever

from penguiflow_otel import (
    Context,
    FinalAnswer,
    Headers,
    Message,
    Node,
    StreamChunk,
    create,
    emit_stream_events,
    stream_flow,
)


def chunks_of(results: list[Any]) -> list[tuple[str, int, str, bool]]:
    """``(stream_id, seq, text, done)`` of each fetched chunk message."""
    return [(r.payload.stream_id, r.payload.seq, r.payload.text, r.payload.done) for r in results]


def streaming_node(script: Any, name: str = "streamer") -> Node:
    """A node running ``script(message, ctx)`` and returning None."""

    async def streamer(message: Any, ctx: Context) -> Any:
        await script(message, ctx)
        return None

    return Node(streamer, name=name)


# ctx.emit_chunk sequencing (section 16) --------------------------------------------------------


async def test_emit_chunk_numbers_chunks_from_zero_per_stream() -> None:
    """Chunks of a stream default to the parent's trace id and count up from 0."""
    returned: list[StreamChunk] = []

    async def script(message: Any, ctx: Context) -> None:
        for text in ("a", "b"):
            returned.append(await ctx.emit_chunk(parent=message, text=text))
        returned.append(await ctx.emit_chunk(parent=message, text="c", done=True))

    flow = create(streaming_node(script).to())
    flow.run()
    parent = make_message("prompt")
    await flow.emit(parent)
    results = [await fetch(flow) for _ in range(3)]
    sid = parent.trace_id
    assert chunks_of(results) == [(sid, 0, "a", False), (sid, 1, "b", False), (sid, 2, "c", True)]
    assert [r.payload for r in results] == returned
    await flow.stop()


async def test_explicit_seq_resets_the_counter_and_done_deletes_it() -> None:
    """A given seq becomes the counter; after a done chunk the next chunk of the stream starts at 0."""

    async def script(message: Any, ctx: Context) -> None:
        await ctx.emit_chunk(parent=message, text="a", stream_id="s")
        await ctx.emit_chunk(parent=message, text="b", stream_id="s", seq=10)
        await ctx.emit_chunk(parent=message, text="c", stream_id="s")
        await ctx.emit_chunk(parent=message, text="d", stream_id="s", done=True)
        await ctx.emit_chunk(parent=message, text="e", stream_id="s")
        await ctx.emit_chunk(parent=message, text="x", stream_id="other")

    flow = create(streaming_node(script).to())
    flow.run()
    await flow.emit(make_message("prompt"))
    results = [await fetch(flow) for _ in range(6)]
    assert chunks_of(results) == [
        ("s", 0, "a", False),
        ("s", 10, "b", False),
        ("s", 11, "c", False),
        ("s", 12, "d", True),
        ("s", 0, "e", False),
        ("other", 0, "x", False),
    ]
    await flow.stop()


async def test_counters_are_per_node_context() -> None:
    """Two nodes streaming under the same stream id each count from 0."""

    async def script(message: Any, ctx: Context) -> None:
        await ctx.emit_chunk(parent=message, text=str(ctx.owner), stream_id="shared")

    first, second = streaming_node(script, "first"), streaming_node(script, "second")
    flow = create(first.to(), second.to())
    flow.run()
    await flow.emit(make_message("prompt"))
    results = [await fetch(flow), await fetch(flow)]
    assert sorted(r.payload.seq for r in results) == [0, 0]
    await flow.stop()


async def test_chunk_message_keeps_the_parent_envelope() -> None:
    """A chunk message shares the parent's headers object, trace and deadline, with copies of meta."""

    async def script(message: Any, ctx: Context) -> None:
        await ctx.emit_chunk(parent=message, text="t", meta={"k": "v"})

    flow = create(streaming_node(script).to())
    flow.run()
    parent = make_message(deadline_s=4_000_000_000.0, meta={"user": "u1"})
    await flow.emit(parent)
    result = await fetch(flow)
    assert isinstance(result, Message)
    assert result.headers is parent.headers
    assert (result.trace_id, result.deadline_s) == (parent.trace_id, parent.deadline_s)
    assert result.meta == {"user": "u1"}
    assert result.meta is not parent.meta
    assert result.payload == StreamChunk(stream_id=parent.trace_id, seq=0, text="t", meta={"k": "v"})
    assert result.ts >= parent.ts
    await flow.stop()


async def test_chunk_meta_is_a_copy_of_the_given_mapping() -> None:
    """Changing the meta dict after emitting does not change the chunk."""
    meta = {"k": "v"}

    async def script(message: Any, ctx: Context) -> None:
        await ctx.emit_chunk(parent=message, text="t", meta=meta)
        meta["k"] = "changed"

    flow = create(streaming_node(script).to())
    flow.run()
    await flow.emit(make_message("prompt"))
    assert (await fetch(flow)).payload.meta == {"k": "v"}
    await flow.stop()


async def test_chunks_are_ordinary_messages_through_successors() -> None:
    """A chunk emitted to a successor travels as a Message, FIFO on the edge."""
    seen: list[int] = []

    async def script(message: Any, ctx: Context) -> None:
        for text in "abc":
            await ctx.emit_chunk(parent=message, text=text)

    async def relay(message: Any, ctx: Context) -> Any:
        seen.append(message.payload.seq)
        return message

    source, target = streaming_node(script), Node(relay, name="relay")
    flow = create(source.to(target), target.to())
    flow.run()
    await flow.emit(make_message("prompt"))
    assert [(await fetch(flow)).payload.text for _ in range(3)] == ["a", "b", "c"]
    assert seen == [0, 1, 2]
    await flow.stop()


async def test_flow_emit_chunk_streams_into_the_ingress_nodes() -> None:
    """PenguiFlow.emit_chunk sends chunks to ingress nodes, numbered by the ingress context."""

    async def echo(message: Any, ctx: Context) -> Any:
        return message

    flow = create(Node(echo).to())
    flow.run()
    parent = make_message("prompt")
    first = await flow.emit_chunk(parent=parent, text="hello")
    second = await flow.emit_chunk(parent=parent, text="world", done=True)
    assert (first.seq, second.seq, second.done) == (0, 1, True)
    results = [await fetch(flow), await fetch(flow)]
    assert [r.payload for r in results] == [first, second]
    assert all(r.trace_id == parent.trace_id for r in results)
    await flow.stop()


async def test_emit_chunk_counters_survive_stop() -> None:
    """A flow run again continues an unfinished stream's numbering."""

    async def echo(message: Any, ctx: Context) -> Any:
        return message

    flow = create(Node(echo).to())
    flow.run()
    parent = make_message("prompt")
    assert (await flow.emit_chunk(parent=parent, text="a")).seq == 0
    await flow.stop()
    flow.run()
    assert (await flow.emit_chunk(parent=parent, text="b")).seq == 1
    assert (await fetch(flow)).payload.text == "b"
    await flow.stop()


async def test_emit_chunk_on_a_detached_context_raises() -> None:
    """A context that belongs to no flow refuses to emit chunks."""

    async def noop(message: Any, ctx: Context) -> Any:
        return None

    ctx = Context(Node(noop))
    with pytest.raises(RuntimeError, match=r"^Context is not attached to a running flow$"):
        await ctx.emit_chunk(parent=make_message("prompt"), text="x")


# Capacity wait (section 9) ---------------------------------------------------------------------


@pytest.mark.parametrize(("stream_on_blocked_trace", "waits"), [(True, True), (False, False)])
async def test_non_first_chunk_waits_on_the_trace_named_by_its_stream_id(
    stream_on_blocked_trace: bool, waits: bool
) -> None:
    """A non-first chunk waits while pending(stream_id) - 1 >= queue_maxsize, and wakes on its finalize."""
    release_blocker = asyncio.Event()
    first_received = asyncio.Event()
    second_received = asyncio.Event()
    busy = Message(payload="busy", headers=Headers(tenant="t"))
    stream_id = busy.trace_id if stream_on_blocked_trace else "names-no-active-trace"

    async def blocker(message: Any, ctx: Context) -> Any:
        await release_blocker.wait()
        return None

    async def script(message: Any, ctx: Context) -> None:
        await ctx.emit_chunk(parent=message, text="1", stream_id=stream_id)
        await ctx.emit_chunk(parent=message, text="2", stream_id=stream_id)

    async def consumer(message: Any, ctx: Context) -> Any:
        (second_received if message.payload.seq else first_received).set()
        return None

    block, stream, consume = (
        Node(blocker, name="blocker"),
        streaming_node(script),
        Node(consumer, name="consumer"),
    )
    flow = create(block.to(), stream.to(consume), consume.to(), queue_maxsize=1)
    flow.run()
    await flow.emit(busy, to=block)
    await flow.emit(make_message("queued", trace_id=busy.trace_id), to=block)  # pending(busy) is now 2
    await flow.emit(make_message("prompt"), to=stream)
    async with asyncio.timeout(2):
        await first_received.wait()
    if waits:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(second_received.wait()), 0.05)
        release_blocker.set()
    async with asyncio.timeout(2):
        await second_received.wait()
    release_blocker.set()
    await flow.stop()


async def test_first_chunk_of_a_stream_never_waits() -> None:
    """The first chunk of a stream goes out even when its stream's trace is over capacity."""
    release = asyncio.Event()
    received = asyncio.Event()
    busy = make_message("busy")

    async def blocker(message: Any, ctx: Context) -> Any:
        await release.wait()
        return None

    async def script(message: Any, ctx: Context) -> None:
        await ctx.emit_chunk(parent=message, text="only", stream_id=busy.trace_id)

    async def consumer(message: Any, ctx: Context) -> Any:
        received.set()
        return None

    block, stream, consume = (
        Node(blocker, name="blocker"),
        streaming_node(script),
        Node(consumer, name="consumer"),
    )
    flow = create(block.to(), stream.to(consume), consume.to(), queue_maxsize=1)
    flow.run()
    await flow.emit(busy, to=block)
    await flow.emit(make_message("queued", trace_id=busy.trace_id), to=block)
    await flow.emit(make_message("prompt"), to=stream)
    async with asyncio.timeout(2):
        await received.wait()
    release.set()
    await flow.stop()


# stream_flow -----------------------------------------------------------------------------------


async def test_stream_flow_yields_the_first_chunk_before_the_node_finishes() -> None:
    """The caller receives the first chunk while the producing node still waits to be released."""
    release = asyncio.Event()
    released_before_first_chunk: list[bool] = []

    async def producer(message: Any, ctx: Context) -> Any:
        await ctx.emit_chunk(parent=message, text="Hel")
        await release.wait()
        await ctx.emit_chunk(parent=message, text="lo", done=True)
        return message.model_copy(update={"payload": FinalAnswer(text="Hello")})

    flow = create(Node(producer).to())
    flow.run()
    received: list[Any] = []
    async with asyncio.timeout(2):
        async for payload in stream_flow(flow, make_message("prompt"), include_final=True):
            if not received:
                released_before_first_chunk.append(release.is_set())
                release.set()
            received.append(payload)
    assert released_before_first_chunk == [False]
    assert [type(p).__name__ for p in received] == ["StreamChunk", "StreamChunk", "FinalAnswer"]
    assert [p.text for p in received] == ["Hel", "lo", "Hello"]
    await flow.stop()


async def test_stream_flow_stops_after_the_done_chunk_unless_include_final() -> None:
    """Without include_final the generator ends at the done chunk."""

    async def producer(message: Any, ctx: Context) -> Any:
        await ctx.emit_chunk(parent=message, text="a")
        await ctx.emit_chunk(parent=message, text="b", done=True)
        return message.model_copy(update={"payload": FinalAnswer(text="ab")})

    flow = create(Node(producer).to())
    flow.run()
    async with asyncio.timeout(2):
        received = [payload async for payload in stream_flow(flow, make_message("prompt"))]
    assert [(p.text, p.done) for p in received] == [("a", False), ("b", True)]
    assert (await fetch(flow)).payload == FinalAnswer(text="ab")
    await flow.stop()


async def test_stream_flow_ends_at_the_first_non_chunk_payload() -> None:
    """A result that is not a chunk is yielded and ends the stream; raw results are yielded as is."""

    async def producer(message: Any, ctx: Context) -> Any:
        return {"raw": message.payload}

    flow = create(Node(producer).to())
    flow.run()
    async with asyncio.timeout(2):
        received = [payload async for payload in stream_flow(flow, make_message("q"))]
    assert received == [{"raw": "q"}]
    await flow.stop()


async def test_stream_flow_targets_the_given_node() -> None:
    """stream_flow emits to ``to`` when given."""

    async def left(message: Any, ctx: Context) -> Any:
        return message.model_copy(update={"payload": "left"})

    async def right(message: Any, ctx: Context) -> Any:
        return message.model_copy(update={"payload": "right"})

    left_node, right_node = Node(left), Node(right)
    flow = create(left_node.to(), right_node.to())
    flow.run()
    async with asyncio.timeout(2):
        received = [payload async for payload in stream_flow(flow, make_message("prompt"), to=right_node)]
    assert received == ["right"]
    await flow.stop()


async def test_stream_flow_timeout_raises_when_nothing_arrives() -> None:
    """Each fetch is bounded by ``timeout``; silence raises TimeoutError."""
    flow = create(Node(wait_forever).to())
    flow.run()
    with pytest.raises(TimeoutError):
        async for _ in stream_flow(flow, make_message("prompt"), timeout=0.05):
            pass
    await flow.stop()


# emit_stream_events ----------------------------------------------------------------------------


class RecordingEmitter:
    """A context double whose emit_chunk accepts exactly the five keywords emit_stream_events passes."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def emit_chunk(
        self, *, parent: Any, text: str, done: bool, meta: dict[str, Any], to: Any
    ) -> object:
        self.calls.append({"parent": parent, "text": text, "done": done, "meta": meta, "to": to})
        return None


async def test_emit_stream_events_defaults_to_str_and_closes_with_a_done_chunk() -> None:
    """Without an adapter each event is str()-ed, and a final empty done chunk carries final_meta."""
    emitter = RecordingEmitter()
    parent = make_message("prompt")
    await emit_stream_events(async_source(1, "two"), emitter, parent, to="target", final_meta={"end": True})
    assert [(c["text"], c["done"], c["meta"]) for c in emitter.calls] == [
        ("1", False, {}),
        ("two", False, {}),
        ("", True, {"end": True}),
    ]
    assert all(c["parent"] is parent and c["to"] == "target" for c in emitter.calls)


async def test_emit_stream_events_uses_the_adapter_and_skips_the_closing_chunk_after_done() -> None:
    """An adapter decides text, done and meta; a done event means no extra closing chunk."""
    emitter = RecordingEmitter()

    def adapter(event: Any) -> tuple[str, bool, dict[str, Any]]:
        return event["t"], event.get("last", False), {"i": event["i"]}

    await emit_stream_events(
        async_source({"t": "a", "i": 0}, {"t": "b", "i": 1, "last": True}),
        emitter,
        make_message("prompt"),
        adapter=adapter,
    )
    assert [(c["text"], c["done"], c["meta"]) for c in emitter.calls] == [
        ("a", False, {"i": 0}),
        ("b", True, {"i": 1}),
    ]


async def test_emit_stream_events_of_an_empty_source_sends_only_the_closing_chunk() -> None:
    """An empty source still ends the stream with one done chunk and empty meta."""
    emitter = RecordingEmitter()
    await emit_stream_events(async_source(), emitter, make_message("prompt"))
    assert [(c["text"], c["done"], c["meta"], c["to"]) for c in emitter.calls] == [("", True, {}, None)]


async def test_emit_stream_events_inside_a_node_streams_through_the_flow() -> None:
    """A node bridging an async source through its context produces numbered chunks ending in done."""

    async def bridge(message: Any, ctx: Context) -> Any:
        await emit_stream_events(async_source("x", "y"), ctx, message, final_meta={"n": 2})
        return None

    flow = create(Node(bridge).to())
    flow.run()
    parent = make_message("prompt")
    await flow.emit(parent)
    results = [await fetch(flow) for _ in range(3)]
    assert chunks_of(results) == [
        (parent.trace_id, 0, "x", False),
        (parent.trace_id, 1, "y", False),
        (parent.trace_id, 2, "", True),
    ]
    assert results[2].payload.meta == {"n": 2}
    await flow.stop()
