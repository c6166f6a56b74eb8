"""Retries, backoff and jitter, retry_on, concurrency, timeouts, deadlines and FlowError itself."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest
from flowkit import EventRecorder, make_message, passthrough, wait_forever

from penguiflow_otel import (
    Context,
    FinalAnswer,
    FlowError,
    FlowErrorCode,
    Message,
    Node,
    NodePolicy,
    PenguiFlow,
    create,
)
from penguiflow_otel.testing import ManualClock


def failing_node(exceptions: list[BaseException], policy: NodePolicy, name: str = "x") -> Node:
    """A node raising the given exceptions one per call, then returning its input."""
    remaining = list(exceptions)

    async def fails(message: Any, ctx: Context) -> Any:
        if remaining:
            raise remaining.pop(0)
        return message

    return Node(fails, name=name, policy=policy)


@pytest.fixture
def recorder() -> EventRecorder:
    """A recording middleware whose waits allow five seconds, as these tests sleep through backoffs."""
    return EventRecorder(wait_timeout=5)


async def run_to_end(node: Node, recorder: EventRecorder, **kwargs: Any) -> tuple[PenguiFlow, object]:
    """Run ``node`` on one message with errors going to the Rookery; return the flow and the result."""
    flow = create(node.to(), middlewares=[recorder], emit_errors_to_rookery=True, **kwargs)
    flow.run()
    await flow.emit(make_message())
    async with asyncio.timeout(5):
        result = await flow.fetch()
    return flow, result


# Backoff and jitter (section 13, F5) -------------------------------------------------------------


async def test_backoff_grows_geometrically_and_is_capped_without_jitter(recorder: EventRecorder) -> None:
    """With jitter 0 each retry sleeps base * mult^(n-1), capped at max_backoff."""
    policy = NodePolicy(max_retries=4, backoff_base=0.001, backoff_mult=3.0, max_backoff=0.005)
    node = failing_node([ValueError("e")] * 4, policy)
    flow, result = await run_to_end(node, recorder)
    assert isinstance(result, Message)
    assert [event.extra["sleep_s"] for event in recorder.of("node_retry")] == pytest.approx(
        [0.001, 0.003, 0.005, 0.005]
    )
    assert [event.attempt for event in recorder.of("node_retry")] == [1, 2, 3, 4]
    await flow.stop()


@pytest.mark.parametrize("jitter", [0.3, 1.0])
async def test_jittered_delay_never_exceeds_the_capped_delay(jitter: float, recorder: EventRecorder) -> None:
    """Each slept delay lies in (d * (1 - jitter), d] for the computed, capped delay d."""
    policy = NodePolicy(max_retries=6, backoff_base=0.001, backoff_mult=2.0, max_backoff=0.01, jitter=jitter)
    node = failing_node([ValueError("e")] * 6, policy)
    flow, _ = await run_to_end(node, recorder)
    computed = [min(0.001 * 2.0**n, 0.01) for n in range(6)]
    slept = [event.extra["sleep_s"] for event in recorder.of("node_retry")]
    assert len(slept) == 6
    for delay, cap in zip(slept, computed, strict=True):
        assert cap * (1 - jitter) < delay <= cap
    await flow.stop()


async def test_the_retry_actually_sleeps_the_reported_delay(recorder: EventRecorder) -> None:
    """The next attempt starts no sooner than node_retry's sleep_s after it."""
    node = failing_node([ValueError("e")], NodePolicy(max_retries=1, backoff_base=0.05))
    flow, _ = await run_to_end(node, recorder)
    kinds = [event.event_type for event in recorder.events]
    retry_at = recorder.arrived[kinds.index("node_retry")]
    restart_at = recorder.arrived[len(kinds) - 1 - kinds[::-1].index("node_start")]
    assert recorder.of("node_retry")[0].extra["sleep_s"] == 0.05
    assert restart_at - retry_at >= 0.045
    await flow.stop()


async def test_max_retries_bounds_the_number_of_attempts(recorder: EventRecorder) -> None:
    """A node that always fails is invoked max_retries + 1 times, then fails once."""
    node = failing_node([ValueError(str(i)) for i in range(10)], NodePolicy(max_retries=2, backoff_base=0))
    flow, result = await run_to_end(node, recorder)
    assert isinstance(result, FlowError)
    assert len(recorder.of("node_start")) == 3
    assert len(recorder.of("node_failed")) == 1
    assert result.metadata["attempt"] == 2
    assert result.message == "Node 'x' raised ValueError: 2"
    await flow.stop()


# retry_on (F5) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_on", "raised", "retried"),
    [
        (None, ValueError("e"), True),
        (ValueError, ValueError("e"), True),
        (ValueError, KeyError("e"), False),
        ((KeyError, LookupError), IndexError("e"), True),
        ((KeyError, TypeError), ValueError("e"), False),
        (lambda exc: "transient" in str(exc), RuntimeError("transient glitch"), True),
        (lambda exc: "transient" in str(exc), RuntimeError("permanent"), False),
    ],
    ids=[
        "none-retries-everything",
        "type-match",
        "type-mismatch",
        "tuple-match-by-subclass",
        "tuple-mismatch",
        "predicate-true",
        "predicate-false",
    ],
)
async def test_retry_on_decides_whether_an_error_is_retried(
    retry_on: Any,
    raised: Exception,
    retried: bool,
    recorder: EventRecorder,
) -> None:
    """retry_on as None, a type, a tuple or a predicate selects the retryable exceptions."""
    node = failing_node([raised], NodePolicy(max_retries=1, backoff_base=0, retry_on=retry_on))
    flow, result = await run_to_end(node, recorder)
    if retried:
        assert isinstance(result, Message)
        assert recorder.stream() == [
            ("node_start", 0),
            ("node_error", 0),
            ("node_retry", 1),
            ("node_start", 1),
            ("node_success", 1),
        ]
    else:
        assert isinstance(result, FlowError)
        assert recorder.stream() == [("node_start", 0), ("node_error", 0), ("node_failed", 0)]
    await flow.stop()


async def test_retry_on_sees_a_policy_timeout_as_timeout_error(recorder: EventRecorder) -> None:
    """A policy timeout is presented to retry_on as TimeoutError."""
    seen: list[BaseException] = []
    calls = 0

    def predicate(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    async def slow_once(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()
        return message

    node = Node(
        slow_once, policy=NodePolicy(timeout_s=0.05, max_retries=1, backoff_base=0, retry_on=predicate)
    )
    flow, result = await run_to_end(node, recorder)
    assert isinstance(result, Message)
    assert len(seen) == 1
    assert type(seen[0]) is TimeoutError
    assert recorder.stream()[:3] == [("node_start", 0), ("node_timeout", 0), ("node_retry", 1)]
    await flow.stop()


async def test_timeout_is_not_retried_when_retry_on_excludes_it(recorder: EventRecorder) -> None:
    """retry_on=KeyError leaves a policy timeout terminal on the first attempt."""
    node = Node(wait_forever, policy=NodePolicy(timeout_s=0.05, max_retries=3, retry_on=KeyError))
    flow, result = await run_to_end(node, recorder)
    assert isinstance(result, FlowError)
    assert result.code == "NODE_TIMEOUT"
    assert recorder.stream() == [("node_start", 0), ("node_timeout", 0), ("node_failed", 0)]
    await flow.stop()


async def test_raising_retry_on_predicate_means_not_retryable(
    caplog: pytest.LogCaptureFixture, recorder: EventRecorder
) -> None:
    """A predicate that raises makes the error terminal and logs retry_on_failed."""
    caplog.set_level(logging.WARNING, logger="penguiflow_otel.core")

    def broken(exc: BaseException) -> bool:
        raise RuntimeError("predicate bug")

    node = failing_node([ValueError("e")], NodePolicy(max_retries=3, retry_on=broken))
    flow, result = await run_to_end(node, recorder)
    assert isinstance(result, FlowError)
    assert isinstance(result.original_exc, ValueError)
    assert recorder.stream() == [("node_start", 0), ("node_error", 0), ("node_failed", 0)]
    failures = [r for r in caplog.records if r.getMessage() == "retry_on_failed"]
    assert len(failures) == 1
    assert failures[0].levelno == logging.WARNING
    await flow.stop()


async def test_cancelled_error_is_never_retried_or_reported_as_an_error(recorder: EventRecorder) -> None:
    """A trace cancel interrupting an attempt does not trigger node_error or a retry."""
    flow = create(
        Node(wait_forever, policy=NodePolicy(max_retries=5, backoff_base=0)).to(), middlewares=[recorder]
    )
    flow.run()
    message = make_message()
    await flow.emit(message)
    await recorder.wait_for("node_start")
    await flow.cancel(message.trace_id)
    await recorder.wait_for("trace_cancel_finish")
    assert [kind for kind, _ in recorder.stream()] == [
        "node_start",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_finish",
    ]
    await flow.stop()


# Concurrency (F5) --------------------------------------------------------------------------------


async def test_concurrency_runs_that_many_messages_at_once(recorder: EventRecorder) -> None:
    """A node with concurrency 3 holds three messages of one trace at the same time."""
    running = 0
    all_in = asyncio.Event()
    release = asyncio.Event()

    async def gathers(message: Any, ctx: Context) -> Any:
        nonlocal running
        running += 1
        if running == 3:
            all_in.set()
        await release.wait()
        return message

    flow = create(Node(gathers, name="g", policy=NodePolicy(concurrency=3)).to(), middlewares=[recorder])
    flow.run()
    first = make_message(0)
    for i in range(3):
        await flow.emit(make_message(i, trace_id=first.trace_id))
    async with asyncio.timeout(2):
        await all_in.wait()
    assert flow.statistics().node_inflight == {"g": 3}
    assert [event.trace_inflight for event in recorder.of("node_start")] == [1, 2, 3]
    release.set()
    async with asyncio.timeout(2):
        payloads = sorted([(await flow.fetch()).payload for _ in range(3)])
    assert payloads == [0, 1, 2]
    await flow.stop()


async def test_concurrency_one_handles_one_message_at_a_time_in_order() -> None:
    """At the default concurrency a node never overlaps messages and keeps FIFO order."""
    running = 0
    overlapped = False
    order: list[int] = []

    async def serial(message: Any, ctx: Context) -> Any:
        nonlocal running, overlapped
        running += 1
        overlapped = overlapped or running > 1
        await asyncio.sleep(0)
        order.append(message.payload)
        running -= 1
        return message

    flow = create(Node(serial).to())
    flow.run()
    for i in range(5):
        await flow.emit(make_message(i))
    for _ in range(5):
        await flow.fetch()
    await flow.stop()
    assert not overlapped
    assert order == [0, 1, 2, 3, 4]


# Timeouts (section 13) ---------------------------------------------------------------------------


async def test_policy_timeout_fails_with_node_timeout(recorder: EventRecorder) -> None:
    """A node exceeding timeout_s fails with NODE_TIMEOUT and the upstream message."""
    flow, error = await run_to_end(Node(wait_forever, name="x", policy=NodePolicy(timeout_s=0.05)), recorder)
    assert isinstance(error, FlowError)
    assert error.code == FlowErrorCode.NODE_TIMEOUT
    assert error.message == "Node 'x' timed out after 0.05s"
    assert error.metadata["timeout_s"] == 0.05
    assert error.metadata["attempt"] == 0
    assert error.metadata["latency_ms"] >= 45.0
    assert isinstance(error.original_exc, TimeoutError)
    assert recorder.of("node_timeout")[0].extra == {"exception": "TimeoutError()"}
    await flow.stop()


async def test_user_raised_timeout_error_is_a_timeout_with_its_own_text(recorder: EventRecorder) -> None:
    """A TimeoutError raised by user code without a policy timeout keeps its own text."""
    node = failing_node([TimeoutError("upstream API slow")], NodePolicy(), name="api")
    flow, error = await run_to_end(node, recorder)
    assert isinstance(error, FlowError)
    assert error.code == "NODE_TIMEOUT"
    assert error.message == "upstream API slow"
    assert error.metadata["timeout_s"] is None
    assert recorder.stream() == [("node_start", 0), ("node_timeout", 0), ("node_failed", 0)]
    await flow.stop()


async def test_timeout_covers_the_node_but_not_routing(recorder: EventRecorder) -> None:
    """Waiting on a full downstream queue for longer than timeout_s is not a timeout."""
    gate = asyncio.Event()

    async def fast(message: Any, ctx: Context) -> Any:
        return message

    async def held(message: Any, ctx: Context) -> Any:
        await gate.wait()
        return message

    producer = Node(fast, name="producer", policy=NodePolicy(timeout_s=0.05))
    consumer = Node(held, name="consumer")
    flow = create(producer.to(consumer), consumer.to(), queue_maxsize=1, middlewares=[recorder])
    flow.run()
    for i in range(3):
        await flow.emit(make_message(i))
    await asyncio.sleep(0.15)  # the producer is now blocked putting its third result
    assert flow.statistics().node_inflight == {"producer": 1, "consumer": 1}
    gate.set()
    async with asyncio.timeout(2):
        assert sorted([(await flow.fetch()).payload for _ in range(3)]) == [0, 1, 2]
    assert not recorder.of("node_timeout")
    assert len([e for e in recorder.of("node_success") if e.node_name == "producer"]) == 3
    await flow.stop()


# Deadlines (F11, section 12) ---------------------------------------------------------------------


async def test_deadline_bounds_a_running_node_without_retry(recorder: EventRecorder) -> None:
    """A deadline earlier than the policy timeout interrupts the node: DEADLINE_EXCEEDED, no retry."""
    calls = 0

    async def stuck(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    node = Node(stuck, name="slow", policy=NodePolicy(timeout_s=10.0, max_retries=3, backoff_base=0))
    flow = create(node.to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    deadline = time.time() + 0.05
    message = make_message(deadline_s=deadline)
    await flow.emit(message)
    async with asyncio.timeout(2):
        error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.code == "DEADLINE_EXCEEDED"
    assert re.fullmatch(r"Node 'slow' exceeded its deadline after 0\.\d\ds", error.message)
    assert error.metadata["deadline_s"] == deadline
    assert error.metadata["attempt"] == 0
    assert error.trace_id == message.trace_id
    assert calls == 1
    assert recorder.stream() == [("node_start", 0), ("node_timeout", 0), ("node_failed", 0)]
    assert recorder.of("node_timeout")[0].extra["deadline_s"] == deadline
    await flow.stop()


async def test_deadline_equal_to_the_policy_timeout_counts_as_the_deadline(recorder: EventRecorder) -> None:
    """When the deadline bound ties with timeout_s, expiry is DEADLINE_EXCEEDED, not NODE_TIMEOUT."""
    clock = ManualClock()

    node = Node(wait_forever, policy=NodePolicy(timeout_s=0.05, max_retries=2, backoff_base=0))
    flow = create(node.to(), middlewares=[recorder], emit_errors_to_rookery=True, clock=clock)
    flow.run()
    await flow.emit(make_message(deadline_s=clock.time() + 0.05))
    async with asyncio.timeout(2):
        error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.code == "DEADLINE_EXCEEDED"
    assert len(recorder.of("node_start")) == 1
    await flow.stop()


async def test_policy_timeout_shorter_than_the_deadline_stays_a_retryable_timeout(
    recorder: EventRecorder,
) -> None:
    """When timeout_s is the smaller bound, expiry is an ordinary NODE_TIMEOUT, retried as usual."""
    clock = ManualClock()

    node = Node(wait_forever, name="x", policy=NodePolicy(timeout_s=0.02, max_retries=1, backoff_base=0))
    flow = create(node.to(), middlewares=[recorder], emit_errors_to_rookery=True, clock=clock)
    flow.run()
    await flow.emit(make_message(deadline_s=clock.time() + 60.0))
    async with asyncio.timeout(2):
        error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.code == "NODE_TIMEOUT"
    assert error.message == "Node 'x' timed out after 0.02s"
    assert [kind for kind, _ in recorder.stream()] == [
        "node_start",
        "node_timeout",
        "node_retry",
        "node_start",
        "node_timeout",
        "node_failed",
    ]
    assert all("deadline_s" not in event.extra for event in recorder.of("node_timeout"))
    await flow.stop()


async def test_attempt_due_after_the_deadline_does_not_start(recorder: EventRecorder) -> None:
    """A retry whose backoff ends past the deadline is not attempted: node_failed follows directly."""
    clock = ManualClock()
    calls = 0

    async def fails_late(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        clock.advance(10.0)  # the deadline passes while this attempt fails
        raise ValueError("boom")

    node = Node(fails_late, name="late", policy=NodePolicy(max_retries=3, backoff_base=0.001))
    flow = create(node.to(), middlewares=[recorder], emit_errors_to_rookery=True, clock=clock)
    flow.run()
    deadline = clock.time() + 5.0
    await flow.emit(make_message(deadline_s=deadline))
    async with asyncio.timeout(2):
        error = await flow.fetch()
    assert calls == 1
    assert recorder.stream() == [("node_start", 0), ("node_error", 0), ("node_retry", 1), ("node_failed", 1)]
    failed = recorder.of("node_failed")[0]
    assert failed.latency_ms is None
    assert isinstance(error, FlowError)
    assert error.code == "DEADLINE_EXCEEDED"
    assert error.original_exc is None
    assert error.metadata["deadline_s"] == deadline
    assert "latency_ms" not in error.metadata
    assert re.fullmatch(r"Node 'late' exceeded its deadline after \d+\.\d\ds", error.message)
    await flow.stop()


async def test_deadline_passed_at_dequeue_skips_the_node_and_returns_a_final_answer(
    recorder: EventRecorder,
) -> None:
    """A message dequeued after its deadline never runs; a 'Deadline exceeded' copy goes to the Rookery."""
    clock = ManualClock()
    calls = 0

    async def never(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        return message

    first = Node(never, name="first")
    second = Node(never, name="second")
    flow = create(first.to(second), second.to(), middlewares=[recorder], clock=clock)
    flow.run()
    message = make_message("late", deadline_s=clock.time() - 0.001, meta={"k": 1})
    await flow.emit(message)
    result = await flow.fetch()
    assert isinstance(result, Message)
    assert result.payload == FinalAnswer(text="Deadline exceeded")
    assert (result.trace_id, result.headers, result.meta) == (message.trace_id, message.headers, {"k": 1})
    assert result is not message
    assert calls == 0
    assert [(event.event_type, event.node_name) for event in recorder.events] == [("deadline_skip", "first")]
    await flow.stop()


async def test_deadline_skip_keeps_an_existing_final_answer() -> None:
    """A late message already carrying a FinalAnswer is delivered with that answer."""
    clock = ManualClock()
    flow = create(Node(passthrough).to(), clock=clock)
    flow.run()
    answer = FinalAnswer(text="already answered", citations=["c"])
    await flow.emit(make_message(answer, deadline_s=clock.time() - 1))
    result = await flow.fetch()
    assert result.payload == answer
    await flow.stop()


async def test_deadline_in_the_future_lets_the_node_run() -> None:
    """A message whose deadline has not passed is processed normally."""
    clock = ManualClock()
    flow = create(Node(passthrough).to(), clock=clock)
    flow.run()
    message = make_message("on time", deadline_s=clock.time() + 60)
    await flow.emit(message)
    assert await flow.fetch() is message
    await flow.stop()


# FlowError (F12, section 15) ---------------------------------------------------------------------


async def test_flow_error_from_a_node_chains_the_original_exception(recorder: EventRecorder) -> None:
    """A runtime-built FlowError has __cause__, original_exc and unwrap() all the original exception."""
    boom = ValueError("boom")
    flow, error = await run_to_end(failing_node([boom], NodePolicy(), name="x"), recorder)
    assert isinstance(error, FlowError)
    assert error.__cause__ is boom
    assert error.original_exc is boom
    assert error.unwrap() is boom
    assert error.exception_type == "ValueError"
    assert error.node_name == "x"
    assert error.metadata["exception_repr"] == "ValueError('boom')"
    assert str(error) == f"[NODE_EXCEPTION] Node 'x' raised ValueError: boom trace={error.trace_id} node=x"
    await flow.stop()


def test_flow_error_str_leaves_out_absent_parts() -> None:
    """str() is '[CODE] message', followed by trace and node only when they are set."""
    bare = FlowError(trace_id=None, node_name=None, code="NODE_EXCEPTION", message="m")
    assert str(bare) == "[NODE_EXCEPTION] m"
    traced = FlowError(trace_id="abc", node_name=None, code=FlowErrorCode.NODE_TIMEOUT, message="m")
    assert str(traced) == "[NODE_TIMEOUT] m trace=abc"
    named = FlowError(trace_id=None, node_name="n", code="X", message="m")
    assert str(named) == "[X] m node=n"


def test_flow_error_stores_the_code_as_a_plain_string() -> None:
    """An enum code is stored as its plain string value."""
    error = FlowError(trace_id=None, node_name=None, code=FlowErrorCode.JOIN_TIMEOUT, message="m")
    assert error.code == "JOIN_TIMEOUT"
    assert type(error.code) is str
    assert error.__cause__ is None
    assert error.exception_type is None


def test_flow_error_to_payload_lists_only_present_fields() -> None:
    """to_payload holds code and message plus each present, non-empty field."""
    assert FlowError(trace_id=None, node_name=None, code="C", message="m").to_payload() == {
        "code": "C",
        "message": "m",
    }
    full = FlowError(
        trace_id="t",
        node_name="n",
        node_id="id",
        code="C",
        message="m",
        original_exc=KeyError("k"),
        metadata={"attempt": 2},
    )
    assert full.to_payload() == {
        "code": "C",
        "message": "m",
        "trace_id": "t",
        "node_name": "n",
        "node_id": "id",
        "exception_type": "KeyError",
        "metadata": {"attempt": 2},
    }
    assert (
        "metadata"
        not in FlowError(trace_id=None, node_name=None, code="C", message="m", metadata={}).to_payload()
    )


def test_flow_error_metadata_is_a_copy() -> None:
    """Changing the mapping given as metadata does not change the error."""
    metadata = {"attempt": 0}
    error = FlowError(trace_id=None, node_name=None, code="C", message="m", metadata=metadata)
    metadata["attempt"] = 9
    assert error.metadata == {"attempt": 0}


def test_flow_error_from_exception_falls_back_to_the_text_then_the_class_name() -> None:
    """from_exception uses the given message, else str(exc), else the exception class name."""
    exc = RuntimeError("disk on fire")
    common: dict[str, Any] = {"trace_id": "t", "node_name": "n", "node_id": "i", "code": "NODE_EXCEPTION"}
    given = FlowError.from_exception(exc=exc, message="explicit", metadata={"a": 1}, **common)
    assert (given.message, given.metadata, given.__cause__) == ("explicit", {"a": 1}, exc)
    assert FlowError.from_exception(exc=exc, **common).message == "disk on fire"
    assert FlowError.from_exception(exc=RuntimeError(), **common).message == "RuntimeError"
    built = FlowError.from_exception(exc=exc, **common)
    assert (built.trace_id, built.node_name, built.node_id, built.code) == ("t", "n", "i", "NODE_EXCEPTION")
    assert built.original_exc is exc


def test_flow_error_is_an_exception_that_can_be_raised() -> None:
    """FlowError is an Exception and raising it keeps its cause."""
    cause = OSError("io")
    with pytest.raises(FlowError) as caught:
        raise FlowError(trace_id=None, node_name=None, code="C", message="m", original_exc=cause)
    assert caught.value.__cause__ is cause
