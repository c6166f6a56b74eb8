"""PenguiFlow lifecycle: run, stop, drain, ``async with``, emitting before run, and backpressure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flowkit import Gate, assert_empty, make_message, passthrough, settle

from penguiflow_otel import (
    Context,
    FlowEvent,
    ModelRegistry,
    Node,
    NodePolicy,
    PenguiFlow,
    TraceCancelled,
    create,
    join_k,
)

# run ---------------------------------------------------------------------------------------------


async def test_items_emitted_before_run_are_queued_then_processed() -> None:
    """emit() before run() enqueues without a running check, and run() processes the queued item."""
    node = Node(passthrough, name="only")
    flow = create(node.to())
    message = make_message("early")
    await flow.emit(message)
    stats = flow.statistics()
    assert not stats.running
    assert stats.edge_size["ingress->only"] == 1
    assert stats.active_traces == 1
    flow.run()
    assert await flow.fetch() is message
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_run_starts_concurrency_workers_named_after_the_node() -> None:
    """run() starts policy.concurrency worker tasks per node, named penguiflow:<node name>."""
    gate = Gate()
    node = Node(gate.hold, name="held", policy=NodePolicy(concurrency=3))
    flow = create(node.to())
    flow.run()
    for index in range(4):
        await flow.emit(make_message(index))
    await settle()
    names = sorted(
        task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("penguiflow:")
    )
    assert names == ["penguiflow:held"] * 3
    assert flow.statistics().node_inflight == {"held": 3}
    assert flow.statistics().edge_size["ingress->held"] == 1
    assert await flow.stop() == 4
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("penguiflow:")]


async def test_run_twice_raises() -> None:
    """Calling run() on a running flow raises RuntimeError("PenguiFlow already running")."""
    flow = create(Node(passthrough, name="a").to())
    flow.run()
    with pytest.raises(RuntimeError, match=r"^PenguiFlow already running$"):
        flow.run()
    assert await flow.stop() == 0


async def test_run_with_registry_missing_entries_names_them_sorted() -> None:
    """run(registry=...) lists the nodes that need validation but have no entry, sorted, and stays stopped."""
    beta = Node(passthrough, name="beta")
    alpha = Node(passthrough, name="alpha")
    loose = Node(passthrough, name="loose", policy=NodePolicy(validate="none"))
    flow = create(beta.to(alpha), alpha.to(loose), loose.to())
    with pytest.raises(RuntimeError) as caught:
        flow.run(registry=ModelRegistry())
    assert str(caught.value) == (
        "ModelRegistry is missing entries for nodes requiring validation: alpha, beta"
    )
    assert not flow.statistics().running
    assert flow.registry is None


# names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "x" * 65, "ünïcode"])
def test_invalid_flow_name_is_rejected(name: str) -> None:
    """A flow name outside ^[A-Za-z0-9_.:-]{1,64}$ raises ValueError naming the pattern."""
    with pytest.raises(ValueError, match="flow name must match") as caught:
        PenguiFlow(Node(passthrough, name="a").to(), name=name)
    assert str(caught.value) == "flow name must match ^[A-Za-z0-9_.:-]{1,64}$"


def test_valid_flow_name_is_exposed() -> None:
    """A name matching the pattern, up to 64 characters, is kept as the name property."""
    assert create(Node(passthrough, name="a").to(), name="svc.flow:v1-2_x").name == "svc.flow:v1-2_x"
    assert create(name="n" * 64).name == "n" * 64


def test_default_flow_name_is_the_first_node_name_sanitised() -> None:
    """The default name is the first node's name, other characters replaced by _, cut to 64."""
    first = Node(passthrough, name="my node/v2")
    second = Node(passthrough, name="second")
    assert create(first.to(second), second.to()).name == "my_node_v2"
    long = Node(passthrough, name="L" * 70)
    assert create(long.to()).name == "L" * 64
    assert create().name == "flow"


# emitting ----------------------------------------------------------------------------------------


async def test_emit_to_a_non_ingress_node_raises_key_error() -> None:
    """emit(to=...) naming a non-ingress node raises KeyError("Unknown target X for OpenSea")."""
    first = Node(passthrough, name="first")
    second = Node(passthrough, name="second")
    flow = create(first.to(second), second.to())
    with pytest.raises(KeyError) as caught:
        await flow.emit(make_message("x"), to=second)
    assert caught.value.args == ("Unknown target second for OpenSea",)
    with pytest.raises(KeyError) as caught_nowait:
        flow.emit_nowait(make_message("x"), to=second)
    assert caught_nowait.value.args == ("Unknown target second for OpenSea",)
    stats = flow.statistics()
    assert stats.pending == 0
    assert all(size == 0 for size in stats.edge_size.values())


async def test_emit_nowait_into_a_full_edge_raises_queue_full() -> None:
    """emit_nowait raises asyncio.QueueFull when the ingress edge is full, and counts nothing."""
    node = Node(passthrough, name="only")
    flow = create(node.to(), queue_maxsize=1)
    flow.emit_nowait(make_message("first"))
    with pytest.raises(asyncio.QueueFull):
        flow.emit_nowait(make_message("second"))
    stats = flow.statistics()
    assert stats.edge_size["ingress->only"] == 1
    assert stats.pending == 1
    assert stats.active_traces == 1
    flow.run()
    first = await flow.fetch()
    assert first.payload == "first"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_emit_nowait_with_trace_id_is_refused() -> None:
    """emit_nowait(trace_id=...) raises RuntimeError pointing to await emit(..., trace_id=...)."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    with pytest.raises(RuntimeError) as caught:
        flow.emit_nowait(make_message("x"), trace_id="abc")
    assert str(caught.value) == (
        "emit_nowait(trace_id=...) is not supported; use await emit(..., trace_id=...)"
    )
    assert await flow.stop() == 0


# backpressure ------------------------------------------------------------------------------------


async def test_full_edge_blocks_the_sender_until_a_slot_frees() -> None:
    """A sender waits while the edge is full and resumes when the receiver takes one message."""
    gate = Gate()
    sink = Node(gate.hold, name="sink")
    flow = create(sink.to(), queue_maxsize=1)
    flow.run()
    await flow.emit(make_message(1))
    await gate.started.wait()
    await flow.emit(make_message(2))
    assert flow.statistics().edge_size["ingress->sink"] == 1
    sender = asyncio.create_task(flow.emit(make_message(3)))
    await settle()
    assert not sender.done()
    stats = flow.statistics()
    assert stats.edge_size["ingress->sink"] == 1
    assert stats.edge_capacity["ingress->sink"] == 1
    gate.release()
    await sender
    assert flow.statistics().edge_size["ingress->sink"] == 1
    gate.release(2)
    results = [await flow.fetch() for _ in range(3)]
    assert [result.payload for result in results] == [1, 2, 3]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_backpressure_propagates_upstream_to_flow_emit() -> None:
    """A held sink fills the inner edge, blocks the upstream worker's put, then the ingress edge and emit."""
    gate = Gate()
    head = Node(passthrough, name="head")
    sink = Node(gate.hold, name="sink")
    flow = create(head.to(sink), sink.to(), queue_maxsize=1)
    flow.run()
    for payload in range(4):
        await flow.emit(make_message(payload))
        await settle()
    stats = flow.statistics()
    assert stats.node_inflight == {"head": 1, "sink": 1}
    assert stats.edge_size == {"ingress->head": 1, "head->sink": 1, "sink->egress": 0}
    sender = asyncio.create_task(flow.emit(make_message(4)))
    await settle()
    assert not sender.done()
    gate.release()
    await sender
    gate.release(4)
    results = [await flow.fetch() for _ in range(5)]
    assert [result.payload for result in results] == [0, 1, 2, 3, 4]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_untraced_results_wait_for_room_in_their_buffer() -> None:
    """Payload-only results share one bounded buffer; a delivery into it waits until a fetch frees a slot."""
    node = Node(passthrough, name="only")
    flow = create(node.to(), queue_maxsize=1)
    flow.run()
    await flow.emit({"n": 1})
    await flow.emit({"n": 2})
    await settle()
    stats = flow.statistics()
    assert stats.buffered_results == 1
    assert stats.node_inflight == {"only": 1}
    assert stats.edge_size["only->egress"] == 1
    assert await flow.fetch() == {"n": 1}
    assert await flow.fetch() == {"n": 2}
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


# stop --------------------------------------------------------------------------------------------


async def test_stop_returns_the_discarded_count_and_leaves_statistics_empty() -> None:
    """stop() discards unfetched results, held and queued items, returns their count, leaves nothing."""
    gate = Gate()

    async def body(message: Any, ctx: Context) -> Any:
        if message.payload == "hold":
            return await gate.hold(message, ctx)
        return message

    node = Node(body, name="only")
    flow = create(node.to())
    flow.run()
    await flow.emit(make_message("done"))
    await flow.emit(make_message("hold"))
    await flow.emit(make_message("queued"))
    await gate.started.wait()
    before = flow.statistics()
    assert before.buffered_results == 1
    assert before.node_inflight == {"only": 1}
    assert before.edge_size["ingress->only"] == 1
    assert before.active_traces == 3
    assert await flow.stop() == 3
    after = flow.statistics()
    assert not after.running
    assert_empty(after)
    assert await flow.stop() == 0


async def test_stop_on_a_flow_that_never_ran_returns_zero() -> None:
    """stop() on a flow that is not running is a no-op returning 0."""
    flow = create(Node(passthrough, name="only").to())
    assert await flow.stop() == 0
    assert not flow.statistics().running


async def test_a_stopped_flow_runs_again_with_empty_queues() -> None:
    """After stop(), run() starts fresh: nothing discarded is replayed and new messages flow as usual."""
    gate = Gate()
    node = Node(gate.hold, name="only")
    flow = create(node.to())
    flow.run()
    for payload in ("held", "queued-1", "queued-2"):
        await flow.emit(make_message(payload))
    await gate.started.wait()
    assert await flow.stop() == 3
    flow.run()
    assert flow.statistics().running
    fresh = make_message("fresh")
    await flow.emit(fresh)
    gate.release()
    assert await flow.fetch() is fresh
    assert gate.seen == ["held", "fresh"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_plain_fetch_waiting_across_stop_is_served_after_the_next_run() -> None:
    """A plain fetch() waiting when stop() runs is not woken; a later run() serves it."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    waiting = asyncio.create_task(flow.fetch())
    await settle()
    assert await flow.stop() == 0
    await settle()
    assert not waiting.done()
    flow.run()
    message = make_message("after restart")
    await flow.emit(message)
    assert await waiting is message
    assert await flow.stop() == 0


# async with --------------------------------------------------------------------------------------


async def test_async_with_runs_the_flow_and_stops_it_on_exit() -> None:
    """Entering runs the flow and returns it; leaving stops it and discards what is left."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    async with flow as entered:
        assert entered is flow
        assert flow.statistics().running
        await flow.emit(make_message("held"))
        await gate.started.wait()
    stats = flow.statistics()
    assert not stats.running
    assert_empty(stats)


async def test_async_with_on_a_running_flow_does_not_run_it_again() -> None:
    """Entering an already running flow keeps it running instead of raising."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    async with flow:
        await flow.emit(make_message("x"))
        assert (await flow.fetch()).payload == "x"
    assert not flow.statistics().running


async def test_async_with_never_suppresses_exceptions() -> None:
    """An exception raised in the block propagates after the flow has stopped."""
    flow = create(Node(passthrough, name="only").to())
    with pytest.raises(LookupError, match="from the block"):
        async with flow:
            raise LookupError("from the block")
    assert not flow.statistics().running


# drain -------------------------------------------------------------------------------------------


async def test_drain_waits_for_work_in_flight_then_stops() -> None:
    """drain() returns once the held message is processed and its result fetched, with the flow stopped."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("held"))
    await gate.started.wait()
    draining = asyncio.create_task(flow.drain())
    await settle()
    assert not draining.done()
    gate.release()
    await settle()
    assert not draining.done(), "an unfetched result keeps drain() waiting"
    assert flow.statistics().buffered_results == 1
    assert (await flow.fetch()).payload == "held"
    await draining
    stats = flow.statistics()
    assert not stats.running
    assert_empty(stats)


async def test_drain_finishes_when_the_unfetched_trace_is_cancelled() -> None:
    """Cancelling the trace of an unfetched result lets drain() finish."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    message = make_message("never fetched")
    await flow.emit(message)
    draining = asyncio.create_task(flow.drain())
    await settle()
    assert not draining.done()
    assert flow.statistics().buffered_results == 1
    assert await flow.cancel(message.trace_id) is True
    await draining
    assert_empty(flow.statistics())


async def test_emit_while_draining_raises_but_internal_emits_continue() -> None:
    """While draining, every flow emit raises "PenguiFlow is draining"; ctx.emit still works."""
    gate = Gate()

    async def fan(message: Any, ctx: Context) -> None:
        await gate.hold(message, ctx)
        await ctx.emit(message.model_copy(update={"payload": "one"}))
        await ctx.emit(message.model_copy(update={"payload": "two"}))

    head = Node(fan, name="head")
    tail = Node(passthrough, name="tail")
    flow = create(head.to(tail), tail.to())
    flow.run()
    parent = make_message("go")
    await flow.emit(parent)
    await gate.started.wait()
    draining = asyncio.create_task(flow.drain())
    await settle()
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is draining$"):
        await flow.emit(make_message("late"))
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is draining$"):
        flow.emit_nowait(make_message("late"))
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is draining$"):
        await flow.emit(make_message("late"), trace_id="late-trace")
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is draining$"):
        await flow.emit_chunk(parent=parent, text="late")
    gate.release()
    assert (await flow.fetch()).payload == "one"
    assert (await flow.fetch()).payload == "two"
    await draining
    assert not flow.statistics().running
    assert gate.seen == ["go"]


async def test_drain_timeout_stops_the_flow_and_reports_the_discarded_count() -> None:
    """On expiry drain() stops the flow and raises a TimeoutError naming the time and discarded count."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("held"))
    await flow.emit(make_message("queued"))
    await gate.started.wait()
    with pytest.raises(TimeoutError) as caught:
        await flow.drain(timeout_s=0.05)
    assert str(caught.value) == "drain timed out after 0.05s; 2 items discarded"
    stats = flow.statistics()
    assert not stats.running
    assert_empty(stats)


async def test_concurrent_drain_calls_share_the_outcome() -> None:
    """A second drain() during the first waits for the same drain and gets the same outcome."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("held"))
    await gate.started.wait()
    first = asyncio.create_task(flow.drain(timeout_s=0.05))
    await settle()
    second = asyncio.create_task(flow.drain())
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(outcome, TimeoutError) for outcome in outcomes), outcomes
    assert [str(outcome) for outcome in outcomes] == ["drain timed out after 0.05s; 1 items discarded"] * 2
    assert not flow.statistics().running


async def test_concurrent_drain_calls_both_return_once_idle() -> None:
    """Two drain() calls both return once the work is done and the flow has stopped."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("held"))
    await gate.started.wait()
    first = asyncio.create_task(flow.drain())
    second = asyncio.create_task(flow.drain())
    await settle()
    gate.release()
    assert (await flow.fetch()).payload == "held"
    assert list(await asyncio.gather(first, second)) == [None, None]
    assert not flow.statistics().running


async def test_drain_on_a_flow_that_is_not_running_returns_at_once() -> None:
    """drain() on a stopped flow returns immediately."""
    flow = create(Node(passthrough, name="only").to())
    await flow.drain()
    assert not flow.statistics().running


async def test_cancelling_drain_stops_the_flow() -> None:
    """A drain() cancelled by its caller stops the flow before re-raising CancelledError."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("held"))
    await gate.started.wait()
    draining = asyncio.create_task(flow.drain())
    await settle()
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    stats = flow.statistics()
    assert not stats.running
    assert_empty(stats)


async def test_a_drained_flow_can_run_again_and_accept_emits() -> None:
    """After drain() stops the flow, run() accepts emits again."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    await flow.drain()
    flow.run()
    await flow.emit(make_message("again"))
    assert (await flow.fetch()).payload == "again"
    assert await flow.stop() == 0


async def test_drain_waits_for_parked_join_inputs() -> None:
    """A join_k bucket still waiting for inputs keeps drain() waiting until its trace is cancelled."""
    join = join_k("join", 2)
    flow = create(join.to())
    flow.run()
    await flow.emit(make_message("one", trace_id="joined"))
    await settle()
    assert flow.statistics().parked_join_items == 1
    draining = asyncio.create_task(flow.drain())
    await settle()
    assert not draining.done()
    assert await flow.cancel("joined") is True
    await draining
    assert_empty(flow.statistics())


async def test_emit_without_a_target_broadcasts_the_same_object_to_every_ingress_node() -> None:
    """emit(msg) puts the very same object on every ingress edge."""
    seen: list[tuple[str, object]] = []

    def recording(name: str) -> Node:
        async def record(message: Any, ctx: Context) -> Any:
            seen.append((name, message))
            return message

        return Node(record, name=name)

    left, right = recording("left"), recording("right")
    flow = create(left.to(), right.to())
    flow.run()
    message = make_message("shared")
    await flow.emit(message)
    results = [await flow.fetch(), await flow.fetch()]
    assert sorted(name for name, _ in seen) == ["left", "right"]
    assert all(item is message for _, item in seen)
    assert all(result is message for result in results)
    assert await flow.stop() == 0


async def test_stop_reports_one_node_cancelled_per_node_and_no_trace_cancel_events() -> None:
    """stop() emits node_cancelled once per node, with no trace, and no trace_cancel_* events."""
    events: list[FlowEvent] = []

    async def record(event: FlowEvent) -> None:
        events.append(event)

    gate = Gate()
    head = Node(gate.hold, name="head")
    tail = Node(passthrough, name="tail", policy=NodePolicy(concurrency=2))
    flow = create(head.to(tail), tail.to(), middlewares=[record])
    flow.run()
    await flow.emit(make_message("held", trace_id="held"))
    await gate.started.wait()
    assert await flow.stop() == 1
    stopping = [event for event in events if event.event_type == "node_cancelled"]
    assert sorted(str(event.node_name) for event in stopping) == ["head", "tail"]
    assert all(event.trace_id is None for event in stopping)
    assert [event.event_type for event in events if event.trace_id == "held"] == ["node_start"]
    flow.run()
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="held")
    assert await flow.stop() == 0


async def test_a_roundtrip_waiting_on_its_lock_when_stop_runs_raises_not_running() -> None:
    """A second emit(trace_id=X) waiting on X's lock fails when stop() runs, and enqueues nothing."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("first"), trace_id="rt")
    await gate.started.wait()
    second = asyncio.create_task(flow.emit(make_message("second"), trace_id="rt"))
    await settle()
    assert not second.done()
    assert await flow.stop() == 1
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is not running$"):
        await second
    stats = flow.statistics()
    assert not stats.running
    assert_empty(stats)


async def test_an_emit_blocked_on_a_full_edge_when_stop_runs_raises_not_running() -> None:
    """A flow.emit waiting for room when stop() runs raises RuntimeError, and the counters stay exact."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to(), queue_maxsize=1)
    flow.run()
    await flow.emit(make_message("held"))
    await gate.started.wait()
    await flow.emit(make_message("queued"))
    blocked = asyncio.create_task(flow.emit(make_message("blocked")))
    await settle()
    assert not blocked.done()
    assert await flow.stop() == 2
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is not running$"):
        await blocked
    assert_empty(flow.statistics())
    flow.run()
    await flow.emit(make_message("next run"))
    draining = asyncio.create_task(flow.drain())
    await settle()
    assert not draining.done(), "the held item of the new run still counts"
    assert flow.statistics().active_traces == 1
    gate.release(2)
    assert (await flow.fetch()).payload == "next run"
    await draining
    assert_empty(flow.statistics())
