"""The upstream-compatible test kit: run_one, recorded node order, simulated failures, envelope checks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from penguiflow_otel import (
    Context,
    FlowErrorCode,
    Headers,
    Message,
    ModelRegistry,
    Node,
    NodePolicy,
    PenguiFlow,
    create,
    testkit,
)


def make_message(payload: object = "hello") -> Message[Any]:
    """A message for tenant ``test``."""
    return Message(payload=payload, headers=Headers(tenant="test"))


async def shout(message: Any, ctx: Context) -> Any:
    """Upper-cases the payload, keeping the envelope."""
    return message.model_copy(update={"payload": str(message.payload).upper()})


async def swallow(message: Any, ctx: Context) -> None:
    """Routes nothing, so no result ever reaches the Rookery."""


def one_node_flow(func: Any = shout, name: str = "shout") -> PenguiFlow:
    """A flow of a single egress node."""
    node = Node(func, name=name)
    return create(node.to())


def event_types(trace_id: str) -> list[str]:
    """The recorded event types of one trace, in order."""
    return [event.event_type for event in testkit.get_recorded_events(trace_id)]


# run_one -------------------------------------------------------------------------------------


async def test_run_one_returns_the_first_result_and_stops_the_flow() -> None:
    """run_one starts the flow, returns its first result and leaves the flow stopped."""
    flow = create(Node(shout, name="shout").to(Node(shout, name="again")))
    message = make_message()

    result = await testkit.run_one(flow, message)

    assert result.payload == "HELLO"
    assert result.trace_id == message.trace_id
    assert flow.statistics().running is False


async def test_run_one_rejects_a_payload_that_is_not_a_message() -> None:
    """Anything but a Message is refused with a TypeError before the flow starts."""
    flow = one_node_flow()
    not_a_message: Any = {"payload": "hello"}

    with pytest.raises(TypeError) as caught:
        await testkit.run_one(flow, not_a_message)

    assert str(caught.value) == "run_one expects a penguiflow_otel.types.Message instance"
    assert flow.statistics().running is False


async def test_run_one_stops_the_flow_when_no_result_arrives_in_time() -> None:
    """A fetch that exceeds timeout_s raises TimeoutError and the flow is still stopped."""
    flow = one_node_flow(swallow, "swallow")

    with pytest.raises(TimeoutError):
        await testkit.run_one(flow, make_message(), timeout_s=0.05)

    assert flow.statistics().running is False


async def test_run_one_without_a_timeout_waits_for_the_result() -> None:
    """With timeout_s=None the result is awaited without a bound."""
    result = await testkit.run_one(one_node_flow(), make_message("quiet"), timeout_s=None)

    assert result.payload == "QUIET"


async def test_run_one_passes_the_registry_to_run() -> None:
    """The registry reaches run(), whose coverage check rejects a node that is not registered."""
    flow = one_node_flow()

    with pytest.raises(RuntimeError) as caught:
        await testkit.run_one(flow, make_message(), registry=ModelRegistry())

    assert str(caught.value) == "ModelRegistry is missing entries for nodes requiring validation: shout"


async def test_rerunning_a_message_records_its_events_once() -> None:
    """A second run_one of the same trace on the same flow replaces its history without duplicates."""
    flow = one_node_flow()
    message = make_message()

    await testkit.run_one(flow, message)
    await testkit.run_one(flow, message)

    assert event_types(message.trace_id) == ["node_start", "node_success"]


# Recorded history ----------------------------------------------------------------------------


async def test_recorded_events_are_the_traces_events_in_order() -> None:
    """get_recorded_events returns the trace's events, oldest first, as a tuple."""
    flow = create(Node(shout, name="first").to(Node(shout, name="second")))
    message = make_message()

    await testkit.run_one(flow, message)
    events = testkit.get_recorded_events(message.trace_id)

    assert isinstance(events, tuple)
    assert [(event.event_type, event.node_name) for event in events] == [
        ("node_start", "first"),
        ("node_success", "first"),
        ("node_start", "second"),
        ("node_success", "second"),
    ]


async def test_events_of_a_trace_started_inside_the_flow_are_recorded_too() -> None:
    """A node that emits a message with a new trace id gets that trace's events recorded as well."""

    async def fork(message: Any, ctx: Context) -> Message[Any]:
        return Message(payload=message.payload, headers=message.headers)

    flow = create(Node(fork, name="fork").to(Node(shout, name="tail")))
    message = make_message()

    result = await testkit.run_one(flow, message)

    assert result.trace_id != message.trace_id
    testkit.assert_node_sequence(message.trace_id, ["fork"])
    testkit.assert_node_sequence(result.trace_id, ["tail"])


def test_recorded_events_are_empty_for_an_unknown_trace() -> None:
    """A trace that run_one never saw has no recorded events."""
    assert testkit.get_recorded_events("0" * 31 + "1") == ()


async def test_history_keeps_only_the_64_most_recent_traces() -> None:
    """Starting a 65th trace evicts the oldest one's events."""
    flow = one_node_flow()
    messages = [make_message(index) for index in range(65)]

    for message in messages:
        await testkit.run_one(flow, message)

    assert testkit.get_recorded_events(messages[0].trace_id) == ()
    assert all(event_types(message.trace_id) for message in messages[1:])


async def test_node_sequence_matches_the_order_nodes_started() -> None:
    """assert_node_sequence passes when the expected names are the order of node_start events."""
    flow = create(Node(shout, name="first").to(Node(shout, name="second")))
    message = make_message()

    await testkit.run_one(flow, message)

    testkit.assert_node_sequence(message.trace_id, ["first", "second"])


async def test_node_sequence_counts_a_retried_node_once() -> None:
    """Repeated node_start events of a retried node collapse into one entry."""
    flaky = Node(
        testkit.simulate_error("flaky", FlowErrorCode.NODE_EXCEPTION),
        name="flaky",
        policy=NodePolicy(max_retries=1, backoff_base=0.0),
    )
    flow = create(flaky.to(Node(shout, name="after")))
    message = make_message()

    await testkit.run_one(flow, message)

    started = [
        event.node_name
        for event in testkit.get_recorded_events(message.trace_id)
        if event.event_type == "node_start"
    ]
    assert started == ["flaky", "flaky", "after"]
    testkit.assert_node_sequence(message.trace_id, ("flaky", "after"))


async def test_node_sequence_mismatch_lists_expected_and_actual() -> None:
    """A different order fails with both sequences in the message."""
    flow = create(Node(shout, name="first").to(Node(shout, name="second")))
    message = make_message()
    await testkit.run_one(flow, message)

    with pytest.raises(AssertionError) as caught:
        testkit.assert_node_sequence(message.trace_id, ["second", "first"])

    assert str(caught.value) == (
        "Node sequence mismatch:\n  expected: ['second', 'first']\n  actual:   ['first', 'second']"
    )


def test_node_sequence_without_history_asks_for_run_one() -> None:
    """Checking a trace with no recorded events explains that run_one must run first."""
    with pytest.raises(AssertionError) as caught:
        testkit.assert_node_sequence("x", ["a"])

    assert str(caught.value) == "No recorded events for trace_id='x'; run a flow with run_one first."


# simulate_error ------------------------------------------------------------------------------


async def test_simulated_error_fails_the_given_number_of_times_then_echoes_the_message() -> None:
    """The function raises fail_times numbered errors, then returns its input."""
    fn = testkit.simulate_error("fetcher", "NODE_TIMEOUT", fail_times=2)
    message = make_message()

    for attempt in (1, 2):
        with pytest.raises(RuntimeError) as caught:
            await fn(message, None)
        assert str(caught.value) == f"[NODE_TIMEOUT] simulated failure in fetcher (attempt {attempt})"

    assert await fn(message, None) is message
    assert (fn.simulation.attempts, fn.simulation.failures) == (3, 2)


async def test_simulated_error_uses_the_code_value_and_exception_type() -> None:
    """A FlowErrorCode is written by its value, and exception_type is the raised class."""
    fn = testkit.simulate_error("db", FlowErrorCode.NODE_EXCEPTION, exception_type=ConnectionError)

    with pytest.raises(ConnectionError) as caught:
        await fn(make_message(), None)

    assert str(caught.value) == "[NODE_EXCEPTION] simulated failure in db (attempt 1)"


async def test_simulated_error_returns_the_given_result_after_failing() -> None:
    """With result set, the first successful call returns it instead of the message."""
    fn = testkit.simulate_error("db", "E", result={"rows": 3})

    with pytest.raises(RuntimeError):
        await fn(make_message(), None)

    assert await fn(make_message(), None) == {"rows": 3}


async def test_simulated_error_builds_the_result_with_a_plain_or_async_factory() -> None:
    """result_factory receives the message; an awaitable it returns is awaited."""

    async def later(message: Any) -> str:
        return f"async:{message.payload}"

    plain = testkit.simulate_error("a", "E", result_factory=lambda message: f"sync:{message.payload}")
    awaited = testkit.simulate_error("b", "E", result_factory=later)
    for fn in (plain, awaited):
        with pytest.raises(RuntimeError):
            await fn(make_message(), None)

    assert await plain(make_message("x"), None) == "sync:x"
    assert await awaited(make_message("y"), None) == "async:y"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"fail_times": 0}, "fail_times must be >= 1"),
        ({"result": 1, "result_factory": lambda message: 2}, "Specify only one of result or result_factory"),
    ],
)
def test_simulated_error_rejects_bad_arguments(kwargs: dict[str, Any], text: str) -> None:
    """A non-positive fail_times, or both result and result_factory, is a ValueError."""
    with pytest.raises(ValueError, match=f"^{re.escape(text)}$"):
        testkit.simulate_error("node", "E", **kwargs)


async def test_simulated_error_node_recovers_through_retries_in_a_flow() -> None:
    """Wrapped in a Node with retries, the simulated function fails, is retried and then succeeds."""
    fn = testkit.simulate_error("flaky", FlowErrorCode.NODE_EXCEPTION, fail_times=2)
    flow = create(Node(fn, name="flaky", policy=NodePolicy(max_retries=2, backoff_base=0.0)).to())
    message = make_message()

    result = await testkit.run_one(flow, message)

    assert result is message
    assert (fn.simulation.attempts, fn.simulation.failures) == (3, 2)
    assert event_types(message.trace_id) == [
        "node_start",
        "node_error",
        "node_retry",
        "node_start",
        "node_error",
        "node_retry",
        "node_start",
        "node_success",
    ]


# assert_preserves_message_envelope -----------------------------------------------------------


async def test_envelope_check_returns_the_result_of_a_preserving_node() -> None:
    """A node that keeps headers and trace id passes, and its result is returned."""
    result = await testkit.assert_preserves_message_envelope(Node(shout, name="shout"))

    assert result.payload == "{}"
    assert result.headers == Headers(tenant="test")


async def test_envelope_check_calls_a_plain_function_with_the_given_message_and_context() -> None:
    """The message and context given are the ones the function receives."""
    seen: list[object] = []
    marker = object()

    async def record(message: Message[Any], ctx: object) -> Message[Any]:
        seen.extend([message, ctx])
        return message

    message = make_message()
    assert await testkit.assert_preserves_message_envelope(record, message=message, ctx=marker) is message
    assert seen == [message, marker]


async def test_envelope_check_default_context_accepts_emits() -> None:
    """The default context's emit and emit_nowait take any arguments and do nothing."""

    async def chatty(message: Message[Any], ctx: Any) -> Message[Any]:
        await ctx.emit(message, to="anywhere")
        ctx.emit_nowait(message, "x", flag=True)
        return message

    await testkit.assert_preserves_message_envelope(chatty)


async def test_envelope_check_default_context_refuses_streaming() -> None:
    """The default context's emit_chunk raises, telling the caller to pass a context."""

    async def streamer(message: Message[Any], ctx: Any) -> Message[Any]:
        await ctx.emit_chunk(parent=message, text="partial")
        return message

    with pytest.raises(RuntimeError, match="does not support emit_chunk"):
        await testkit.assert_preserves_message_envelope(streamer)


async def test_stub_context_stays_importable_for_upstream_code() -> None:
    """testkit._StubContext exists, with no-op emits and an emit_chunk that refuses."""
    # The one private import in the suite: code written against upstream imports
    # testkit._StubContext at module level, so the name is part of the compatibility promise.
    from penguiflow_otel.testkit import _StubContext

    stub = _StubContext()
    await stub.emit("anything", to=None, extra=1)
    stub.emit_nowait()
    stub.emit_nowait("anything", "else", flag=True)
    with pytest.raises(RuntimeError, match="does not support emit_chunk"):
        await stub.emit_chunk(parent=None, text="x")
    assert "_StubContext" not in testkit.__all__


async def test_envelope_check_rejects_a_sync_function() -> None:
    """A function that is not async is a TypeError."""

    def sync_node(message: Message[Any], ctx: object) -> Message[Any]:
        return message

    with pytest.raises(TypeError) as caught:
        await testkit.assert_preserves_message_envelope(sync_node)

    assert str(caught.value) == "assert_preserves_message_envelope expects an async node"


async def test_envelope_check_rejects_a_result_that_is_not_a_message() -> None:
    """Returning a bare payload fails, naming the node and the produced type."""

    async def unwrap(message: Any, ctx: object) -> object:
        return message.payload

    with pytest.raises(AssertionError) as caught:
        await testkit.assert_preserves_message_envelope(Node(unwrap, name="unwrapper"))

    assert str(caught.value) == "Node 'unwrapper' must return a Message but produced dict"


@pytest.mark.parametrize(
    ("update", "fields"),
    [
        ({"headers": Headers(tenant="other")}, "headers"),
        ({"trace_id": "f" * 32}, "trace_id"),
        ({"headers": Headers(tenant="other"), "trace_id": "f" * 32}, "headers, trace_id"),
    ],
)
async def test_envelope_check_names_the_altered_fields(update: dict[str, Any], fields: str) -> None:
    """Changing headers and/or trace_id fails, listing what changed."""

    async def rewrap(message: Message[Any], ctx: object) -> Message[Any]:
        return message.model_copy(update=update)

    with pytest.raises(AssertionError) as caught:
        await testkit.assert_preserves_message_envelope(rewrap)

    assert str(caught.value) == f"Node 'rewrap' altered Message {fields}; preserve the envelope"
