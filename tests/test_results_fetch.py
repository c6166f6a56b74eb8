"""Results and ``fetch`` (runtime.md section 10): ordering, ``from_``, claims, round trips, F2, F3."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from flowkit import Gate, assert_empty, make_message, passthrough, settle

from penguiflow_otel import (
    WM,
    Context,
    FinalAnswer,
    FlowError,
    FlowErrorCode,
    Headers,
    Message,
    Node,
    NodePolicy,
    PenguiFlow,
    create,
)


def tagging(tag: str) -> Node:
    """A node named ``tag`` that returns a copy of its message with the payload prefixed by the tag."""

    async def tag_payload(message: Any, ctx: Context) -> Any:
        return message.model_copy(update={"payload": f"{tag}:{message.payload}"})

    return Node(tag_payload, name=tag)


async def failing(message: Any, ctx: Context) -> Any:
    if getattr(message, "payload", message) == "ok":
        return message
    raise ValueError("bad input")


def split_flow(**kwargs: Any) -> tuple[PenguiFlow, Node, Node, Node]:
    """``head`` fanning out to two egress nodes, ``left`` and ``right``."""
    head = Node(passthrough, name="head")
    left = tagging("left")
    right = tagging("right")
    flow = create(head.to(left, right), left.to(), right.to(), **kwargs)
    return flow, head, left, right


# plain fetch -------------------------------------------------------------------------------------


async def test_plain_fetch_returns_results_in_delivery_order() -> None:
    """Results of a FIFO chain come out of plain fetch() in emission order."""
    first, second = Node(passthrough, name="first"), Node(passthrough, name="second")
    flow = create(first.to(second), second.to())
    flow.run()
    sent = [make_message(index) for index in range(20)]
    for message in sent:
        await flow.emit(message)
    got = [await flow.fetch() for _ in sent]
    assert got == sent
    assert all(a is b for a, b in zip(got, sent, strict=True))
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_fetch_any_is_an_alias_of_fetch() -> None:
    """fetch_any is the same function as fetch."""
    assert PenguiFlow.fetch_any is PenguiFlow.fetch


async def test_waiting_plain_fetches_are_served_first_come_first_served() -> None:
    """Two fetches waiting before any result get the results in the order they started waiting."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    earlier = asyncio.create_task(flow.fetch())
    await settle()
    later = asyncio.create_task(flow.fetch())
    await settle()
    one, two = make_message(1), make_message(2)
    await flow.emit(one)
    await flow.emit(two)
    assert await earlier is one
    assert await later is two
    assert await flow.stop() == 0


async def test_fetch_returns_any_object_and_flow_errors_as_values() -> None:
    """A delivered object is returned as is, and a FlowError is returned, never raised."""
    flow = create(Node(failing, name="boom").to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(["not", "a", "message"])
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.code == FlowErrorCode.NODE_EXCEPTION
    assert await flow.stop() == 0


# from_ -------------------------------------------------------------------------------------------


async def test_fetch_from_returns_only_that_egress_nodes_results() -> None:
    """fetch(from_=node) skips results delivered by other egress nodes, which stay for plain fetch()."""
    flow, _head, left, right = split_flow()
    flow.run()
    await flow.emit(make_message("x"))
    await settle()
    assert flow.statistics().buffered_results == 2
    assert (await flow.fetch(from_=right)).payload == "right:x"
    assert (await flow.fetch()).payload == "left:x"
    await flow.emit(make_message("y"))
    assert (await flow.fetch(from_=[left, right])).payload == "left:y"
    assert (await flow.fetch(from_=[right])).payload == "right:y"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_waiting_fetch_from_is_not_served_by_other_egress_nodes() -> None:
    """A fetch(from_=right) waiting before delivery is handed right's result; left's stays buffered."""
    flow, _head, _left, right = split_flow()
    flow.run()
    waiting = asyncio.create_task(flow.fetch(from_=right))
    await settle()
    await flow.emit(make_message("x"))
    assert (await waiting).payload == "right:x"
    assert flow.statistics().buffered_results == 1
    assert (await flow.fetch()).payload == "left:x"
    assert await flow.stop() == 0


async def test_fetch_from_a_non_egress_node_raises_key_error() -> None:
    """from_ naming a node without an edge to the Rookery raises KeyError("Unknown target X for Rookery")."""
    flow, head, _left, _right = split_flow()
    flow.run()
    with pytest.raises(KeyError) as caught:
        await flow.fetch(from_=head)
    assert caught.value.args == ("Unknown target head for Rookery",)
    assert await flow.stop() == 0


async def test_fetch_from_combined_with_trace_id_raises() -> None:
    """fetch(from_=..., trace_id=...) raises RuntimeError: trace-scoped fetch does not filter."""
    flow, _head, left, _right = split_flow()
    flow.run()
    with pytest.raises(RuntimeError) as caught:
        await flow.fetch(from_=left, trace_id="abc")
    assert str(caught.value) == "fetch(trace_id=...) does not support from_ filtering"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_fetch_from_is_refused_after_trace_scoped_use_until_the_next_run() -> None:
    """Once a trace-scoped call is made, fetch(from_=...) raises; a stop and run() allow it again."""
    flow, _head, left, _right = split_flow()
    flow.run()
    await flow.emit(make_message("x"), trace_id="scoped")
    message = "fetch(from_=...) is not supported once trace-scoped fetching is enabled"
    with pytest.raises(RuntimeError) as caught:
        await flow.fetch(from_=left)
    assert str(caught.value) == message
    assert (await flow.fetch(trace_id="scoped")).payload == "left:x"
    assert (await flow.fetch(trace_id="scoped")).payload == "right:x"
    assert await flow.stop() == 0
    flow.run()
    await flow.emit(make_message("y"))
    assert (await flow.fetch(from_=left)).payload == "left:y"
    assert await flow.stop() == 1


async def test_a_trace_scoped_fetch_alone_also_disables_fetch_from() -> None:
    """fetch(trace_id=...) counts as trace-scoped use, like emit(trace_id=...)."""
    flow, _head, left, _right = split_flow()
    flow.run()
    await flow.emit(make_message("x", trace_id="t-1"))
    assert (await flow.fetch(trace_id="t-1")).payload == "left:x"
    with pytest.raises(RuntimeError, match="trace-scoped fetching is enabled"):
        await flow.fetch(from_=left)
    assert await flow.stop() == 1


# trace-scoped fetch ------------------------------------------------------------------------------


async def test_trace_scoped_fetch_returns_only_that_traces_results() -> None:
    """fetch(trace_id=Y) returns Y's result even when X's was delivered first."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    first, second = make_message("x", trace_id="trace-x"), make_message("y", trace_id="trace-y")
    await flow.emit(first)
    await flow.emit(second)
    await settle()
    assert flow.statistics().buffered_results == 2
    assert await flow.fetch(trace_id="trace-y") is second
    assert await flow.fetch(trace_id="trace-x") is first
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_plain_fetch_never_returns_a_claimed_traces_result() -> None:
    """A trace claimed by emit(trace_id=...) is invisible to plain fetch(), even if its result came first."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    await flow.emit(make_message("claimed"), trace_id="claimed-trace")
    unclaimed = make_message("unclaimed")
    waiting = asyncio.create_task(flow.fetch())
    await flow.emit(unclaimed)
    assert await waiting is unclaimed
    assert flow.statistics().buffered_results == 1
    claimed = await flow.fetch(trace_id="claimed-trace")
    assert claimed.payload == "claimed"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_trace_scoped_fetch_claims_a_result_already_buffered() -> None:
    """A result buffered before its trace was claimed is taken by fetch(trace_id=...)."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    early = make_message("early", trace_id="early-trace")
    other = make_message("other")
    await flow.emit(early)
    await flow.emit(other)
    await settle()
    assert await flow.fetch(trace_id="early-trace") is early
    assert await flow.fetch() is other
    assert await flow.stop() == 0


async def test_several_results_of_one_trace_are_fetched_in_delivery_order() -> None:
    """Successive fetch(trace_id=X) calls return X's results one by one, and the last one ends the trace."""

    async def three(message: Any, ctx: Context) -> None:
        for index in range(3):
            await ctx.emit(message.model_copy(update={"payload": index}))

    flow = create(Node(three, name="three").to())
    flow.run()
    await flow.emit(make_message("go"), trace_id="multi")
    got = [await flow.fetch(trace_id="multi") for _ in range(3)]
    assert [result.payload for result in got] == [0, 1, 2]
    assert all(result.trace_id == "multi" for result in got)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_trace_scoped_fetch_after_the_trace_ended_waits_for_a_new_trace() -> None:
    """A fetch(trace_id=X) after X ended waits, and is served by the next trace with that id."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    await flow.emit(make_message("first"), trace_id="reused")
    assert (await flow.fetch(trace_id="reused")).payload == "first"
    waiting = asyncio.create_task(flow.fetch(trace_id="reused"))
    await settle()
    assert not waiting.done()
    assert flow.statistics().active_traces == 0
    await flow.emit(make_message("second", trace_id="reused"))
    assert (await waiting).payload == "second"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_a_full_result_buffer_of_one_trace_never_stalls_another_trace() -> None:
    """With trace X's buffer full and its deliverer waiting, other traces are fetched at once (F2)."""

    async def burst(message: Any, ctx: Context) -> None:
        count = 3 if message.payload == "burst" else 1
        for index in range(count):
            await ctx.emit(message.model_copy(update={"payload": f"{message.payload}-{index}"}))

    node = Node(burst, name="burst", policy=NodePolicy(concurrency=2))
    flow = create(node.to(), queue_maxsize=1)
    flow.run()
    await flow.emit(make_message("burst"), trace_id="slow")
    await settle()
    stats = flow.statistics()
    assert stats.node_inflight == {"burst": 1}, "the deliverer of X waits for room"
    assert stats.buffered_results == 1
    await flow.emit(make_message("quick"), trace_id="fast")
    assert (await flow.fetch(trace_id="fast")).payload == "quick-0"
    plain = make_message("plain")
    await flow.emit(plain)
    assert (await flow.fetch()).payload == "plain-0"
    assert flow.statistics().buffered_results == 1
    got = [(await flow.fetch(trace_id="slow")).payload for _ in range(3)]
    assert got == ["burst-0", "burst-1", "burst-2"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_unfetched_results_keep_their_trace_active() -> None:
    """A trace with a buffered result is active until the result is fetched."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    await flow.emit(make_message("x", trace_id="kept"))
    await settle()
    stats = flow.statistics()
    assert stats.active_traces == 1
    assert stats.pending == 1
    assert stats.edge_size["only->egress"] == 1
    await flow.fetch(trace_id="kept")
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


# round trips -------------------------------------------------------------------------------------


async def test_second_roundtrip_on_a_trace_waits_until_the_first_fetch_completes() -> None:
    """emit(trace_id=X) waits on X's roundtrip lock until the previous round trip's fetch returns."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("first"), trace_id="rt")
    second = asyncio.create_task(flow.emit(make_message("second"), trace_id="rt"))
    await settle()
    assert not second.done()
    gate.release()
    await settle()
    assert not second.done(), "the first result is delivered but not yet fetched"
    assert flow.statistics().edge_size["ingress->only"] == 0
    assert (await flow.fetch(trace_id="rt")).payload == "first"
    await second
    gate.release()
    assert (await flow.fetch(trace_id="rt")).payload == "second"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_a_fetch_cancelled_by_its_caller_releases_the_roundtrip_lock() -> None:
    """A trace-scoped fetch cancelled by its caller releases X's lock, so the next round trip proceeds."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("first"), trace_id="rt")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flow.fetch(trace_id="rt"), 0.01)
    await asyncio.wait_for(flow.emit(make_message("second"), trace_id="rt"), 1.0)
    gate.release(2)
    assert [(await flow.fetch(trace_id="rt")).payload for _ in range(2)] == ["first", "second"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_a_failed_roundtrip_emit_releases_the_lock() -> None:
    """An emit(trace_id=X) that raises while enqueueing leaves X's lock free for the next round trip."""
    first = Node(passthrough, name="first")
    second = Node(passthrough, name="second")
    flow = create(first.to(second), second.to())
    flow.run()
    with pytest.raises(KeyError):
        await flow.emit(make_message("x"), to=second, trace_id="rt")
    await asyncio.wait_for(flow.emit(make_message("y"), trace_id="rt"), 1.0)
    assert (await flow.fetch(trace_id="rt")).payload == "y"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


# cancelled fetches -------------------------------------------------------------------------------


async def test_a_timed_out_plain_fetch_consumes_nothing() -> None:
    """A plain fetch abandoned by wait_for leaves the next result to the next fetch."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flow.fetch(), 0.01)
    message = make_message("kept")
    await flow.emit(message)
    assert await flow.fetch() is message
    assert await flow.stop() == 0


async def test_a_plain_fetch_cancelled_after_being_handed_a_result_consumes_nothing() -> None:
    """A plain fetch cancelled in the same step its result is handed over puts the result back."""
    victims: list[asyncio.Task[Any]] = []

    async def deliver_then_cancel(message: Any, ctx: Context) -> None:
        await ctx.emit(message)
        victims[0].cancel()

    flow = create(Node(deliver_then_cancel, name="only").to())
    flow.run()
    victims.append(asyncio.create_task(flow.fetch()))
    await settle()
    message = make_message("handed")
    await flow.emit(message)
    with pytest.raises(asyncio.CancelledError):
        await victims[0]
    assert flow.statistics().buffered_results == 1
    assert await flow.fetch() is message
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_a_trace_scoped_fetch_cancelled_after_being_handed_a_result_consumes_nothing() -> None:
    """A fetch(trace_id=X) cancelled in the same step its result is handed over puts the result back."""
    victims: list[asyncio.Task[Any]] = []

    async def deliver_then_cancel(message: Any, ctx: Context) -> None:
        await ctx.emit(message)
        victims[0].cancel()

    flow = create(Node(deliver_then_cancel, name="only").to())
    flow.run()
    victims.append(asyncio.create_task(flow.fetch(trace_id="handed")))
    await settle()
    message = make_message("handed", trace_id="handed")
    await flow.emit(message)
    with pytest.raises(asyncio.CancelledError):
        await victims[0]
    assert flow.statistics().buffered_results == 1
    assert await flow.fetch(trace_id="handed") is message
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


# emit(trace_id=...) ------------------------------------------------------------------------------


async def test_roundtrip_emit_requires_a_running_flow() -> None:
    """emit(trace_id=...) raises RuntimeError("PenguiFlow is not running") before run() and after stop()."""
    flow = create(Node(passthrough, name="only").to())
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is not running$"):
        await flow.emit(make_message("x"), trace_id="rt")
    flow.run()
    assert await flow.stop() == 0
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is not running$"):
        await flow.emit(make_message("x"), trace_id="rt")
    assert_empty(flow.statistics())


@dataclass(frozen=True)
class FrozenItem:
    """An object whose trace_id cannot be written."""

    trace_id: str


@pytest.mark.parametrize("item", [object(), ("a", "tuple"), 42, FrozenItem("fixed")])
async def test_roundtrip_emit_rejects_objects_without_a_writable_trace_id(item: object) -> None:
    """emit(trace_id=...) on an object whose trace_id cannot be set raises TypeError and counts nothing."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    with pytest.raises(TypeError) as caught:
        await flow.emit(item, trace_id="rt")
    assert str(caught.value) == "emit(trace_id=...) requires a Message (or object with writable .trace_id)"
    assert_empty(flow.statistics())
    await asyncio.wait_for(flow.emit(make_message("next"), trace_id="rt"), 1.0)
    assert (await flow.fetch(trace_id="rt")).payload == "next"
    assert await flow.stop() == 0


class Envelope:
    """A non-Message object with a writable trace_id."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.trace_id: str | None = None


async def test_roundtrip_emit_sets_the_trace_id_of_a_plain_object() -> None:
    """An object with a writable trace_id gets the trace id set and travels as that trace."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    envelope = Envelope("body")
    await flow.emit(envelope, trace_id="custom")
    assert envelope.trace_id == "custom"
    assert await flow.fetch(trace_id="custom") is envelope
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_roundtrip_emit_copies_a_message_with_another_trace_id() -> None:
    """A Message with another trace id is copied with the requested one; the original keeps its id."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    original = make_message("x", trace_id="original")
    await flow.emit(original, trace_id="requested")
    result = await flow.fetch(trace_id="requested")
    assert result is not original
    assert result.trace_id == "requested"
    assert result.payload == "x"
    assert original.trace_id == "original"
    assert await flow.stop() == 0


async def test_roundtrip_emit_rejects_a_trace_id_contradicting_the_traceparent() -> None:
    """A valid headers.traceparent naming another trace makes emit(trace_id=...) raise ValueError."""
    trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = Headers(tenant="t", traceparent=f"00-{trace_hex}-00f067aa0ba902b7-01")
    message: Message[str] = Message(payload="x", headers=headers)
    assert message.trace_id == trace_hex
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    with pytest.raises(ValueError, match="trace_id does not match") as caught:
        await flow.emit(message, trace_id="f" * 32)
    assert str(caught.value) == "trace_id does not match headers.traceparent"
    assert_empty(flow.statistics())
    await flow.emit(message, trace_id=trace_hex)
    assert await flow.fetch(trace_id=trace_hex) is message
    assert await flow.stop() == 0


# WM de-duplication -------------------------------------------------------------------------------


async def test_re_emitting_the_latest_wm_stream_update_is_dropped() -> None:
    """A WM whose hops equal the latest WM delivered for its trace is dropped on every emit path."""
    gate = Gate()

    async def controller(message: Any, ctx: Context) -> Any:
        if message.payload.hops >= 1:
            await gate.hold(message, ctx)
            return message.model_copy(update={"payload": FinalAnswer(text="done")})
        return message

    node = Node(controller, name="controller", allow_cycle=True)
    flow = create(node.to(node))
    flow.run()
    start = make_message(WM(query="q", budget_hops=None), trace_id="loop")
    await flow.emit(start)
    await gate.started.wait()
    update = await flow.fetch()
    assert isinstance(update.payload, WM)
    assert update.payload.hops == 1
    before = flow.statistics()
    await flow.emit(update)
    flow.emit_nowait(update)
    await flow.emit(update, trace_id="loop")
    await asyncio.wait_for(flow.emit(update, trace_id="loop"), 1.0)
    after = flow.statistics()
    assert after.pending == before.pending
    assert after.edge_size["ingress->controller"] == 0
    fresh_hops = update.model_copy(update={"payload": update.payload.model_copy(update={"hops": 7})})
    flow.emit_nowait(fresh_hops)
    assert flow.statistics().edge_size["ingress->controller"] == 1
    assert await flow.stop() == 2


# errors to the Rookery ---------------------------------------------------------------------------


async def test_terminal_failure_of_a_traced_message_is_fetched_as_a_flow_error() -> None:
    """With emit_errors_to_rookery, a traced failure becomes its trace's result: a FlowError value."""
    node = Node(failing, name="boom")
    flow = create(node.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("bad"), trace_id="failing")
    error = await flow.fetch(trace_id="failing")
    assert isinstance(error, FlowError)
    assert error.code == FlowErrorCode.NODE_EXCEPTION
    assert error.trace_id == "failing"
    assert error.node_name == "boom"
    assert error.message == "Node 'boom' raised ValueError: bad input"
    assert isinstance(error.__cause__, ValueError)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_payload_only_failure_reaches_the_rookery_as_an_untraced_flow_error() -> None:
    """A payload-only failure is delivered as FlowError(trace_id=None) from the failing node (F3)."""
    boom = Node(failing, name="boom")
    flow = create(boom.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit({"payload": "only"})
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.trace_id is None
    assert error.node_name == "boom"
    assert error.code == FlowErrorCode.NODE_EXCEPTION
    await flow.emit({"payload": "again"})
    from_boom = await flow.fetch(from_=boom)
    assert isinstance(from_boom, FlowError)
    assert from_boom.trace_id is None
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_payload_only_failure_of_an_inner_node_is_filed_under_that_node() -> None:
    """An untraced error from a non-egress node is skipped by fetch(from_=egress), not by fetch()."""
    head = Node(failing, name="head")
    tail = tagging("tail")
    flow = create(head.to(tail), tail.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit({"payload": "bad"})
    await settle()
    await flow.emit(make_message("ok"))
    assert (await flow.fetch(from_=tail)).payload == "tail:ok"
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.node_name == "head"
    assert error.trace_id is None
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_failures_are_silent_by_default() -> None:
    """Without emit_errors_to_rookery, a failed message is dropped and fetch sees only later results."""
    flow = create(Node(failing, name="boom").to())
    flow.run()
    await flow.emit(make_message("bad"))
    await flow.emit({"payload": "bad"})
    good = make_message("ok")
    await flow.emit(good)
    assert await flow.fetch() is good
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_result_buffers_are_unbounded_when_queue_maxsize_is_zero() -> None:
    """With queue_maxsize=0, one trace may buffer any number of results without blocking its node."""

    async def many(message: Any, ctx: Context) -> None:
        for index in range(200):
            await ctx.emit(message.model_copy(update={"payload": index}))

    flow = create(Node(many, name="many").to(), queue_maxsize=0)
    flow.run()
    await flow.emit(make_message("go", trace_id="many"))
    await settle()
    stats = flow.statistics()
    assert stats.buffered_results == 200
    assert stats.node_inflight == {"many": 0}
    assert stats.edge_capacity["many->egress"] == 0
    got = [(await flow.fetch(trace_id="many")).payload for _ in range(200)]
    assert got == list(range(200))
    assert_empty(flow.statistics())
    assert await flow.stop() == 0
