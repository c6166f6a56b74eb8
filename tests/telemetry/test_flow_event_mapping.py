"""Every FlowEvent and what telemetry makes of it (telemetry.md section 7.2), plus trace identity (4.1, 4.2).

One test per row of the mapping table, each running the canonical sequence of runtime.md section
19.3 with a recording middleware, then asserting the spans, status, outcome, attributes and metric
samples the row names. Flows are built and run inside ``capture_telemetry()``; every test ends with
no span left open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from capture_helpers import Gate, attrs, by_attempt, node, only, parent_of, span_id, trace_of, value
from flowkit import EventRecorder, make_message, promptly, run_once, wait_forever
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from penguiflow_otel import (
    WM,
    Context,
    FinalAnswer,
    FlowError,
    FlowEvent,
    Headers,
    Message,
    Node,
    PenguiFlow,
    create,
    join_k,
)
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import ManualClock, capture_telemetry

# Helpers -----------------------------------------------------------------------------------------


def flags_of(span: ReadableSpan) -> int:
    """The span's W3C trace flags."""
    assert span.context is not None
    return int(span.context.trace_flags)


DURATION_COUNT = "penguiflow_node_duration_seconds_count"
DROPPED = "penguiflow_message_dropped_total"


def raises(exc: BaseException) -> Callable[[Any, Context], Any]:
    """A node body that always raises ``exc``."""

    async def body(msg: Any, ctx: Context) -> Any:
        raise exc

    return body


def fails_then_passes(times: int, exc_type: type[Exception] = ValueError) -> Callable[[Any, Context], Any]:
    """A node body raising ``exc_type`` on its first ``times`` calls, then returning its input."""
    calls = [0]

    async def body(msg: Any, ctx: Context) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise exc_type(f"failure {calls[0]}")
        return msg

    return body


# node_start / node_success -----------------------------------------------------------------------


async def test_node_start_opens_an_attempt_span_under_the_producer(recorder: EventRecorder) -> None:
    """`node_start`: a `node` span, child of the item's producer, with start and queue attributes."""
    with capture_telemetry() as tel:
        a, b = node("a"), node("b")
        flow = create(a.to(b), b.to(), middlewares=[recorder], name="mapping")
        msg = make_message("m")
        await run_once(flow, msg)

        assert recorder.sequence(msg.trace_id) == [
            ("node_start", 0),
            ("node_success", 0),
            ("node_start", 0),
            ("node_success", 0),
        ]
        assert recorder.first("node_start").latency_ms == 0.0
        root = only(tel.spans("flow "))
        span_a, span_b = only(tel.spans("node a")), only(tel.spans("node b"))
        assert root.name == "flow mapping"
        assert parent_of(span_a) == span_id(root)
        assert parent_of(span_b) == span_id(span_a)
        for span, name, queue in ((span_a, "a", "ingress->a"), (span_b, "b", "a->b")):
            assert span.kind.name == "INTERNAL"
            assert attrs(span)[names.ATTR_FLOW_NAME] == "mapping"
            assert attrs(span)[names.ATTR_NODE_NAME] == name
            assert attrs(span)[names.ATTR_NODE_ATTEMPT] == 0
            assert attrs(span)[names.ATTR_QUEUE_NAME] == queue
            assert attrs(span)[names.ATTR_QUEUE_WAIT_TIME] >= 0.0
        assert tel.open_spans() == []


async def test_node_success_ends_the_attempt_ok_after_routing(recorder: EventRecorder) -> None:
    """`node_success`: UNSET, `ok`, stream attributes on an emitting node, `node.duration{ok}` once."""

    async def talk(msg: Message[Any], ctx: Context) -> Message[Any]:
        await ctx.emit_chunk(parent=msg, text="hel")
        await ctx.emit_chunk(parent=msg, text="lo", done=True)
        return msg

    with capture_telemetry() as tel:
        talker, sink = Node(talk, name="talker"), node("sink")
        flow = create(talker.to(sink), sink.to(), middlewares=[recorder])
        flow.run()
        msg = make_message("m")
        await flow.emit(msg)
        results = [await flow.fetch() for _ in range(3)]
        await flow.stop()

        assert len(results) == 3
        assert recorder.kinds(msg.trace_id)[:2] == ["node_start", "node_success"]
        span = only(tel.spans("node talker"))
        assert span.status.status_code is StatusCode.UNSET
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert attrs(span)[names.ATTR_STREAM_CHUNKS] == 2
        assert attrs(span)[names.ATTR_STREAM_TIME_TO_FIRST_CHUNK] >= 0.0
        assert names.ATTR_NODE_BLOCKED_TIME not in attrs(span)  # no put waited
        assert names.ATTR_ERROR_TYPE not in attrs(span)
        assert len(tel.spans("node sink")) == 3  # two chunks and the message
        assert (
            value(tel, DURATION_COUNT, penguiflow_node_name="talker", penguiflow_outcome="ok", error_type="")
            == 1
        )
        assert value(tel, DURATION_COUNT, penguiflow_node_name="sink", penguiflow_outcome="ok") == 3
        assert value(tel, "penguiflow_stream_chunks_total", penguiflow_node_name="talker") == 2
        root = only(tel.spans("flow "))
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert value(tel, "penguiflow_trace_duration_seconds_count", penguiflow_outcome="ok") == 1
        assert tel.open_spans() == []


# node_error / node_failed ------------------------------------------------------------------------


async def test_node_error_marks_the_attempt_error_with_the_exception_class(recorder: EventRecorder) -> None:
    """`node_error` (not retryable): ERROR, `error`, `error.type` = class, the exception recorded once."""
    with capture_telemetry() as tel:
        bad = node(
            "bad", raises(ValueError("bad input " + "x" * 400)), max_retries=3, retry_on=lambda exc: False
        )
        flow = create(bad.to(), middlewares=[recorder], emit_errors_to_rookery=True)
        msg = make_message("m")
        error = await run_once(flow, msg)

        assert isinstance(error, FlowError)
        assert recorder.sequence(msg.trace_id) == [("node_start", 0), ("node_error", 0), ("node_failed", 0)]
        span = only(tel.spans("node bad"))
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is not None
        assert span.status.description.startswith("bad input x")
        assert len(span.status.description) == 256  # truncated
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == "ValueError"
        assert names.ATTR_ERROR_PHASE not in attrs(span)
        exceptions = [event for event in span.events if event.name == "exception"]
        assert len(exceptions) == 1
        assert dict(exceptions[0].attributes or {})["exception.type"] == "ValueError"
        root = only(tel.spans("flow "))
        assert [event.name for event in root.events] == []  # never recorded on the root
        assert value(tel, DURATION_COUNT, penguiflow_outcome="error", error_type="ValueError") == 1
        assert tel.open_spans() == []


async def test_routing_failure_is_reported_by_failed_with_phase_route(recorder: EventRecorder) -> None:
    """`node_error {phase route}`: the open span ends ERROR, `error.phase=route`; duration recorded once."""

    async def loop_without_edge(msg: Message[Any], ctx: Context) -> Message[Any]:
        return msg.model_copy(update={"payload": WM(query="q")})  # WM re-emits to itself: no self-edge

    with capture_telemetry() as tel:
        controller = Node(loop_without_edge, name="controller")
        flow = create(controller.to(), middlewares=[recorder], emit_errors_to_rookery=True)
        msg = make_message("m")
        error = await run_once(flow, msg)

        assert isinstance(error, FlowError)
        assert error.code == "NODE_EXCEPTION"
        assert recorder.kinds(msg.trace_id) == ["node_start", "node_error", "node_failed"]
        assert recorder.first("node_error").extra["phase"] == "route"
        span = only(tel.spans("node controller"))  # no re-invocation
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_ERROR_PHASE] == names.ERROR_PHASE_ROUTE
        assert attrs(span)[names.ATTR_ERROR_TYPE] == "KeyError"
        assert attrs(span)[names.ATTR_ERROR_CODE] == "NODE_EXCEPTION"
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert value(tel, DURATION_COUNT, penguiflow_node_name="controller") == 1
        assert value(tel, DURATION_COUNT, penguiflow_outcome="error", error_type="KeyError") == 1
        assert value(tel, "penguiflow_node_failures_total", error_type="KeyError") == 1
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == "KeyError"
        assert tel.open_spans() == []


async def test_node_failed_sets_the_code_on_the_last_attempt_and_fails_the_root(
    recorder: EventRecorder,
) -> None:
    """`node_failed`: `error.code` on the last attempt, `node.failures{error.type}` +1, root ERROR."""
    with capture_telemetry() as tel:
        bad = node("bad", raises(RuntimeError("no")), max_retries=1, backoff_base=0.001)
        flow = create(bad.to(), middlewares=[recorder], emit_errors_to_rookery=True)
        msg = make_message("m")
        error = await run_once(flow, msg)

        assert isinstance(error, FlowError)
        assert recorder.sequence(msg.trace_id) == [
            ("node_start", 0),
            ("node_error", 0),
            ("node_retry", 1),
            ("node_start", 1),
            ("node_error", 1),
            ("node_failed", 1),
        ]
        first, last = by_attempt(tel.spans("node bad"))
        assert names.ATTR_ERROR_CODE not in attrs(first)
        assert attrs(last)[names.ATTR_ERROR_CODE] == "NODE_EXCEPTION"
        assert (
            value(
                tel, "penguiflow_node_failures_total", penguiflow_node_name="bad", error_type="RuntimeError"
            )
            == 1
        )
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == "RuntimeError"
        assert attrs(root)[names.ATTR_ERROR_CODE] == "NODE_EXCEPTION"
        assert value(tel, "penguiflow_trace_duration_seconds_count", error_type="RuntimeError") == 1
        assert tel.open_spans() == []


async def test_node_failed_without_an_attempt_adds_no_span(recorder: EventRecorder) -> None:
    """`node_failed` after a backoff past the deadline (F11): no new span, root ERROR `deadline_exceeded`."""
    clock = ManualClock()

    async def deadline_passes_during_backoff(event: FlowEvent) -> None:
        if event.event_type == "node_retry":
            clock.advance(60.0)

    with capture_telemetry() as tel:
        bad = node("bad", raises(ValueError("no")), max_retries=1, backoff_base=0.001)
        flow = create(
            bad.to(),
            middlewares=[recorder, deadline_passes_during_backoff],
            emit_errors_to_rookery=True,
            clock=clock,
        )
        msg = make_message("m", deadline_s=clock.time() + 10.0)
        error = await run_once(flow, msg)

        assert isinstance(error, FlowError)
        assert error.code == "DEADLINE_EXCEEDED"
        assert recorder.kinds(msg.trace_id) == ["node_start", "node_error", "node_retry", "node_failed"]
        assert recorder.first("node_failed").latency_ms is None
        span = only(tel.spans("node bad"))  # attempt 0 only
        assert attrs(span)[names.ATTR_ERROR_TYPE] == "ValueError"
        assert attrs(span)[names.ATTR_RETRY_DELAY] == pytest.approx(0.001)
        assert names.ATTR_ERROR_CODE not in attrs(span)
        assert value(tel, "penguiflow_node_failures_total", error_type="deadline_exceeded") == 1
        assert value(tel, DURATION_COUNT, penguiflow_node_name="bad") == 1
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(root)[names.ATTR_ERROR_CODE] == "DEADLINE_EXCEEDED"
        assert tel.open_spans() == []


# node_timeout / node_retry -----------------------------------------------------------------------


async def test_node_timeout_to_failure_marks_each_attempt_timeout(recorder: EventRecorder) -> None:
    """`node_timeout` twice (`max_retries=1`): both attempts ERROR `timeout`, `node.timeout`; NODE_TIMEOUT."""
    with capture_telemetry() as tel:
        slow = node("slow", wait_forever, timeout_s=0.01, max_retries=1, backoff_base=0.001)
        flow = create(slow.to(), middlewares=[recorder], emit_errors_to_rookery=True)
        msg = make_message("m")
        error = await run_once(flow, msg)

        assert isinstance(error, FlowError)
        assert recorder.sequence(msg.trace_id) == [
            ("node_start", 0),
            ("node_timeout", 0),
            ("node_retry", 1),
            ("node_start", 1),
            ("node_timeout", 1),
            ("node_failed", 1),
        ]
        failed = recorder.first("node_failed").error_payload
        assert failed is not None
        assert failed["code"] == "NODE_TIMEOUT"
        assert failed["metadata"]["attempt"] == 1
        assert failed["metadata"]["timeout_s"] == 0.01
        first, last = by_attempt(tel.spans("node slow"))
        for span in (first, last):
            assert span.status.status_code is StatusCode.ERROR
            assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
            assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_TIMEOUT
            assert attrs(span)[names.ATTR_NODE_TIMEOUT] == pytest.approx(0.01)
        assert names.ATTR_RETRY_DELAY in attrs(first)
        assert attrs(last)[names.ATTR_ERROR_CODE] == "NODE_TIMEOUT"
        assert value(tel, DURATION_COUNT, penguiflow_outcome="error", error_type="timeout") == 2
        assert value(tel, "penguiflow_node_retries_total", error_type="timeout") == 1
        assert value(tel, "penguiflow_node_failures_total", error_type="timeout") == 1
        assert attrs(only(tel.spans("flow ")))[names.ATTR_ERROR_CODE] == "NODE_TIMEOUT"
        assert tel.open_spans() == []


async def test_node_timeout_on_the_deadline_bound_is_deadline_exceeded(recorder: EventRecorder) -> None:
    """`node_timeout {deadline_s}` (F11): ERROR `deadline_exceeded`, no `node.timeout`, no retry."""
    with capture_telemetry() as tel:
        slow = node("slow", wait_forever, max_retries=3, timeout_s=10.0)
        clock = ManualClock()  # "now" stands still: only the deadline bound (0.02 s of loop time) can fire
        flow = create(slow.to(), middlewares=[recorder], emit_errors_to_rookery=True, clock=clock)
        msg = make_message("m", deadline_s=clock.time() + 0.02)
        error = await run_once(flow, msg)

        assert isinstance(error, FlowError)
        assert recorder.kinds(msg.trace_id) == ["node_start", "node_timeout", "node_failed"]
        assert recorder.first("node_timeout").extra["deadline_s"] == msg.deadline_s
        span = only(tel.spans("node slow"))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(span)[names.ATTR_ERROR_CODE] == "DEADLINE_EXCEEDED"
        assert names.ATTR_NODE_TIMEOUT not in attrs(span)
        assert value(tel, DURATION_COUNT, penguiflow_outcome="error", error_type="deadline_exceeded") == 1
        assert value(tel, "penguiflow_node_retries_total") == 0
        assert tel.open_spans() == []


async def test_node_retry_puts_the_backoff_on_the_failed_attempt(recorder: EventRecorder) -> None:
    """`node_retry`: `retry.delay` (the slept, jittered delay) on the failed attempt; `node.retries` +1."""
    with capture_telemetry() as tel:
        flaky = node("flaky", fails_then_passes(1), max_retries=2, backoff_base=0.004, jitter=0.5)
        flow = create(flaky.to(), middlewares=[recorder])
        msg = make_message("m")
        result = await run_once(flow, msg)

        assert result.payload == "m"
        assert recorder.sequence(msg.trace_id) == [
            ("node_start", 0),
            ("node_error", 0),
            ("node_retry", 1),
            ("node_start", 1),
            ("node_success", 1),
        ]
        failed, succeeded = by_attempt(tel.spans("node flaky"))
        assert attrs(failed)[names.ATTR_RETRY_DELAY] == recorder.first("node_retry").extra["sleep_s"]
        assert names.ATTR_RETRY_DELAY not in attrs(succeeded)
        assert len(succeeded.links) == 1
        assert succeeded.links[0].context.span_id == span_id(failed)
        assert dict(succeeded.links[0].attributes or {}) == {names.ATTR_LINK_TYPE: names.LINK_TYPE_RETRY}
        assert parent_of(failed) == parent_of(succeeded)
        assert (
            value(tel, "penguiflow_node_retries_total", penguiflow_node_name="flaky", error_type="ValueError")
            == 1
        )
        assert value(tel, DURATION_COUNT, penguiflow_node_name="flaky") == 2
        assert attrs(only(tel.spans("flow ")))[names.ATTR_OUTCOME] == names.OUTCOME_OK  # recovered
        assert tel.open_spans() == []


# deadline_skip -----------------------------------------------------------------------------------


async def test_deadline_skip_is_a_zero_work_error_span_and_a_deadline_drop(recorder: EventRecorder) -> None:
    """`deadline_skip`: no `node_start`, one ERROR span `deadline_exceeded`, `dropped{deadline}` +1."""
    with capture_telemetry() as tel:
        late = node("late", wait_forever)
        flow = create(late.to(), middlewares=[recorder])
        msg = make_message("m", deadline_s=time.time() - 5.0)
        result = await run_once(flow, msg)

        assert result.payload == FinalAnswer(text="Deadline exceeded")
        assert recorder.kinds(msg.trace_id) == ["deadline_skip"]
        span = only(tel.spans("node late"))
        assert parent_of(span) == span_id(only(tel.spans("flow ")))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(span)[names.ATTR_MESSAGE_DEADLINE] == msg.deadline_s
        assert value(tel, DROPPED, penguiflow_node_name="late", penguiflow_drop_reason="deadline") == 1
        assert value(tel, DURATION_COUNT) == 0  # no attempt ran
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert tel.open_spans() == []


# Cancellation ------------------------------------------------------------------------------------


async def test_trace_cancel_drop_adds_no_span_and_counts_the_drop(recorder: EventRecorder) -> None:
    """`trace_cancel_drop`: a later message of a cancelling trace gets no span and counts on the root."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to(), middlewares=[recorder])
        flow.run()
        first = make_message(0)
        await flow.emit(first)
        await gate.arrived.wait()
        assert await flow.cancel(first.trace_id)
        await flow.emit(make_message(1, trace_id=first.trace_id))  # admitted while the trace is still active
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        assert recorder.kinds(first.trace_id) == [
            "node_start",
            "trace_cancel_start",
            "node_trace_cancelled",
            "trace_cancel_drop",
            "trace_cancel_finish",
        ]
        assert len(tel.spans("node hold")) == 1  # the dropped message got none
        root = only(tel.spans("flow "))
        assert attrs(root)[names.ATTR_TRACE_MESSAGES_DROPPED] == 2  # the held item and the drop
        assert value(tel, DROPPED, penguiflow_node_name="hold", penguiflow_drop_reason="cancelled") == 2
        assert tel.open_spans() == []


async def test_node_trace_cancelled_ends_the_open_attempt_cancelled(recorder: EventRecorder) -> None:
    """`node_trace_cancelled` in flight: UNSET `cancelled` (`trace_cancel`), duration{cancelled}, one drop."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to(), middlewares=[recorder])
        flow.run()
        msg = make_message("m")
        await flow.emit(msg)
        await gate.arrived.wait()
        assert await flow.cancel(msg.trace_id)
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        assert recorder.kinds(msg.trace_id) == [
            "node_start",
            "trace_cancel_start",
            "node_trace_cancelled",
            "trace_cancel_finish",
        ]
        assert recorder.first("node_trace_cancelled").attempt == 0
        span = only(tel.spans("node hold"))
        assert span.status.status_code is StatusCode.UNSET
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(span)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_TRACE_CANCEL
        assert value(tel, DURATION_COUNT, penguiflow_node_name="hold", penguiflow_outcome="cancelled") == 1
        assert value(tel, DROPPED, penguiflow_node_name="hold", penguiflow_drop_reason="cancelled") == 1
        assert tel.open_spans() == []


async def test_node_trace_cancelled_during_backoff_has_no_open_attempt(recorder: EventRecorder) -> None:
    """`node_trace_cancelled` in a backoff (F6): no attempt is open; only the held item is dropped."""
    with capture_telemetry() as tel:
        bad = node("bad", raises(ValueError("no")), max_retries=1, backoff_base=30.0)
        flow = create(bad.to(), middlewares=[recorder])
        flow.run()
        msg = make_message("m")
        await flow.emit(msg)
        await recorder.seen("node_retry").wait()
        assert await flow.cancel(msg.trace_id)
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        assert recorder.kinds(msg.trace_id) == [
            "node_start",
            "node_error",
            "node_retry",
            "trace_cancel_start",
            "node_trace_cancelled",
            "trace_cancel_finish",
        ]
        span = only(tel.spans("node bad"))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_RETRY_DELAY] == 30.0
        assert value(tel, DURATION_COUNT, penguiflow_outcome="cancelled") == 0
        assert value(tel, DROPPED, penguiflow_node_name="bad", penguiflow_drop_reason="cancelled") == 1
        root = only(tel.spans("flow "))
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED  # cancelled outranks the error
        assert root.status.status_code is StatusCode.UNSET
        assert tel.open_spans() == []


async def test_node_trace_cancelled_during_routing_ends_the_attempt_cancelled(
    recorder: EventRecorder,
) -> None:
    """A cancel interrupting a blocked put (F6): `routed(cancelled)` ends the span, duration{cancelled}."""
    gate = Gate()
    with capture_telemetry() as tel:
        feed, sink = node("feed"), gate.node("sink")
        flow = create(feed.to(sink), sink.to(), queue_maxsize=1, middlewares=[recorder])
        flow.run()
        first = make_message(0)
        await flow.emit(first)
        await gate.arrived.wait()
        for i in (1, 2):
            await flow.emit(make_message(i, trace_id=first.trace_id))
        await promptly(
            lambda: (
                flow.statistics().edge_size["feed->sink"] == 1
                and flow.statistics().node_inflight["feed"] == 1
            ),
            rounds=500,
        )
        assert await flow.cancel(first.trace_id)
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        feed_spans = tel.spans("node feed")
        assert len(feed_spans) == 3
        cancelled = only([span for span in feed_spans if attrs(span)[names.ATTR_OUTCOME] == "cancelled"])
        assert attrs(cancelled)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_TRACE_CANCEL
        assert cancelled.status.status_code is StatusCode.UNSET
        assert attrs(only(tel.spans("node sink")))[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert value(tel, DURATION_COUNT, penguiflow_node_name="feed", penguiflow_outcome="ok") == 2
        assert value(tel, DURATION_COUNT, penguiflow_node_name="feed", penguiflow_outcome="cancelled") == 1
        assert value(tel, DURATION_COUNT, penguiflow_node_name="sink", penguiflow_outcome="cancelled") == 1
        root = only(tel.spans("flow "))
        purged = dict(only_event(root, names.EVENT_CANCEL).attributes or {})[names.ATTR_CANCEL_PURGED]
        assert purged == 1  # the item queued on feed->sink
        assert value(tel, DROPPED, penguiflow_drop_reason="cancelled") == purged + 2  # plus both held items
        assert attrs(root)[names.ATTR_TRACE_MESSAGES_DROPPED] == purged + 2
        assert tel.open_spans() == []


def only_event(span: ReadableSpan, name: str) -> Any:
    """The single span event called ``name``."""
    events = [event for event in span.events if event.name == name]
    assert len(events) == 1, span.events
    return events[0]


async def test_node_cancelled_by_stop_ends_attempts_and_drops_every_discarded_item(
    recorder: EventRecorder,
) -> None:
    """`node_cancelled`: the open attempt ends `cancelled` (`stop`); every discarded item is a drop."""
    gate = Gate()
    with capture_telemetry() as tel:
        fast, slow, join = node("fast"), gate.node("slow"), join_k("join", 2)
        flow = create(fast.to(), slow.to(), join.to(), middlewares=[recorder])
        flow.run()
        await flow.emit(make_message("unfetched"), to=fast)
        await flow.emit(make_message("held"), to=slow)
        await flow.emit(make_message("queued"), to=slow)
        await flow.emit(make_message("parked"), to=join)
        await promptly(
            lambda: (
                (stats := flow.statistics()).buffered_results == 1
                and stats.parked_join_items == 1
                and stats.edge_size["ingress->slow"] == 1
                and stats.node_inflight["slow"] == 1
            ),
            rounds=500,
        )
        discarded = await flow.stop()

        assert discarded == 4
        assert [event.node_name for event in recorder.events if event.event_type == "node_cancelled"] == [
            "fast",
            "slow",
            "join",
        ]
        assert all(
            event.trace_id is None for event in recorder.events if event.event_type == "node_cancelled"
        )
        span = only(tel.spans("node slow"))
        assert span.status.status_code is StatusCode.UNSET
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(span)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_STOP
        assert value(tel, DURATION_COUNT, penguiflow_node_name="slow", penguiflow_outcome="cancelled") == 1
        assert value(tel, DROPPED, penguiflow_drop_reason="stop", penguiflow_node_name="slow") == 2
        assert value(tel, DROPPED, penguiflow_drop_reason="stop", penguiflow_node_name="join") == 1
        assert value(tel, DROPPED, penguiflow_drop_reason="stop", penguiflow_node_name="egress") == 1
        assert value(tel, DROPPED, penguiflow_drop_reason="stop") == discarded
        roots = tel.spans("flow ")
        assert len(roots) == 4
        for root in roots:
            assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
            assert attrs(root)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_STOP
            assert attrs(root)[names.ATTR_TRACE_MESSAGES_DROPPED] == 1
            assert root.status.status_code is StatusCode.UNSET
        assert value(tel, "penguiflow_trace_duration_seconds_count", penguiflow_outcome="cancelled") == 4
        assert tel.open_spans() == []


async def test_trace_cancel_start_adds_one_cancel_event_and_counts_one_cancellation(
    recorder: EventRecorder,
) -> None:
    """`trace_cancel_start`: one `penguiflow.cancel` event with the purge count; a repeat adds nothing."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to(), middlewares=[recorder])
        flow.run()
        first = make_message(0)
        await flow.emit(first)
        await gate.arrived.wait()
        await flow.emit(make_message(1, trace_id=first.trace_id))
        assert await flow.cancel(first.trace_id)
        assert await flow.cancel(first.trace_id)
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        starts = [event for event in recorder.events if event.event_type == "trace_cancel_start"]
        assert len(starts) == 1
        assert starts[0].extra["pending"] == 2
        assert starts[0].trace_inflight >= 1
        assert starts[0].trace_cancelled
        root = only(tel.spans("flow "))
        assert dict(only_event(root, names.EVENT_CANCEL).attributes or {}) == {names.ATTR_CANCEL_PURGED: 1}
        assert value(tel, "penguiflow_trace_cancellations_total") == 1
        assert value(tel, DROPPED, penguiflow_drop_reason="cancelled") == 2  # purged 1 + held 1
        assert tel.open_spans() == []


async def test_trace_cancel_finish_ends_the_root_cancelled(recorder: EventRecorder) -> None:
    """`trace_cancel_finish` (inside cancel() here): root UNSET `cancelled`, drops, duration{cancelled}."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to(), middlewares=[recorder])
        flow.run()
        busy = make_message("busy")
        await flow.emit(busy)
        await gate.arrived.wait()
        victim = make_message(0)
        await flow.emit(victim)
        await flow.emit(make_message(1, trace_id=victim.trace_id))
        assert await flow.cancel(victim.trace_id)  # everything purged: the trace ends inside cancel()

        assert recorder.kinds(victim.trace_id) == ["trace_cancel_start", "trace_cancel_finish"]
        finish = recorder.first("trace_cancel_finish")
        assert (finish.trace_pending, finish.trace_inflight, finish.trace_cancelled) == (0, 0, True)
        root = only(tel.spans("flow "))
        assert trace_of(root) == int(victim.trace_id, 16)
        assert root.status.status_code is StatusCode.UNSET
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(root)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_TRACE_CANCEL
        assert attrs(root)[names.ATTR_TRACE_MESSAGES_DROPPED] == 2
        assert value(tel, "penguiflow_trace_duration_seconds_count", penguiflow_outcome="cancelled") == 1
        gate.open.set()
        await flow.fetch()
        await flow.stop()
        assert value(tel, "penguiflow_trace_duration_seconds_count", penguiflow_outcome="ok") == 1
        assert tel.open_spans() == []


# join_timeout ------------------------------------------------------------------------------------


async def test_join_timeout_fails_the_root_and_drops_the_parked_inputs(recorder: EventRecorder) -> None:
    """`join_timeout`: no span; root ERROR `join_timeout` (JOIN_TIMEOUT); `dropped{join_timeout}` +2."""
    with capture_telemetry() as tel:
        join = join_k("join", 3, timeout_s=0.02)
        flow = create(join.to(), middlewares=[recorder], emit_errors_to_rookery=True)
        first = make_message(0)
        await flow.emit(first)  # both queued before run(): they arrive back to back, before any timer
        await flow.emit(make_message(1, trace_id=first.trace_id))
        flow.run()
        error = await flow.fetch()
        await flow.stop()

        assert isinstance(error, FlowError)
        assert error.code == "JOIN_TIMEOUT"
        assert recorder.kinds(first.trace_id) == [
            "node_start",
            "node_success",
            "node_start",
            "node_success",
            "join_timeout",
        ]
        assert recorder.first("join_timeout").extra["received"] == 2
        join_spans = tel.spans("node join")
        assert len(join_spans) == 2  # the buffering arrivals only
        assert all(attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_OK for span in join_spans)
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_JOIN_TIMEOUT
        assert attrs(root)[names.ATTR_ERROR_CODE] == "JOIN_TIMEOUT"
        assert value(tel, DROPPED, penguiflow_node_name="join", penguiflow_drop_reason="join_timeout") == 2
        assert value(tel, "penguiflow_trace_duration_seconds_count", error_type="join_timeout") == 1
        assert tel.open_spans() == []


# Trace identity and propagation (sections 4.1, 4.2) ----------------------------------------------


async def test_random_flag_is_set_on_minted_trace_ids_only() -> None:
    """The W3C random flag (0x02) marks roots of runtime-minted ids, not supplied or hashed ones."""
    with capture_telemetry() as tel:
        minted = make_message("minted")
        supplied = make_message("supplied", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
        hashed = make_message("hashed", trace_id="Order-7")
        for msg in (minted, supplied, hashed):
            await run_once(create(node("a").to(), name="ids"), msg)

        spans_by_trace: dict[int, list[ReadableSpan]] = {}
        for span in tel.spans():
            spans_by_trace.setdefault(trace_of(span), []).append(span)
        assert len(spans_by_trace) == 3
        minted_spans = spans_by_trace[int(minted.trace_id, 16)]
        assert all(flags_of(span) & 0x02 for span in minted_spans)
        assert all(flags_of(span) & 0x01 for span in minted_spans)  # sampled
        for span in spans_by_trace[int(supplied.trace_id, 16)]:
            assert not flags_of(span) & 0x02
        hashed_spans = [spans for trace, spans in spans_by_trace.items() if trace != int(minted.trace_id, 16)]
        assert all(not flags_of(span) & 0x02 for spans in hashed_spans for span in spans)
        assert tel.open_spans() == []


async def test_order_42_maps_to_its_pinned_trace_id() -> None:
    """A non-W3C trace id hashes to the pinned vector; the root keeps it as `penguiflow.trace_id`."""
    with capture_telemetry() as tel:
        a, b = node("a"), node("b")
        await run_once(create(a.to(b), b.to()), make_message("m", trace_id="order-42"))

        pinned = int("244518d4ab60002f3544d8a2ed90c418", 16)
        assert {trace_of(span) for span in tel.spans()} == {pinned}
        root = only(tel.spans("flow "))
        assert root.parent is None
        assert attrs(root)[names.ATTR_TRACE_ID] == "order-42"
        assert names.ATTR_TRACE_ID not in attrs(only(tel.spans("node a")))
        assert tel.open_spans() == []


async def test_valid_inbound_traceparent_parents_the_root_on_the_remote_span() -> None:
    """A valid `traceparent`: every span shares its trace id; the root's parent is the remote span."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with capture_telemetry() as tel:
        msg = Message(payload="m", headers=Headers(tenant="t", traceparent=traceparent))
        assert msg.trace_id == "0af7651916cd43dd8448eb211c80319c"
        a, b = node("a"), node("b")
        await run_once(create(a.to(b), b.to()), msg)

        assert {trace_of(span) for span in tel.spans()} == {0x0AF7651916CD43DD8448EB211C80319C}
        root = only(tel.spans("flow "))
        assert root.parent is not None
        assert root.parent.span_id == 0xB7AD6B7169203331
        assert root.parent.is_remote
        assert names.ATTR_TRACEPARENT_INVALID not in attrs(root)
        assert names.ATTR_TRACE_ID not in attrs(root)
        assert parent_of(only(tel.spans("node a"))) == span_id(root)
        assert tel.series("penguiflow_propagation_invalid_total") == []
        assert tel.open_spans() == []


async def test_malformed_traceparent_starts_a_true_root_and_is_counted() -> None:
    """A malformed `traceparent`: a new true root, `traceparent.invalid=true`, `propagation_invalid` 1."""
    with capture_telemetry() as tel:
        msg = Message(payload="m", headers=Headers(tenant="t", traceparent="00-not-a-valid-header-01"))
        await run_once(create(node("a").to(), name="bad_tp"), msg)

        root = only(tel.spans("flow "))
        assert root.parent is None
        assert attrs(root)[names.ATTR_TRACEPARENT_INVALID] is True
        assert trace_of(root) == int(msg.trace_id, 16)
        assert value(tel, "penguiflow_propagation_invalid_total", penguiflow_flow_name="bad_tp") == 1
        assert tel.open_spans() == []


async def test_caller_span_of_another_trace_is_linked_not_parent() -> None:
    """A span current at `emit` in another trace becomes a `caller` link; in the same trace, the parent."""
    with capture_telemetry() as tel:
        tracer = tel.tracer_provider.get_tracer("test.caller")
        with tracer.start_as_current_span("http other") as other:
            await run_once(create(node("a").to(), name="linked"), make_message("m"))
        with tracer.start_as_current_span("http same") as same:
            same_trace = format(same.get_span_context().trace_id, "032x")
            await run_once(create(node("a").to(), name="nested"), make_message("m", trace_id=same_trace))

        linked = only(tel.spans("flow linked"))
        assert linked.parent is None
        assert len(linked.links) == 1
        assert linked.links[0].context.span_id == other.get_span_context().span_id
        assert dict(linked.links[0].attributes or {}) == {names.ATTR_LINK_TYPE: names.LINK_TYPE_CALLER}
        nested = only(tel.spans("flow nested"))
        assert parent_of(nested) == same.get_span_context().span_id
        assert nested.links == ()
        assert tel.open_spans() == []


# Telemetry errors are contained ------------------------------------------------------------------


class RaisingOnEnd(SpanProcessor):
    """A span processor whose ``on_end`` always raises."""

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("span processor broke")


class FailingExporter(SpanExporter):
    """An exporter whose every export raises, as a collector that is down."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector down")

    def shutdown(self) -> None:
        return None


def broken_callback(options: CallbackOptions) -> Iterable[Observation]:
    """An observable callback that raises at every collection."""
    raise RuntimeError("metric callback broke")


def reference_flow() -> PenguiFlow:
    """A flow with a retry and a terminal failure, delivering errors as results."""
    flaky = node("flaky", fails_then_passes(1), max_retries=1, backoff_base=0.001)

    async def picky(msg: Message[Any], ctx: Context) -> Message[Any]:
        if msg.payload == 2:
            raise ValueError("two is not allowed")
        return msg.model_copy(update={"payload": msg.payload * 10})

    checker = Node(picky, name="picky")
    return create(flaky.to(checker), checker.to(), emit_errors_to_rookery=True, name="contained")


async def run_reference(flow: PenguiFlow) -> list[object]:
    """Run three messages through ``flow``; the results in a comparable, ordered form."""
    flow.run()
    for i in range(3):
        await flow.emit(make_message(i))
    results = [await flow.fetch() for _ in range(3)]
    await flow.stop()
    return sorted(
        (result.code if isinstance(result, FlowError) else str(result.payload) for result in results), key=str
    )


async def test_telemetry_errors_never_change_a_flows_results() -> None:
    """A raising span processor, a failing exporter and a raising metric callback leave results unchanged."""
    expected = await run_reference(reference_flow())
    with capture_telemetry() as tel:
        tel.tracer_provider.add_span_processor(RaisingOnEnd())
        tel.tracer_provider.add_span_processor(SimpleSpanProcessor(FailingExporter()))
        tel.meter_provider.get_meter("test.broken").create_observable_gauge(
            "test.broken", callbacks=[broken_callback]
        )
        results = await run_reference(reference_flow())

        assert results == expected == ["0", "10", "NODE_EXCEPTION"]
        assert len(tel.spans("node flaky")) == 4  # spans still reach the healthy exporter
        assert len(tel.spans("flow ")) == 3
        assert value(tel, DURATION_COUNT, penguiflow_node_name="flaky") == 4  # other metrics still export
        assert value(tel, DURATION_COUNT, penguiflow_node_name="picky") == 3
        assert value(tel, "penguiflow_trace_duration_seconds_count", penguiflow_flow_name="contained") == 3
        errors = value(tel, "penguiflow_telemetry_errors_total", error_type="instrumentation_error")
        assert errors >= 1
        assert tel.open_spans() == []
