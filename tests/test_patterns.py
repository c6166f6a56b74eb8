"""Patterns: join_k, predicate_router, union_router and map_concurrent."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from flowkit import EventRecorder, fetch, make_message
from pydantic import BaseModel, ValidationError

from penguiflow_otel import (
    Context,
    DictRoutingPolicy,
    FlowError,
    ModelRegistry,
    Node,
    PenguiFlow,
    RoutingRequest,
    create,
    join_k,
    map_concurrent,
    predicate_router,
    union_router,
)


def transform(name: str, suffix: str, gate: asyncio.Event | None = None) -> Node:
    """A node appending ``suffix`` to the payload, optionally after ``gate`` opens."""

    async def step(message: Any, ctx: Context) -> Any:
        if gate is not None:
            await gate.wait()
        return message.model_copy(update={"payload": f"{message.payload}{suffix}"})

    return Node(step, name=name)


# join_k ----------------------------------------------------------------------------------------


async def test_join_k_joins_k_messages_of_a_trace_in_arrival_order(recorder: EventRecorder) -> None:
    """After a fan-out, join_k emits one message whose payload lists the k inputs as they arrived."""
    gate = asyncio.Event()

    async def split(message: Any, ctx: Context) -> Any:
        return message

    source = Node(split, name="split")
    slow, fast = transform("slow", "-slow", gate), transform("fast", "-fast")
    join = join_k("join", 2)
    flow = create(source.to(slow, fast), slow.to(join), fast.to(join), join.to(), middlewares=[recorder])
    flow.run()
    message = make_message("in", meta={"m": 1})
    await flow.emit(message)
    await recorder.wait_for("node_success", "join")  # the fast branch's output is parked
    assert flow.statistics().parked_join_items == 1
    gate.set()
    result = await fetch(flow)
    assert result.payload == ["in-fast", "in-slow"]
    assert result.trace_id == message.trace_id
    assert result.meta == {"m": 1}
    assert flow.statistics().parked_join_items == 0
    await flow.stop()


async def test_join_k_of_plain_traced_objects_returns_the_list_of_items() -> None:
    """When the first item is not a Message, the joined result is the list of the items themselves."""

    @dataclass
    class Traced:
        trace_id: str
        value: int

    join = join_k("join", 3)
    flow = create(join.to())
    flow.run()
    items = [Traced("trace-1", i) for i in range(3)]
    for item in items:
        await flow.emit(item)
    result = await fetch(flow)
    assert result == items
    assert all(got is sent for got, sent in zip(result, items, strict=True))
    await flow.stop()


async def test_join_k_buckets_are_per_trace() -> None:
    """Inputs of different traces never complete each other's buckets."""
    join = join_k("join", 2)
    flow = create(join.to())
    flow.run()
    first, second = make_message("a1"), make_message("b1")
    await flow.emit(first)
    await flow.emit(second)
    await flow.emit(make_message("a2", trace_id=first.trace_id))
    result = await fetch(flow)
    assert (result.trace_id, result.payload) == (first.trace_id, ["a1", "a2"])
    assert flow.statistics().parked_join_items == 1
    await flow.emit(make_message("b2", trace_id=second.trace_id))
    result = await fetch(flow)
    assert (result.trace_id, result.payload) == (second.trace_id, ["b1", "b2"])
    await flow.stop()


async def test_parked_join_inputs_are_counted_and_keep_the_trace_active(recorder: EventRecorder) -> None:
    """A partial bucket is visible in statistics and holds its trace open until it completes."""
    join = join_k("join", 2)
    flow = create(join.to(), middlewares=[recorder])
    flow.run()
    first = make_message(1)
    await flow.emit(first)
    await recorder.wait_for("node_success")
    stats = flow.statistics()
    assert stats.parked_join_items == 1
    assert stats.active_traces == 1
    assert stats.pending == 1
    assert stats.trace_tables["join_buckets"] == 1
    assert recorder.of("node_success")[0].trace_pending == 2  # the parked input and the held one
    await flow.emit(make_message(2, trace_id=first.trace_id))
    result = await fetch(flow)
    assert result.payload == [1, 2]
    stats = flow.statistics()
    assert (stats.parked_join_items, stats.active_traces, stats.pending) == (0, 0, 0)
    assert all(size == 0 for size in stats.trace_tables.values())
    await flow.stop()


async def test_join_timeout_delivers_a_join_timeout_error_before_releasing_the_trace(
    recorder: EventRecorder,
) -> None:
    """An expired bucket emits join_timeout and a JOIN_TIMEOUT FlowError that keeps the trace active."""
    join = join_k("join", 3, timeout_s=0.05)
    flow = create(join.to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    first = make_message(1)
    await flow.emit(first)
    error = await fetch(flow)
    assert isinstance(error, FlowError)
    assert error.code == "JOIN_TIMEOUT"
    assert error.message == "join_k 'join' timed out after 0.05s with 1/3 messages"
    assert error.metadata == {"received": 1, "expected": 3, "timeout_s": 0.05}
    assert (error.trace_id, error.node_name, error.node_id) == (first.trace_id, "join", join.node_id)
    timeout = recorder.of("join_timeout")[0]
    assert timeout.extra == {"received": 1, "expected": 3, "timeout_s": 0.05}
    stats = flow.statistics()
    assert (stats.parked_join_items, stats.active_traces) == (0, 0)
    assert all(size == 0 for size in stats.trace_tables.values())
    await flow.stop()


async def test_join_timeout_error_is_buffered_while_the_inputs_are_released(recorder: EventRecorder) -> None:
    """Until the JOIN_TIMEOUT error is fetched, the trace stays active with only that result pending."""
    join = join_k("join", 2, timeout_s=0.05)
    flow = create(join.to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message(1))
    await recorder.wait_for("join_timeout")
    stats = flow.statistics()
    assert (stats.parked_join_items, stats.buffered_results, stats.pending, stats.active_traces) == (
        0,
        1,
        1,
        1,
    )
    assert isinstance(await fetch(flow), FlowError)
    assert flow.statistics().active_traces == 0
    await flow.stop()


async def test_join_timeout_without_errors_to_rookery_just_ends_the_trace(recorder: EventRecorder) -> None:
    """By default an expired bucket is dropped silently after join_timeout and its trace ends."""
    join = join_k("join", 2, timeout_s=0.05)
    flow = create(join.to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message(1))
    await recorder.wait_for("join_timeout")
    stats = flow.statistics()
    assert (stats.parked_join_items, stats.active_traces, stats.buffered_results) == (0, 0, 0)
    assert stats.trace_tables["join_buckets"] == 0
    await flow.stop()


async def test_completed_join_does_not_time_out_later(recorder: EventRecorder) -> None:
    """A bucket that completes in time stops its timer: no join_timeout afterwards."""
    join = join_k("join", 2, timeout_s=0.05)
    flow = create(join.to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    first = make_message(1)
    await flow.emit(first)
    await flow.emit(make_message(2, trace_id=first.trace_id))
    assert (await fetch(flow)).payload == [1, 2]
    await asyncio.sleep(0.1)  # past the timeout
    assert recorder.of("join_timeout") == []
    assert flow.statistics().buffered_results == 0
    await flow.stop()


async def test_cancel_drops_the_partial_bucket(
    caplog: pytest.LogCaptureFixture, recorder: EventRecorder
) -> None:
    """Cancelling a trace purges its parked join inputs and ends it."""
    caplog.set_level(logging.DEBUG, logger="penguiflow_otel.patterns")
    join = join_k("join", 2)
    flow = create(join.to(), middlewares=[recorder])
    flow.run()
    first = make_message(1)
    await flow.emit(first)
    await recorder.wait_for("node_success")
    assert await flow.cancel(first.trace_id) is True
    stats = flow.statistics()
    assert (stats.parked_join_items, stats.active_traces, stats.pending) == (0, 0, 0)
    assert stats.trace_tables["join_buckets"] == 0
    assert [e.event_type for e in recorder.events] == [
        "node_start",
        "node_success",
        "trace_cancel_start",
        "trace_cancel_finish",
    ]
    assert recorder.of("trace_cancel_start")[0].extra == {"pending": 1}
    dropped = [r for r in caplog.records if r.getMessage() == "join_bucket_dropped"]
    assert len(dropped) == 1
    assert dropped[0].levelno == logging.DEBUG
    # the id now starts a new trace, with a fresh bucket
    await flow.emit(make_message(2, trace_id=first.trace_id))
    await flow.emit(make_message(3, trace_id=first.trace_id))
    assert (await fetch(flow)).payload == [2, 3]
    await flow.stop()


async def test_stop_drops_partial_buckets_and_counts_them_discarded(
    caplog: pytest.LogCaptureFixture,
    recorder: EventRecorder,
) -> None:
    """stop() discards parked join inputs, so a later run starts with no buckets."""
    caplog.set_level(logging.DEBUG, logger="penguiflow_otel.patterns")
    join = join_k("join", 2)
    flow = create(join.to(), middlewares=[recorder])
    flow.run()
    first = make_message(1)
    await flow.emit(first)
    await recorder.wait_for("node_success")
    assert await flow.stop() == 1
    stats = flow.statistics()
    assert (stats.parked_join_items, stats.trace_tables["join_buckets"]) == (0, 0)
    assert [r.getMessage() for r in caplog.records].count("join_bucket_dropped") == 1
    flow.run()
    await flow.emit(make_message(2, trace_id=first.trace_id))
    await flow.emit(make_message(3, trace_id=first.trace_id))
    assert (await fetch(flow)).payload == [2, 3]
    await flow.stop()


@pytest.mark.parametrize("k", [0, -1])
def test_join_k_rejects_a_non_positive_k(k: int) -> None:
    """k must be at least 1."""
    with pytest.raises(ValueError, match=r"^k must be positive$"):
        join_k("join", k)


@pytest.mark.parametrize("timeout_s", [0, -0.5])
def test_join_k_rejects_a_non_positive_timeout(timeout_s: float) -> None:
    """A given timeout_s must be positive."""
    with pytest.raises(ValueError, match=r"^timeout_s must be positive$"):
        join_k("join", 2, timeout_s=timeout_s)


def test_join_k_and_routers_do_not_validate() -> None:
    """join_k and both routers force validate='none', so a registry needs no entry for them."""

    class Only(BaseModel):
        kind: Literal["x"] = "x"

    nodes = [join_k("j", 2), predicate_router("p", lambda m: None), union_router("u", Only)]
    assert [node.policy.validate for node in nodes] == ["none", "none", "none"]


async def test_routers_and_join_need_no_registry_entries() -> None:
    """run(registry=...) accepts a flow of join and router nodes with an empty registry."""
    join = join_k("j", 1)
    router = predicate_router("p", lambda m: "j")
    flow = create(router.to(join), join.to())
    flow.run(registry=ModelRegistry())
    await flow.emit(make_message("v"))
    assert (await fetch(flow)).payload == ["v"]
    await flow.stop()


async def test_join_k_without_a_trace_id_raises_even_when_called_directly() -> None:
    """The node function itself rejects a payload-only item, whatever context it is given."""
    join = join_k("join", 2)
    with pytest.raises(ValueError, match=r"^join_k requires messages with trace_id$"):
        await join.func({"no": "trace"}, Context(join))


async def test_join_k_without_a_trace_id_fails_the_message_in_a_flow() -> None:
    """In a flow, a payload-only input to join_k is a node error delivered as a FlowError."""
    flow = create(join_k("join", 2).to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit({"no": "trace"})
    error = await fetch(flow)
    assert isinstance(error, FlowError)
    assert error.message == "Node 'join' raised ValueError: join_k requires messages with trace_id"
    assert error.trace_id is None
    await flow.stop()


# predicate_router ------------------------------------------------------------------------------


def sink(name: str, received: dict[str, list[object]]) -> Node:
    """A node recording what it receives under ``name`` and passing it on."""

    async def collect(message: Any, ctx: Context) -> Any:
        received[name].append(message)
        return message

    return Node(collect, name=name)


def routed_flow(
    router: Node, received: dict[str, list[object]], **kwargs: Any
) -> tuple[PenguiFlow, Node, Node]:
    """A running flow: router -> (left, right), both egress."""
    left, right = sink("left", received), sink("right", received)
    flow = create(router.to(left, right), left.to(), right.to(), **kwargs)
    flow.run()
    return flow, left, right


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("left", ["left"]), (["right"], ["right"]), (("left", "right"), ["left", "right"])],
)
async def test_predicate_router_forwards_the_same_message_to_named_successors(
    choice: Any, expected: list[str]
) -> None:
    """Names returned by the predicate select successors; the message object itself is forwarded."""
    received: dict[str, list[object]] = defaultdict(list)
    flow, _, _ = routed_flow(predicate_router("router", lambda m: choice), received)
    message = make_message("p")
    await flow.emit(message)
    for _ in expected:
        assert await fetch(flow) is message
    assert sorted(received) == expected
    assert all(items == [message] and items[0] is message for items in received.values())
    await flow.stop()


async def test_predicate_router_accepts_node_objects() -> None:
    """The predicate may return successor nodes rather than names."""
    received: dict[str, list[object]] = defaultdict(list)
    targets: list[Node] = []
    flow, _, right = routed_flow(predicate_router("router", lambda m: targets), received)
    targets.append(right)
    await flow.emit(make_message("p"))
    await fetch(flow)
    assert list(received) == ["right"]
    await flow.stop()


@pytest.mark.parametrize("choice", [None, [], ()])
async def test_predicate_router_drops_on_none_or_empty(choice: Any, recorder: EventRecorder) -> None:
    """None or an empty selection drops the message silently."""
    received: dict[str, list[object]] = defaultdict(list)
    flow, _, _ = routed_flow(predicate_router("router", lambda m: choice), received, middlewares=[recorder])
    await flow.emit(make_message("p"))
    await recorder.wait_for("node_success")
    stats = flow.statistics()
    assert (stats.active_traces, stats.buffered_results) == (0, 0)
    assert received == {}
    assert recorder.of("node_failed") == []
    await flow.stop()


async def router_error(router: Node, item: object = None) -> BaseException:
    """The original exception of the router's terminal failure on ``item`` (default: a Message)."""
    received: dict[str, list[object]] = defaultdict(list)
    flow, _, _ = routed_flow(router, received, emit_errors_to_rookery=True)
    await flow.emit(make_message("p") if item is None else item)
    error = await fetch(flow)
    await flow.stop()
    assert isinstance(error, FlowError)
    assert error.node_name == "router"
    assert received == {}
    assert error.original_exc is not None
    return error.original_exc


async def test_predicate_router_unknown_name_is_a_key_error() -> None:
    """A name that is not a successor raises KeyError naming it."""
    exc = await router_error(predicate_router("router", lambda m: "middle"))
    assert isinstance(exc, KeyError)
    assert exc.args == ("No successor named 'middle'",)


@pytest.mark.parametrize("choice", [[42], ["left", 3.5], 42])
async def test_predicate_router_target_of_the_wrong_type_is_a_type_error(choice: Any) -> None:
    """A target that is neither a Node nor a str raises TypeError."""
    exc = await router_error(predicate_router("router", lambda m: choice))
    assert isinstance(exc, TypeError)
    assert exc.args == ("Targets must be Node or str",)


async def test_predicate_router_policy_sees_the_request_and_narrows_the_choice() -> None:
    """A policy gets message, context, node, proposed targets and trace id, and picks the targets."""
    received: dict[str, list[object]] = defaultdict(list)
    requests: list[RoutingRequest] = []

    async def only_right(request: RoutingRequest) -> Any:
        requests.append(request)
        return [node for node in request.proposed if node.name == "right"]

    router = predicate_router("router", lambda m: ["left", "right"], policy=only_right)
    flow, _, _ = routed_flow(router, received)
    message = make_message("p")
    await flow.emit(message)
    await fetch(flow)
    assert list(received) == ["right"]
    (request,) = requests
    assert request.message is message
    assert request.node is router
    assert request.node_name == "router"
    assert request.proposed_names == ("left", "right")
    assert request.trace_id == message.trace_id
    assert isinstance(request.context, Context)
    assert request.context.owner is router
    await flow.stop()


@pytest.mark.parametrize("decision", [None, []])
async def test_predicate_router_policy_returning_nothing_drops(
    decision: Any, recorder: EventRecorder
) -> None:
    """A policy decision of None or empty drops the message."""
    received: dict[str, list[object]] = defaultdict(list)
    router = predicate_router("router", lambda m: "left", policy=lambda request: decision)
    flow, _, _ = routed_flow(router, received, middlewares=[recorder])
    await flow.emit(make_message("p"))
    await recorder.wait_for("node_success")
    assert received == {}
    assert flow.statistics().active_traces == 0
    await flow.stop()


async def test_dict_routing_policy_routes_by_trace_id_with_a_default() -> None:
    """DictRoutingPolicy looks the trace id up, falling back to its default."""
    received: dict[str, list[object]] = defaultdict(list)
    vip = make_message("vip")
    policy = DictRoutingPolicy({vip.trace_id: "right"}, default="left")
    flow, _, _ = routed_flow(predicate_router("router", lambda m: ["left", "right"], policy=policy), received)
    regular = make_message("regular")
    await flow.emit(vip)
    await flow.emit(regular)
    await fetch(flow)
    await fetch(flow)
    assert received == {"right": [vip], "left": [regular]}
    await flow.stop()


async def test_dict_routing_policy_with_a_key_getter_and_no_default_drops_unknown_keys(
    recorder: EventRecorder,
) -> None:
    """With a key getter the mapping is keyed by anything; an unknown key with no default drops."""
    received: dict[str, list[object]] = defaultdict(list)
    policy = DictRoutingPolicy(
        {"gold": ["left", "right"]}, key_getter=lambda request: request.message.payload
    )
    router = predicate_router("router", lambda m: ["left"], policy=policy)
    flow, _, _ = routed_flow(router, received, middlewares=[recorder])
    await flow.emit(make_message("bronze"))
    await recorder.wait_for("node_success")
    assert received == {}
    await flow.emit(make_message("gold"))
    await fetch(flow)
    await fetch(flow)
    assert sorted(received) == ["left", "right"]
    await flow.stop()


async def test_policy_choosing_an_unknown_name_is_a_key_error() -> None:
    """A policy decision naming no successor raises the same KeyError as the predicate would."""
    exc = await router_error(predicate_router("router", lambda m: "left", policy=lambda r: "nowhere"))
    assert isinstance(exc, KeyError)
    assert exc.args == ("No successor named 'nowhere'",)


# union_router ----------------------------------------------------------------------------------


class Left(BaseModel):
    """Routed by its kind."""

    kind: Literal["left"] = "left"
    value: int


class Right(BaseModel):
    """Routed by its kind."""

    kind: Literal["right"] = "right"
    text: str


class Unnamed(BaseModel):
    """Without a kind; routed by class name."""

    flag: bool


async def test_union_router_routes_the_validated_object_by_kind() -> None:
    """The input is validated against the union and the validated model goes to its kind's node."""
    received: dict[str, list[object]] = defaultdict(list)
    flow, _, _ = routed_flow(union_router("router", Left | Right), received)
    await flow.emit({"kind": "right", "text": "hi"})
    await flow.emit({"kind": "left", "value": "7"})
    results = [await fetch(flow), await fetch(flow)]
    assert Right(text="hi") in results
    assert Left(value=7) in results
    assert received == {"right": [Right(text="hi")], "left": [Left(value=7)]}
    await flow.stop()


async def test_union_router_falls_back_to_the_class_name() -> None:
    """A validated object without a kind attribute is routed by its class name."""
    received: dict[str, list[object]] = defaultdict(list)
    target = sink("Unnamed", received)
    router = union_router("router", Unnamed)
    flow = create(router.to(target), target.to())
    flow.run()
    await flow.emit({"flag": True})
    assert await fetch(flow) == Unnamed(flag=True)
    await flow.stop()


async def test_union_router_without_a_matching_successor_is_a_key_error() -> None:
    """A kind naming no successor raises KeyError('No successor matches ...')."""

    class Middle(BaseModel):
        kind: Literal["middle"] = "middle"

    exc = await router_error(union_router("router", Middle), {"kind": "middle"})
    assert isinstance(exc, KeyError)
    assert exc.args == ("No successor matches 'middle'",)


async def test_union_router_rejects_a_message_envelope() -> None:
    """A Message does not validate against the union: the router fails with a ValidationError."""
    exc = await router_error(union_router("router", Left | Right))
    assert isinstance(exc, ValidationError)


async def test_union_router_policy_can_override_the_kind() -> None:
    """With a policy, the router's proposal is the kind's node and the policy has the last word."""
    received: dict[str, list[object]] = defaultdict(list)
    proposals: list[tuple[str, ...]] = []

    def to_right(request: RoutingRequest) -> Any:
        proposals.append(request.proposed_names)
        assert request.message == Left(value=1)
        return "right"

    flow, _, _ = routed_flow(union_router("router", Left | Right, policy=to_right), received)
    await flow.emit({"kind": "left", "value": 1})
    assert await fetch(flow) == Left(value=1)
    assert list(received) == ["right"]
    assert proposals == [("left",)]
    await flow.stop()


# map_concurrent --------------------------------------------------------------------------------


async def test_map_concurrent_keeps_input_order() -> None:
    """Results come back in input order even when later items finish first."""
    events = [asyncio.Event() for _ in range(3)]

    async def worker(i: int) -> str:
        if i < 2:
            await events[i + 1].wait()
        events[i].set()
        return f"r{i}"

    assert await map_concurrent([0, 1, 2], worker, max_concurrency=3) == ["r0", "r1", "r2"]


@pytest.mark.parametrize(("limit", "expected_peak"), [(2, 2), (1, 1), (0, 1), (-3, 1), (10, 6)])
async def test_map_concurrent_never_exceeds_its_concurrency(limit: int, expected_peak: int) -> None:
    """At most max(1, max_concurrency) workers run at once, and that many do."""
    active = 0
    peak = 0

    async def worker(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        active -= 1
        return i * i

    assert await map_concurrent(range(6), worker, max_concurrency=limit) == [0, 1, 4, 9, 16, 25]
    assert peak == expected_peak


async def test_map_concurrent_default_concurrency_is_eight() -> None:
    """Without max_concurrency, eight workers run at once."""
    active = 0
    peak = 0

    async def worker(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        return i

    await map_concurrent(range(20), worker)
    assert peak == 8


async def test_map_concurrent_propagates_the_first_exception_without_cancelling_siblings() -> None:
    """The first failure is raised; the other workers keep running to completion."""
    gate = asyncio.Event()
    finished: list[int] = []
    both_done = asyncio.Event()

    async def worker(i: int) -> int:
        if i == 1:
            raise ValueError("item 1 failed")
        await gate.wait()
        finished.append(i)
        if len(finished) == 2:
            both_done.set()
        return i

    with pytest.raises(ValueError, match="item 1 failed"):
        await map_concurrent([0, 1, 2], worker)
    gate.set()
    async with asyncio.timeout(2):
        await both_done.wait()
    assert sorted(finished) == [0, 2]


async def test_map_concurrent_of_nothing_is_an_empty_list() -> None:
    """No items give an empty result."""

    async def worker(i: int) -> int:
        return i

    assert await map_concurrent([], worker) == []
