"""FlowEvents as consumers see them: canonical sequences, dispatch, logging, store, bus, redaction."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from flowkit import EventRecorder, ListStore, make_message, passthrough, run_once, wait_forever
from pydantic import BaseModel

from penguiflow_otel import (
    WM,
    BusEnvelope,
    Context,
    FinalAnswer,
    FlowError,
    FlowEvent,
    ModelRegistry,
    Node,
    NodePolicy,
    PenguiFlow,
    RemoteBinding,
    StoredEvent,
    create,
    join_k,
)
from penguiflow_otel.testing import ManualClock

CORE = "penguiflow_otel.core"


def flow_of(node: Node, recorder: EventRecorder, **kwargs: Any) -> PenguiFlow:
    """A running one-node flow recording its events."""
    flow = create(node.to(), middlewares=[recorder], **kwargs)
    flow.run()
    return flow


# Canonical sequences (section 19.3) -------------------------------------------------------------


async def test_success_emits_start_then_success(recorder: EventRecorder) -> None:
    """A successful attempt is node_start (latency 0.0) then node_success, counting the routed result."""
    node = Node(passthrough, name="a")
    flow = flow_of(node, recorder)
    message = make_message()
    await flow.emit(message)
    await recorder.wait_for("node_success")
    assert recorder.stream() == [("node_start", 0), ("node_success", 0)]
    start, success = recorder.events
    assert (start.latency_ms, start.trace_id, start.node_name, start.node_id) == (
        0.0,
        message.trace_id,
        "a",
        node.node_id,
    )
    assert (start.trace_pending, start.trace_inflight, start.trace_cancelled) == (1, 1, False)
    assert success.latency_ms is not None
    assert success.latency_ms > 0.0
    assert (success.trace_pending, success.trace_inflight) == (2, 1)
    assert dict(start.extra) == {}
    assert dict(success.extra) == {}
    assert await flow.fetch() is message
    await flow.stop()
    assert recorder.stream()[2:] == [("node_cancelled", 0)]


async def test_retry_then_success_emits_error_retry_and_a_second_attempt(recorder: EventRecorder) -> None:
    """A failed attempt that is retried shows node_error, node_retry (next attempt), then a2's events."""
    calls = 0

    async def flaky(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first try fails")
        return message

    flow = flow_of(Node(flaky, policy=NodePolicy(max_retries=2, backoff_base=0.01)), recorder)
    await flow.emit(make_message())
    await recorder.wait_for("node_success")
    assert recorder.stream() == [
        ("node_start", 0),
        ("node_error", 0),
        ("node_retry", 1),
        ("node_start", 1),
        ("node_success", 1),
    ]
    error, retry = recorder.events[1], recorder.events[2]
    assert error.extra == {"exception": "ValueError('first try fails')"}
    assert retry.extra == {"sleep_s": 0.01, "exception": "ValueError('first try fails')"}
    assert retry.latency_ms is None
    assert error.latency_ms is not None
    await flow.stop()


async def test_timeouts_to_failure_end_with_node_failed_carrying_the_timeout_error(
    recorder: EventRecorder,
) -> None:
    """Two timed-out attempts end in node_failed with a NODE_TIMEOUT flow_error payload."""
    policy = NodePolicy(timeout_s=0.05, max_retries=1, backoff_base=0.01)
    flow = flow_of(Node(wait_forever, name="x", policy=policy), recorder)
    message = make_message()
    await flow.emit(message)
    await recorder.wait_for("node_failed")
    assert recorder.stream() == [
        ("node_start", 0),
        ("node_timeout", 0),
        ("node_retry", 1),
        ("node_start", 1),
        ("node_timeout", 1),
        ("node_failed", 1),
    ]
    failed = recorder.events[-1]
    flow_error = failed.extra["flow_error"]
    assert flow_error["code"] == "NODE_TIMEOUT"
    assert flow_error["message"] == "Node 'x' timed out after 0.05s"
    assert flow_error["trace_id"] == message.trace_id
    assert set(flow_error["metadata"]) == {"attempt", "latency_ms", "timeout_s"}
    assert flow_error["metadata"]["attempt"] == 1
    assert flow_error["metadata"]["timeout_s"] == 0.05
    assert failed.extra["exception"] == "TimeoutError()"
    assert failed.error_payload == flow_error
    assert "deadline_s" not in recorder.events[1].extra
    await flow.stop()


async def test_non_retryable_error_fails_after_one_attempt(recorder: EventRecorder) -> None:
    """An exception retry_on does not accept fails at once: start, error, failed, all attempt 0."""

    async def broken(message: Any, ctx: Context) -> Any:
        raise KeyError("missing")

    policy = NodePolicy(max_retries=3, backoff_base=0.01, retry_on=ValueError)
    flow = flow_of(Node(broken, name="b", policy=policy), recorder)
    await flow.emit(make_message())
    await recorder.wait_for("node_failed")
    assert recorder.stream() == [("node_start", 0), ("node_error", 0), ("node_failed", 0)]
    failed = recorder.events[-1]
    assert failed.extra["flow_error"]["code"] == "NODE_EXCEPTION"
    assert failed.extra["flow_error"]["message"] == "Node 'b' raised KeyError: 'missing'"
    assert failed.extra["exception"] == "KeyError('missing')"
    await flow.stop()


async def test_routing_failure_emits_route_phase_error_then_failure_without_success(
    recorder: EventRecorder,
) -> None:
    """A result that cannot be routed gives node_error {phase route} and node_failed, no node_success."""

    async def controller(message: Any, ctx: Context) -> Any:
        return message

    flow = flow_of(Node(controller, name="ctl", policy=NodePolicy(max_retries=2)), recorder)
    await flow.emit(make_message(WM(query="q")))
    await recorder.wait_for("node_failed")
    assert recorder.stream() == [("node_start", 0), ("node_error", 0), ("node_failed", 0)]
    error, failed = recorder.events[1], recorder.events[2]
    assert error.extra["phase"] == "route"
    assert error.extra["exception"] == "KeyError('Unknown target ctl for ctl')"
    assert failed.extra["flow_error"]["code"] == "NODE_EXCEPTION"
    assert failed.extra["flow_error"]["metadata"]["phase"] == "route"
    await flow.stop()


async def test_deadline_mid_run_times_out_once_and_fails_with_deadline_exceeded(
    recorder: EventRecorder,
) -> None:
    """A running node past its message's deadline gets node_timeout {deadline_s}, then DEADLINE_EXCEEDED."""
    clock = ManualClock()

    flow = flow_of(Node(wait_forever, name="s", policy=NodePolicy(max_retries=3)), recorder, clock=clock)
    deadline = clock.time() + 0.05
    await flow.emit(make_message(deadline_s=deadline))
    await recorder.wait_for("node_failed")
    assert recorder.stream() == [("node_start", 0), ("node_timeout", 0), ("node_failed", 0)]
    timeout, failed = recorder.events[1], recorder.events[2]
    assert timeout.extra == {"exception": "TimeoutError()", "deadline_s": deadline}
    assert failed.extra["flow_error"]["code"] == "DEADLINE_EXCEEDED"
    assert failed.extra["flow_error"]["metadata"]["deadline_s"] == deadline
    await flow.stop()


async def test_deadline_mid_run_for_a_controller_gives_a_final_answer_instead_of_failing(
    recorder: EventRecorder,
) -> None:
    """A WM message past its deadline mid-run gets node_timeout and a FinalAnswer result, no node_failed."""

    async def slow_controller(message: Any, ctx: Context) -> Any:
        await asyncio.sleep(0.05)
        return message

    node = Node(slow_controller, name="ctl", allow_cycle=True)
    flow = create(node.to(node), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message(WM(query="q"), deadline_s=time.time() + 0.02))
    result = await flow.fetch()
    assert result.payload == FinalAnswer(text="Deadline exceeded")
    assert recorder.stream() == [("node_start", 0), ("node_timeout", 0)]
    assert "deadline_s" in recorder.events[1].extra
    await flow.stop()


async def test_deadline_at_dequeue_skips_the_node(recorder: EventRecorder) -> None:
    """A message already past its deadline yields only deadline_skip and a FinalAnswer result."""
    clock = ManualClock()
    calls = 0

    async def never(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        return message

    flow = flow_of(Node(never), recorder, clock=clock)
    deadline = clock.time() - 1.0
    await flow.emit(make_message(deadline_s=deadline))
    result = await flow.fetch()
    assert result.payload == FinalAnswer(text="Deadline exceeded")
    assert recorder.stream() == [("deadline_skip", 0)]
    skip = recorder.events[0]
    assert skip.latency_ms is None
    assert skip.extra == {"deadline_s": deadline}
    assert skip.trace_inflight == 1
    assert calls == 0
    await flow.stop()


async def test_final_answer_returned_runs_once_with_one_success(recorder: EventRecorder) -> None:
    """A node returning a FinalAnswer emits start and success once and delivers one result."""

    async def answer(message: Any, ctx: Context) -> Any:
        return message.model_copy(update={"payload": FinalAnswer(text="done")})

    flow = flow_of(Node(answer), recorder)
    await flow.emit(make_message(WM(query="q")))
    result = await flow.fetch()
    assert result.payload == FinalAnswer(text="done")
    assert recorder.stream() == [("node_start", 0), ("node_success", 0)]
    assert flow.statistics().buffered_results == 0
    await flow.stop()


async def test_cancel_in_flight_with_a_queued_item_emits_the_cancel_sequence(recorder: EventRecorder) -> None:
    """Cancelling a trace with one item held and one queued gives start, cancel start, cancelled, finish."""
    flow = flow_of(Node(wait_forever, name="s"), recorder)
    first = make_message("one")
    await flow.emit(first)
    await flow.emit(make_message("two", trace_id=first.trace_id))
    await recorder.wait_for("node_start")
    assert await flow.cancel(first.trace_id) is True
    await recorder.wait_for("trace_cancel_finish")
    assert recorder.stream() == [
        ("node_start", 0),
        ("trace_cancel_start", 0),
        ("node_trace_cancelled", 0),
        ("trace_cancel_finish", 0),
    ]
    start, cancel_start, cancelled, finish = recorder.events
    assert (start.trace_pending, start.trace_inflight) == (2, 1)
    assert cancel_start.node_name == cancel_start.node_id == "OpenSea"
    assert cancel_start.extra == {"pending": 2}
    assert (cancel_start.trace_pending, cancel_start.trace_inflight, cancel_start.trace_cancelled) == (
        2,
        1,
        True,
    )
    assert (cancelled.trace_pending, cancelled.trace_inflight, cancelled.trace_cancelled) == (1, 1, True)
    assert cancelled.latency_ms is None
    assert finish.node_name == finish.node_id == "Rookery"
    assert (finish.trace_pending, finish.trace_inflight, finish.trace_cancelled) == (0, 0, True)
    assert finish.trace_id == first.trace_id
    assert flow.statistics().active_traces == 0
    await flow.stop()


async def test_cancel_during_backoff_interrupts_the_sleep(recorder: EventRecorder) -> None:
    """A cancel during a long backoff ends the message at once with node_trace_cancelled."""

    async def broken(message: Any, ctx: Context) -> Any:
        raise ValueError("boom")

    flow = flow_of(Node(broken, policy=NodePolicy(max_retries=1, backoff_base=30.0)), recorder)
    message = make_message()
    await flow.emit(message)
    await recorder.wait_for("node_retry")
    assert await flow.cancel(message.trace_id) is True
    await recorder.wait_for("trace_cancel_finish")
    assert recorder.stream() == [
        ("node_start", 0),
        ("node_error", 0),
        ("node_retry", 1),
        ("trace_cancel_start", 0),
        ("node_trace_cancelled", 0),
        ("trace_cancel_finish", 0),
    ]
    assert recorder.events[3].extra == {"pending": 1}
    await flow.stop()


@pytest.mark.parametrize("outcome", ["returns", "raises"])
async def test_node_swallowing_the_trace_cancel_has_its_outcome_discarded(
    outcome: str, recorder: EventRecorder
) -> None:
    """A node that catches the cancel and then returns or raises is neither routed nor retried."""
    release = asyncio.Event()

    async def stubborn(message: Any, ctx: Context) -> Any:
        if message.payload == "next":
            return message
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()
            if outcome == "raises":
                raise ValueError("after cancel") from None
        return message

    node = Node(stubborn, policy=NodePolicy(max_retries=3, backoff_base=0.001))
    flow = flow_of(node, recorder, emit_errors_to_rookery=True)
    message = make_message()
    await flow.emit(message)
    await recorder.wait_for("node_start")
    assert await flow.cancel(message.trace_id) is True
    release.set()
    await recorder.wait_for("trace_cancel_finish")
    assert recorder.stream() == [
        ("node_start", 0),
        ("trace_cancel_start", 0),
        ("node_trace_cancelled", 0),
        ("trace_cancel_finish", 0),
    ]
    stats = flow.statistics()
    assert (stats.active_traces, stats.buffered_results, stats.node_inflight) == (0, 0, {"stubborn": 0})
    follow_up = make_message("next")
    await flow.emit(follow_up)
    assert await flow.fetch() is follow_up
    await flow.stop()


async def test_item_of_a_cancelling_trace_is_dropped_at_dequeue() -> None:
    """An item reaching a worker while its trace is being cancelled gives trace_cancel_drop, not a run."""
    gate = asyncio.Event()
    events: list[FlowEvent] = []
    seen: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def slow_consumer(event: FlowEvent) -> None:
        events.append(event)
        seen[event.event_type].set()
        if event.event_type == "node_trace_cancelled":
            await gate.wait()

    calls = 0

    async def stuck(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    flow = create(Node(stuck, policy=NodePolicy(concurrency=2)).to(), middlewares=[slow_consumer])
    flow.run()
    first = make_message("one")
    await flow.emit(first)
    await seen["node_start"].wait()
    assert await flow.cancel(first.trace_id) is True
    await seen["node_trace_cancelled"].wait()
    await flow.emit(make_message("two", trace_id=first.trace_id))
    await seen["trace_cancel_drop"].wait()
    gate.set()
    await seen["trace_cancel_finish"].wait()
    assert [event.event_type for event in events] == [
        "node_start",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_drop",
        "trace_cancel_finish",
    ]
    drop = events[3]
    assert (drop.attempt, drop.latency_ms, drop.trace_cancelled, drop.trace_inflight) == (0, None, True, 2)
    assert calls == 1
    await flow.stop()


async def test_stop_emits_one_node_cancelled_per_node_without_a_trace(recorder: EventRecorder) -> None:
    """stop() reports node_cancelled once per node, with no trace and no counters."""
    a, b = Node(passthrough, name="a"), Node(passthrough, name="b")
    flow = create(a.to(b), b.to(), middlewares=[recorder])
    flow.run()
    await flow.stop()
    assert [(event.event_type, event.node_name) for event in recorder.events] == [
        ("node_cancelled", "a"),
        ("node_cancelled", "b"),
    ]
    for event in recorder.events:
        assert (event.trace_id, event.attempt, event.latency_ms) == (None, 0, None)
        assert (event.trace_pending, event.trace_inflight, event.trace_cancelled) == (None, 0, False)


async def test_join_timeout_follows_each_arrivals_start_and_success(recorder: EventRecorder) -> None:
    """A join that never completes shows start/success per arrival, then join_timeout."""
    join = join_k("j", 3, timeout_s=0.05)
    flow = flow_of(join, recorder)
    first = make_message(1)
    await flow.emit(first)
    await flow.emit(make_message(2, trace_id=first.trace_id))
    await recorder.wait_for("join_timeout")
    assert recorder.stream() == [
        ("node_start", 0),
        ("node_success", 0),
        ("node_start", 0),
        ("node_success", 0),
        ("join_timeout", 0),
    ]
    timeout = recorder.events[-1]
    assert timeout.extra == {"received": 2, "expected": 3, "timeout_s": 0.05}
    assert timeout.latency_ms is not None
    assert timeout.latency_ms >= 45.0
    assert timeout.node_name == "j"
    await flow.stop()


# Dispatch only when consumed (F13) ---------------------------------------------------------------


class CountingRedactor:
    """A redactor counting its calls (it runs only when an event carrying payload is built)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, kind: str, value: Any) -> Any:
        self.calls.append(kind)
        return f"<{kind}>"


async def test_no_event_is_built_on_the_success_path_without_consumers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At WARNING with no middleware and no store, a success builds no event at all."""
    caplog.set_level(logging.WARNING, logger=CORE)
    redactor = CountingRedactor()
    await run_once(create(Node(passthrough).to(), redactor=redactor), make_message())
    assert redactor.calls == []
    assert [r.getMessage() for r in caplog.records if r.name == CORE] == []


async def test_debug_logging_alone_builds_node_start(caplog: pytest.LogCaptureFixture) -> None:
    """Enabling DEBUG on the core logger is enough for node_start to be built and logged."""
    caplog.set_level(logging.DEBUG, logger=CORE)
    redactor = CountingRedactor()
    await run_once(create(Node(passthrough).to(), redactor=redactor), make_message())
    assert redactor.calls == ["payload", "meta"]
    messages = [r.getMessage() for r in caplog.records if r.name == CORE]
    assert messages == ["node_start", "node_success", "node_cancelled", "flow_stopped"]


async def test_a_middleware_alone_makes_every_event_built(
    caplog: pytest.LogCaptureFixture, recorder: EventRecorder
) -> None:
    """With a middleware and the logger at WARNING, every event still reaches the middleware."""
    caplog.set_level(logging.WARNING, logger=CORE)
    await run_once(create(Node(passthrough).to(), middlewares=[recorder]), make_message())
    assert recorder.stream() == [("node_start", 0), ("node_success", 0), ("node_cancelled", 0)]


async def test_a_state_store_alone_makes_every_event_built(caplog: pytest.LogCaptureFixture) -> None:
    """With only a state store, every event is built and saved, node_cancelled included."""
    caplog.set_level(logging.WARNING, logger=CORE)
    store = ListStore()
    await run_once(create(Node(passthrough).to(), state_store=store), make_message())
    assert [event.kind for event in store.events] == ["node_start", "node_success", "node_cancelled"]
    assert store.events[-1].trace_id is None


async def test_failure_events_are_built_when_their_level_is_enabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At WARNING the error and failure are built, at ERROR only node_failed, at CRITICAL nothing."""
    redactor = CountingRedactor()

    async def broken(message: Any, ctx: Context) -> Any:
        raise ValueError("boom")

    caplog.set_level(logging.WARNING, logger=CORE)
    flow = create(Node(broken).to(), redactor=redactor, emit_errors_to_rookery=True)
    await run_once(flow, make_message())
    assert redactor.calls == ["payload", "meta"]
    assert [r.getMessage() for r in caplog.records if r.name == CORE] == ["node_error", "node_failed"]

    caplog.clear()
    redactor.calls.clear()
    caplog.set_level(logging.ERROR, logger=CORE)
    await run_once(flow, make_message())
    assert redactor.calls == ["payload", "meta"]
    assert [r.getMessage() for r in caplog.records if r.name == CORE] == ["node_failed"]

    caplog.clear()
    redactor.calls.clear()
    caplog.set_level(logging.CRITICAL, logger=CORE)
    await run_once(flow, make_message())
    assert redactor.calls == []
    assert [r.getMessage() for r in caplog.records if r.name == CORE] == []


# Logging (F14, section 19.5) ----------------------------------------------------------------------


async def test_attempt_errors_log_warning_without_traceback_and_failure_logs_error_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failed attempt logs a WARNING with no traceback; the terminal failure one ERROR with it."""
    caplog.set_level(logging.DEBUG, logger=CORE)

    async def broken(message: Any, ctx: Context) -> Any:
        raise ValueError("boom")

    flow = create(
        Node(broken, name="b", policy=NodePolicy(max_retries=2, backoff_base=0.001)).to(),
        emit_errors_to_rookery=True,
    )
    message = make_message()
    error = await run_once(flow, message)
    records = [r for r in caplog.records if r.name == CORE]
    assert [(r.getMessage(), r.levelno) for r in records] == [
        ("node_start", logging.DEBUG),
        ("node_error", logging.WARNING),
        ("node_retry", logging.INFO),
        ("node_start", logging.DEBUG),
        ("node_error", logging.WARNING),
        ("node_retry", logging.INFO),
        ("node_start", logging.DEBUG),
        ("node_error", logging.WARNING),
        ("node_failed", logging.ERROR),
        ("node_cancelled", logging.DEBUG),
        ("flow_stopped", logging.INFO),
    ]
    with_traceback = [r for r in records if r.exc_info is not None]
    assert [r.getMessage() for r in with_traceback] == ["node_failed"]
    exc_info = with_traceback[0].exc_info
    assert exc_info is not None
    assert exc_info[1] is error.original_exc
    failed = with_traceback[0]
    assert failed.__dict__["event"] == "node_failed"
    assert failed.__dict__["node_name"] == "b"
    assert failed.__dict__["trace_id"] == message.trace_id
    assert failed.__dict__["flow_error"]["code"] == "NODE_EXCEPTION"
    assert records[-1].__dict__["discarded"] == 0


async def test_node_timeout_logs_a_warning_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A timed-out attempt logs node_timeout at WARNING with no traceback."""
    caplog.set_level(logging.WARNING, logger=CORE)

    flow = create(Node(wait_forever, policy=NodePolicy(timeout_s=0.05)).to(), emit_errors_to_rookery=True)
    await run_once(flow, make_message())
    records = [r for r in caplog.records if r.name == CORE]
    assert [(r.getMessage(), r.levelno, r.exc_info is None) for r in records] == [
        ("node_timeout", logging.WARNING, True),
        ("node_failed", logging.ERROR, False),
    ]


async def test_record_remote_event_dispatches_an_arbitrary_event_with_attempt_zero(
    recorder: EventRecorder,
) -> None:
    """record_remote_event builds the named event for a node and hands it to the consumers."""
    node = Node(passthrough, name="a")
    flow = create(node.to(), middlewares=[recorder])
    await flow.record_remote_event(
        event="remote_call_done",
        node=node,
        context=Context(node, flow),
        trace_id="remote-trace",
        latency_ms=12.5,
        extra={"agent": "http://agent"},
    )
    (event,) = recorder.events
    assert (event.event_type, event.node_name, event.trace_id, event.attempt, event.latency_ms) == (
        "remote_call_done",
        "a",
        "remote-trace",
        0,
        12.5,
    )
    assert event.extra == {"agent": "http://agent"}


# Consumers are contained -------------------------------------------------------------------------


async def test_sync_middleware_is_logged_as_middleware_error_on_each_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain function as middleware is called, fails to be awaited, is logged, and the flow goes on."""
    caplog.set_level(logging.ERROR, logger=CORE)
    called: list[str] = []

    def sync_middleware(event: FlowEvent) -> None:
        called.append(event.event_type)

    flow = create(Node(passthrough).to(), middlewares=[sync_middleware])
    result = await run_once(flow, make_message("ok"))
    assert result.payload == "ok"
    assert called == ["node_start", "node_success", "node_cancelled"]
    errors = [r for r in caplog.records if r.getMessage() == "middleware_error"]
    assert len(errors) == 3
    assert all(r.levelno == logging.ERROR and r.exc_info is not None for r in errors)
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], TypeError) for r in errors)


async def test_raising_middleware_does_not_stop_later_middlewares_or_the_flow(
    caplog: pytest.LogCaptureFixture,
    recorder: EventRecorder,
) -> None:
    """A middleware that raises is logged; the next middleware still sees the event and results flow."""
    caplog.set_level(logging.ERROR, logger=CORE)

    async def raising(event: FlowEvent) -> None:
        raise RuntimeError("middleware broke")

    flow = create(Node(passthrough).to(), middlewares=[raising, recorder])
    flow.run()
    await flow.emit(make_message("ok"))
    assert (await flow.fetch()).payload == "ok"
    assert recorder.stream() == [("node_start", 0), ("node_success", 0)]
    await flow.stop()
    assert sum(1 for r in caplog.records if r.getMessage() == "middleware_error") == 3


async def test_add_middleware_applies_from_the_next_event(recorder: EventRecorder) -> None:
    """A middleware added while running sees only later events."""
    gate = asyncio.Event()
    started = asyncio.Event()

    async def waits(message: Any, ctx: Context) -> Any:
        started.set()
        await gate.wait()
        return message

    flow = create(Node(waits).to())
    flow.run()
    await flow.emit(make_message())
    await started.wait()
    flow.add_middleware(recorder)
    gate.set()
    await flow.fetch()
    await flow.stop()
    assert recorder.stream() == [("node_success", 0), ("node_cancelled", 0)]


class RaisingStore(ListStore):
    """A state store whose every call raises."""

    async def save_event(self, event: StoredEvent) -> None:
        raise OSError("disk full")

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        raise OSError("disk full")


async def test_raising_state_store_is_counted_logged_and_never_fatal(
    caplog: pytest.LogCaptureFixture,
    recorder: EventRecorder,
) -> None:
    """Each failed save is logged and counted in state_store_failures; the flow keeps working."""
    caplog.set_level(logging.ERROR, logger=CORE)
    flow = create(Node(passthrough).to(), state_store=RaisingStore(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("ok"))
    assert (await flow.fetch()).payload == "ok"
    assert flow.state_store_failures == 2
    assert recorder.stream() == [("node_start", 0), ("node_success", 0)]
    await flow.save_remote_binding(RemoteBinding("t", None, "task", "http://agent"))
    assert flow.state_store_failures == 3
    await flow.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == CORE]
    assert messages.count("state_store_save_failed") == 3
    assert messages.count("state_store_binding_failed") == 1
    assert flow.state_store_failures == 4


# State store ordering (F17) ---------------------------------------------------------------------


class SerialCheckingStore(ListStore):
    """A store that yields inside each save and records whether two saves ever overlapped."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.overlapped = False

    async def save_event(self, event: StoredEvent) -> None:
        self.active += 1
        self.overlapped = self.overlapped or self.active > 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.events.append(event)
        self.active -= 1


async def test_saves_are_serialised_in_seq_order_across_workers() -> None:
    """Events from concurrent workers are saved one at a time with consecutive seq values."""
    store = SerialCheckingStore()
    flow = create(Node(passthrough, policy=NodePolicy(concurrency=4)).to(), state_store=store)
    flow.run()
    for i in range(8):
        await flow.emit(make_message(i))
    for _ in range(8):
        await flow.fetch()
    await flow.drain()
    seqs = [event.seq for event in store.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) == 8 * 2 + 1
    assert not store.overlapped


async def test_seq_is_never_reset_by_stop_and_run() -> None:
    """A flow run again continues its seq numbering."""
    store = ListStore()
    flow = create(Node(passthrough).to(), state_store=store)
    await run_once(flow, make_message())
    await run_once(flow, make_message())
    assert [event.seq for event in store.events] == [1, 2, 3, 4, 5, 6]
    assert [event.kind for event in store.events] == [
        "node_start",
        "node_success",
        "node_cancelled",
    ] * 2


class ReversedStore(ListStore):
    """A store returning history newest first."""

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        return list(reversed(await super().load_history(trace_id)))


async def test_load_history_returns_events_sorted_by_seq() -> None:
    """load_history sorts whatever the store returns by seq."""
    store = ReversedStore()
    flow = create(Node(passthrough).to(), state_store=store)
    message = make_message()
    await run_once(flow, message)
    history = await flow.load_history(message.trace_id)
    assert [event.seq for event in history] == [1, 2]
    assert [event.kind for event in history] == ["node_start", "node_success"]
    assert history[0].payload["event"] == "node_start"
    assert history[0].trace_id == message.trace_id


async def test_load_history_without_a_store_raises() -> None:
    """load_history on a flow without a state store names the missing store."""
    flow = create(Node(passthrough).to())
    with pytest.raises(RuntimeError, match=r"^PenguiFlow was created without a state_store$"):
        await flow.load_history("t")


# Message bus (section 19.8) ---------------------------------------------------------------------


class GatedBus:
    """A bus recording envelopes; each publish waits for the gate and notes the flow's state first."""

    def __init__(self) -> None:
        self.envelopes: list[BusEnvelope] = []
        self.gate = asyncio.Event()
        self.published = asyncio.Event()
        self.flow: PenguiFlow | None = None
        self.snapshots: list[tuple[dict[str, int], int]] = []

    async def publish(self, envelope: BusEnvelope) -> None:
        assert self.flow is not None
        stats = self.flow.statistics()
        self.snapshots.append((dict(stats.edge_size), stats.buffered_results))
        self.envelopes.append(envelope)
        self.published.set()
        await self.gate.wait()


async def test_bus_envelopes_are_published_before_each_put() -> None:
    """Every edge put and Rookery delivery is published first; the put waits for the publish."""
    bus = GatedBus()
    a, b = Node(passthrough, name="a"), Node(passthrough, name="b")
    flow = create(a.to(b), b.to(), message_bus=bus)
    bus.flow = flow
    flow.run()
    message = make_message("p", meta={"k": "v"})
    emitting = asyncio.create_task(flow.emit(message))
    await bus.published.wait()
    assert not emitting.done()
    assert flow.statistics().edge_size["ingress->a"] == 0
    bus.gate.set()
    await emitting
    assert await flow.fetch() is message
    await flow.stop()
    assert [envelope.edge for envelope in bus.envelopes] == ["OpenSea->a", "a->b", "b->Rookery"]
    assert [(envelope.source, envelope.target) for envelope in bus.envelopes] == [
        ("OpenSea", "a"),
        ("a", "b"),
        ("b", "Rookery"),
    ]
    assert bus.snapshots[1][0]["a->b"] == 0
    assert bus.snapshots[2][1] == 0
    for envelope in bus.envelopes:
        assert envelope.payload is message
        assert envelope.trace_id == message.trace_id
        assert envelope.headers == message.headers.model_dump()
        assert envelope.meta == {"k": "v"}


async def test_bus_envelope_of_a_payload_only_item_has_no_headers_or_meta() -> None:
    """A payload-only item is published with trace, headers and meta all None."""
    bus = GatedBus()
    bus.gate.set()
    flow = create(Node(passthrough, name="a").to(), message_bus=bus)
    bus.flow = flow
    flow.run()
    await flow.emit({"plain": 1})
    assert await flow.fetch() == {"plain": 1}
    await flow.stop()
    assert [envelope.edge for envelope in bus.envelopes] == ["OpenSea->a", "a->Rookery"]
    assert all(
        (envelope.trace_id, envelope.headers, envelope.meta) == (None, None, None)
        for envelope in bus.envelopes
    )


async def test_raising_bus_is_logged_and_the_put_still_happens(caplog: pytest.LogCaptureFixture) -> None:
    """A bus failure is logged as message_bus_publish_failed and the item still moves."""
    caplog.set_level(logging.ERROR, logger=CORE)

    class BrokenBus:
        async def publish(self, envelope: BusEnvelope) -> None:
            raise ConnectionError("bus down")

    flow = create(Node(passthrough).to(), message_bus=BrokenBus())
    flow.run()
    await flow.emit(make_message("ok"))
    assert (await flow.fetch()).payload == "ok"
    await flow.stop()
    assert [r.getMessage() for r in caplog.records].count("message_bus_publish_failed") == 2


# Redaction (F15) --------------------------------------------------------------------------------


async def failing(message: Any, ctx: Context) -> Any:
    """Always raise."""
    raise ValueError("boom")


async def test_events_carry_no_payload_or_meta_without_a_redactor(recorder: EventRecorder) -> None:
    """By default neither node_start nor node_failed records the payload or meta."""
    flow = flow_of(Node(failing), recorder)
    await flow.emit(make_message("secret", meta={"token": "s3cr3t"}))
    await recorder.wait_for("node_failed")
    await flow.stop()
    for event in recorder.events:
        assert "payload" not in event.extra
        assert "meta" not in event.extra
        assert "secret" not in repr(event.to_payload())


async def test_redactor_output_is_recorded_on_start_and_failure(recorder: EventRecorder) -> None:
    """With a redactor, node_start and node_failed carry what it returns for payload and meta."""

    def redactor(kind: str, value: Any) -> Any:
        return f"{kind}:{len(value)}"

    flow = flow_of(Node(failing), recorder, redactor=redactor)
    await flow.emit(make_message("secret", meta={"token": "s3cr3t"}))
    await recorder.wait_for("node_failed")
    await flow.stop()
    start, failed = recorder.of("node_start")[0], recorder.of("node_failed")[0]
    assert (start.extra["payload"], start.extra["meta"]) == ("payload:6", "meta:1")
    assert (failed.extra["payload"], failed.extra["meta"]) == ("payload:6", "meta:1")
    assert "payload" not in recorder.of("node_error")[0].extra


async def test_redactor_returning_none_omits_the_field(recorder: EventRecorder) -> None:
    """A None from the redactor leaves the field out."""

    def payload_only(kind: str, value: Any) -> Any:
        return value if kind == "payload" else None

    flow = flow_of(Node(passthrough), recorder, redactor=payload_only)
    await flow.emit(make_message("visible", meta={"token": "s3cr3t"}))
    await flow.fetch()
    await flow.stop()
    start = recorder.of("node_start")[0]
    assert start.extra == {"payload": "visible"}


async def test_raising_redactor_omits_the_field_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
    recorder: EventRecorder,
) -> None:
    """A raising redactor drops the fields and is logged once per flow, however many events."""
    caplog.set_level(logging.WARNING, logger=CORE)

    def broken(kind: str, value: Any) -> Any:
        raise RuntimeError("redactor bug")

    flow = flow_of(Node(passthrough), recorder, redactor=broken)
    for i in range(3):
        await flow.emit(make_message(i))
        await flow.fetch()
    await flow.stop()
    assert len(recorder.of("node_start")) == 3
    assert all("payload" not in event.extra and "meta" not in event.extra for event in recorder.events)
    warnings = [r for r in caplog.records if r.getMessage() == "redactor_failed"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


class Card(BaseModel):
    """A model whose validation error would quote the input."""

    number: int


async def test_validation_error_is_rendered_without_input_values(recorder: EventRecorder) -> None:
    """A ValidationError appears in events and FlowError without the offending input value."""
    registry = ModelRegistry()
    registry.register("v", Card, Card)

    async def v(message: Any, ctx: Context) -> Any:
        return message

    flow = create(Node(v).to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run(registry=registry)
    await flow.emit({"number": "4111-SECRET-1111"})
    error = await flow.fetch()
    await flow.stop()
    assert isinstance(error, FlowError)
    assert error.trace_id is None
    texts = [
        error.message,
        str(error),
        error.metadata["exception_repr"],
        recorder.of("node_error")[0].extra["exception"],
        recorder.of("node_failed")[0].extra["exception"],
        repr(recorder.of("node_failed")[0].extra["flow_error"]),
    ]
    for text in texts:
        assert "SECRET" not in text
        assert "number" in text
    assert re.match(r"^Node 'v' raised ValidationError: ", error.message)
    assert "SECRET" in str(error.original_exc)
