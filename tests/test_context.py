"""The node ``Context`` (runtime.md section 6): emitting without waiting, fetching inputs, depths.

A node fetching its own inputs competes with its workers; every flow here has one worker per node,
busy inside the body that fetches, so the fetch is the only consumer of the edges it reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flowkit import EventRecorder, Gate, make_message, passthrough, promptly

from penguiflow_otel import OPEN_SEA, Context, Node, PenguiFlow, create


async def fetch_one(flow: PenguiFlow) -> Any:
    """One result, within two seconds."""
    async with asyncio.timeout(2):
        return await flow.fetch()


def two_source_flow(body: Any) -> tuple[PenguiFlow, Node, Node, Node]:
    """Ingress nodes ``a`` and ``b`` both feeding ``c``, which runs ``body``."""
    a, b = Node(passthrough, name="a"), Node(passthrough, name="b")
    c = Node(body, name="c")
    return create(a.to(c), b.to(c), c.to()), a, b, c


# emit_nowait -------------------------------------------------------------------------------------


async def test_ctx_emit_nowait_into_a_full_successor_raises_queue_full() -> None:
    """ctx.emit_nowait puts while the edge has room and raises QueueFull once it is full."""
    outcomes: list[str] = []

    async def burst(message: Any, ctx: Context) -> None:
        ctx.emit_nowait(message)
        outcomes.append("first put")
        try:
            ctx.emit_nowait(message)
        except asyncio.QueueFull:
            outcomes.append("full")

    head, tail = Node(burst, name="head"), Node(passthrough, name="tail")
    flow = create(head.to(tail), tail.to(), queue_maxsize=1)
    flow.run()
    sent = make_message("only")
    await flow.emit(sent)

    assert await fetch_one(flow) is sent
    assert outcomes == ["first put", "full"]
    assert flow.statistics().edge_size["head->tail"] == 0
    await flow.stop()


# fetch, fetch_any, fetch_nowait ------------------------------------------------------------------


async def test_ctx_fetch_from_one_source_waits_for_that_source_only() -> None:
    """fetch(from_=b) skips an item queued from a and returns b's next item once it arrives."""
    first_in = asyncio.Event()
    b_node: list[Node] = []

    async def collect(message: Any, ctx: Context) -> Any:
        if message.payload != "first":
            return [message.payload]
        first_in.set()
        other = await ctx.fetch(from_=b_node[0])
        return [message.payload, other.payload]

    flow, a, b, _ = two_source_flow(collect)
    b_node.append(b)
    flow.run()
    await flow.emit(make_message("first"), to=a)
    async with asyncio.timeout(2):
        await first_in.wait()
    await flow.emit(make_message("from a"), to=a)
    await promptly(lambda: flow.statistics().edge_size["a->c"] == 1)
    await flow.emit(make_message("from b"), to=b)

    assert await fetch_one(flow) == ["first", "from b"]
    assert await fetch_one(flow) == ["from a"]
    await flow.stop()


async def test_ctx_fetch_from_several_sources_returns_whichever_delivers() -> None:
    """fetch() with no source waits on every incoming edge and returns the item that arrives."""
    first_in = asyncio.Event()

    async def collect(message: Any, ctx: Context) -> Any:
        if message.payload != "first":
            return [message.payload]
        first_in.set()
        other = await ctx.fetch()
        return [message.payload, other.payload]

    flow, a, b, _ = two_source_flow(collect)
    flow.run()
    await flow.emit(make_message("first"), to=a)
    async with asyncio.timeout(2):
        await first_in.wait()
    await flow.emit(make_message("late"), to=b)

    assert await fetch_one(flow) == ["first", "late"]
    assert flow.statistics().edge_size == {
        "ingress->a": 0,
        "ingress->b": 0,
        "a->c": 0,
        "b->c": 0,
        "c->egress": 0,
    }
    await flow.stop()


async def test_ctx_fetch_any_returns_one_ready_item_and_keeps_the_other_for_the_next_fetch() -> None:
    """With items ready on both sources, fetch_any returns one of them; the next call gets the other."""
    first_in = asyncio.Event()
    go_on = asyncio.Event()

    async def collect(message: Any, ctx: Context) -> Any:
        if message.payload != "first":
            return [message.payload]
        first_in.set()
        await go_on.wait()
        one = await ctx.fetch_any()
        two = await ctx.fetch_any()
        return [message.payload, one.payload, two.payload]

    flow, a, b, _ = two_source_flow(collect)
    flow.run()
    await flow.emit(make_message("first"), to=a)
    async with asyncio.timeout(2):
        await first_in.wait()
    await flow.emit(make_message("p"), to=a)
    await flow.emit(make_message("q"), to=b)
    await promptly(lambda: flow.statistics().edge_size["a->c"] == flow.statistics().edge_size["b->c"] == 1)
    go_on.set()

    first, one, two = await fetch_one(flow)
    assert first == "first"
    assert {one, two} == {"p", "q"}
    stats = flow.statistics()
    assert stats.edge_size["a->c"] == stats.edge_size["b->c"] == 0
    assert stats.active_traces == 0
    await flow.stop()


async def test_ctx_fetch_nowait_returns_a_queued_item_then_raises_queue_empty() -> None:
    """fetch_nowait takes what is queued and then raises QueueEmpty('no messages available')."""
    seen: list[object] = []
    errors: list[str] = []

    async def drain_inbox(message: Any, ctx: Context) -> Any:
        if message.payload == "first":
            await go_on.wait()
            seen.append(ctx.fetch_nowait().payload)
            try:
                ctx.fetch_nowait()
            except asyncio.QueueEmpty as exc:
                errors.append(str(exc))
        return message

    go_on = asyncio.Event()
    node = Node(drain_inbox, name="node")
    flow = create(node.to())
    flow.run()
    await flow.emit(make_message("first"))
    await flow.emit(make_message("queued"))
    await promptly(lambda: flow.statistics().edge_size["ingress->node"] == 1)
    go_on.set()

    assert (await fetch_one(flow)).payload == "first"
    assert seen == ["queued"]
    assert errors == ["no messages available"]
    await flow.stop()


async def test_ctx_fetch_without_incoming_edges_raises_runtime_error() -> None:
    """A context with no incoming edges (a detached node's, or OpenSea's) refuses to fetch."""
    detached = Context(Node(passthrough, name="alone"))
    with pytest.raises(RuntimeError, match=r"^context has no incoming floes to fetch from$"):
        await detached.fetch()

    flow = create(Node(passthrough, name="only").to())
    open_sea = Context(OPEN_SEA, flow)
    with pytest.raises(RuntimeError, match=r"^context has no incoming floes to fetch from$"):
        await open_sea.fetch_any()


async def test_ctx_fetch_from_a_node_that_is_not_a_source_raises_key_error() -> None:
    """fetch(from_=x) for a node that does not feed this one raises KeyError('Unknown target x for c')."""
    stranger = Node(passthrough, name="stranger")
    errors: list[object] = []

    async def fetch_stranger(message: Any, ctx: Context) -> Any:
        try:
            await ctx.fetch(from_=stranger)
        except KeyError as exc:
            errors.append(exc.args[0])
        return message

    flow, a, _, _ = two_source_flow(fetch_stranger)
    flow.run()
    await flow.emit(make_message("x"), to=a)
    await fetch_one(flow)

    assert errors == ["Unknown target stranger for c"]
    await flow.stop()


# counts and depths -------------------------------------------------------------------------------


async def test_outgoing_count_and_queue_depths_sum_the_contexts_own_edges(recorder: EventRecorder) -> None:
    """outgoing_count, queue_depth_in/out read the node's edges, and node_start carries the same numbers."""
    left_gate, right_gate = Gate(), Gate()
    probes: list[tuple[int, int, int]] = []

    async def hub_body(message: Any, ctx: Context) -> Any:
        if message.payload == "probe":
            probes.append((ctx.outgoing_count(), ctx.queue_depth_in(), ctx.queue_depth_out()))
            return None
        return message

    hub = Node(hub_body, name="hub")
    left, right = Node(left_gate.hold, name="left"), Node(right_gate.hold, name="right")
    flow = create(hub.to(left, right), left.to(), right.to(), middlewares=[recorder], queue_maxsize=8)
    flow.run()
    await flow.emit(make_message("m1"))
    async with asyncio.timeout(2):
        await left_gate.started.wait()
        await right_gate.started.wait()
    await flow.emit(make_message("m2"))
    await promptly(
        lambda: flow.statistics().edge_size["hub->left"] == flow.statistics().edge_size["hub->right"] == 1
    )
    probe = make_message("probe")
    flow.emit_nowait(probe)
    flow.emit_nowait(make_message("x"))
    flow.emit_nowait(make_message("y"))
    await promptly(lambda: len(probes) == 1)

    assert probes == [(2, 2, 2)]
    start = next(event for event in recorder.of("node_start") if event.trace_id == probe.trace_id)
    assert (start.outgoing_edges, start.queue_depth_in, start.queue_depth_out) == (2, 2, 2)
    assert start.queue_depth == 4
    assert start.queue_maxsize == 8
    left_gate.release(10)
    right_gate.release(10)
    await flow.stop()


async def test_an_egress_nodes_outgoing_edge_is_the_rookery_and_its_depth_counts_unfetched_results() -> None:
    """A sink has one outgoing edge (to the Rookery), whose depth is its number of unfetched results."""
    readings: list[tuple[int, int]] = []

    async def sink_body(message: Any, ctx: Context) -> Any:
        readings.append((ctx.outgoing_count(), ctx.queue_depth_out()))
        return message

    flow = create(Node(sink_body, name="sink").to())
    flow.run()
    for index in range(3):
        await flow.emit(make_message(index))
    await promptly(lambda: flow.statistics().buffered_results == 3)

    assert readings == [(1, 0), (1, 1), (1, 2)]
    await flow.stop()
