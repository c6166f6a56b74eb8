"""Span trees and runtime metrics of real flows (telemetry.md sections 5, 6, 9.3 and 13).

Every test builds and runs its flow inside ``capture_telemetry()`` (a flow resolves its hooks at
``run()``), waits on runtime events rather than on time, and ends with no span left open.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest
from capture_helpers import Gate, attrs, by_attempt, node, only, parent_of, span_id, trace_of, value
from flowkit import EventRecorder, make_message, promptly, run_once, wait_forever
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from penguiflow_otel import (
    Context,
    FinalAnswer,
    FlowError,
    Message,
    Node,
    NodePolicy,
    create,
    join_k,
    simulate_error,
    stream_flow,
)
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import ManualClock, TelemetryCapture, capture_telemetry

# Helpers -----------------------------------------------------------------------------------------


def gauges(tel: TelemetryCapture, prometheus_name: str, flow_name: str, label: str) -> dict[str, float]:
    """One gauge family of one flow, keyed by ``label``."""
    return {
        labels[label]: sample_value
        for labels, sample_value in tel.series(prometheus_name)
        if labels.get("penguiflow_flow_name") == flow_name
    }


# Span trees --------------------------------------------------------------------------------------


async def test_three_node_chain_nests_each_attempt_under_its_producer() -> None:
    """A chain a -> b -> c: one root with the message's trace id, each attempt under the previous one."""
    with capture_telemetry() as tel:
        a, b, c = node("a"), node("b"), node("c")
        flow = create(a.to(b), b.to(c), c.to())
        msg = make_message("hello")
        result = await run_once(flow, msg)

        assert result.payload == "hello"
        assert tel.tree() == [(0, "flow a"), (1, "node a"), (2, "node b"), (3, "node c")]
        root = only(tel.spans("flow "))
        span_a, span_b, span_c = (only(tel.spans(f"node {name}")) for name in "abc")
        assert root.parent is None
        assert {trace_of(span) for span in tel.spans()} == {int(msg.trace_id, 16)}
        assert parent_of(span_a) == span_id(root)
        assert parent_of(span_b) == span_id(span_a)
        assert parent_of(span_c) == span_id(span_b)
        assert attrs(root)[names.ATTR_FLOW_NAME] == "a"
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert names.ATTR_TRACE_ID not in attrs(root)  # a W3C id is used as is
        assert root.status.status_code is StatusCode.UNSET
        for span, queue, name in ((span_a, "ingress->a", "a"), (span_b, "a->b", "b"), (span_c, "b->c", "c")):
            assert attrs(span)[names.ATTR_QUEUE_NAME] == queue
            assert attrs(span)[names.ATTR_NODE_NAME] == name
            assert attrs(span)[names.ATTR_NODE_ATTEMPT] == 0
            assert attrs(span)[names.ATTR_FLOW_NAME] == "a"
            assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_OK
            wait = attrs(span)[names.ATTR_QUEUE_WAIT_TIME]
            assert isinstance(wait, float)
            assert wait >= 0.0
            assert span.status.status_code is StatusCode.UNSET
        assert tel.open_spans() == []


async def test_join_of_three_branches_links_every_producer() -> None:
    """The completing join attempt is a child of the last producer and links all three, indexed 0..2."""
    with capture_telemetry() as tel:
        src = node("src")
        branches = [node(f"b{i}") for i in range(3)]
        join = join_k("join", 3)
        flow = create(src.to(*branches), *(branch.to(join) for branch in branches), join.to())
        result = await run_once(flow, make_message("x"))

        assert result.payload == ["x", "x", "x"]
        root = only(tel.spans("flow "))
        src_span = only(tel.spans("node src"))
        branch_spans = {span_id(only(tel.spans(f"node b{i}"))): f"b{i}" for i in range(3)}
        assert parent_of(src_span) == span_id(root)
        for i in range(3):
            assert parent_of(only(tel.spans(f"node b{i}"))) == span_id(src_span)  # fan-out: same producer
        join_spans = tel.spans("node join")
        assert len(join_spans) == 3
        completing = only([span for span in join_spans if names.ATTR_JOIN_SIZE in attrs(span)])
        assert attrs(completing)[names.ATTR_JOIN_SIZE] == 3
        links = sorted(completing.links, key=join_index)
        producer = names.LINK_TYPE_PRODUCER
        assert [dict(link.attributes or {}) for link in links] == [
            {names.ATTR_LINK_TYPE: producer, names.ATTR_JOIN_INDEX: index} for index in range(3)
        ]
        assert {link.context.span_id for link in links} == set(branch_spans)
        assert parent_of(completing) == links[2].context.span_id  # the last arrival's producer
        for buffering in join_spans:
            if buffering is not completing:
                assert buffering.links == ()
                assert attrs(buffering)[names.ATTR_OUTCOME] == names.OUTCOME_OK
                assert parent_of(buffering) in branch_spans
        assert {trace_of(span) for span in tel.spans()} == {trace_of(root)}
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert tel.open_spans() == []


async def test_retry_then_success_gives_sibling_attempts_linked_in_order() -> None:
    """Two failures then success: three sibling spans, attempts 0-2, retry links, delays on the failures."""
    with capture_telemetry() as tel:
        flaky = simulate_error("x", "BOOM", fail_times=2, exception_type=ValueError)
        x = Node(flaky, name="x", policy=NodePolicy(max_retries=2, backoff_base=0.001))
        flow = create(x.to())
        result = await run_once(flow, make_message("m"))

        assert result.payload == "m"
        root = only(tel.spans("flow "))
        attempts = by_attempt(tel.spans("node x"))
        assert [attrs(span)[names.ATTR_NODE_ATTEMPT] for span in attempts] == [0, 1, 2]
        assert {parent_of(span) for span in attempts} == {span_id(root)}
        assert attempts[0].links == ()
        for previous, current in itertools.pairwise(attempts):
            link = only_link(current)
            assert link.context.span_id == span_id(previous)
            assert dict(link.attributes or {}) == {names.ATTR_LINK_TYPE: names.LINK_TYPE_RETRY}
        for failed in attempts[:2]:
            assert failed.status.status_code is StatusCode.ERROR
            assert attrs(failed)[names.ATTR_ERROR_TYPE] == "ValueError"
            assert attrs(failed)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
            assert attrs(failed)[names.ATTR_RETRY_DELAY] > 0.0
            assert names.ATTR_ERROR_CODE not in attrs(failed)  # not terminal
        assert names.ATTR_RETRY_DELAY not in attrs(attempts[2])
        assert attrs(attempts[2])[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert attempts[2].status.status_code is StatusCode.UNSET
        assert value(tel, "penguiflow_node_retries_total", penguiflow_node_name="x") == 2
        assert value(tel, "penguiflow_node_retries_total", error_type="ValueError") == 2
        assert value(tel, "penguiflow_node_failures_total") == 0
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert root.status.status_code is StatusCode.UNSET
        assert tel.open_spans() == []


def join_index(link: Any) -> int:
    """A producer link's ``penguiflow.join.index``."""
    index = dict(link.attributes or {})[names.ATTR_JOIN_INDEX]
    assert isinstance(index, int)
    return index


def only_link(span: ReadableSpan) -> Any:
    """The single link of ``span``."""
    assert len(span.links) == 1, span.links
    return span.links[0]


async def test_policy_timeout_fails_the_attempt_with_timeout_and_its_bound() -> None:
    """A `timeout_s` expiry: ERROR, `error.type=timeout`, `node.timeout` set; the root ends ERROR."""
    with capture_telemetry() as tel:
        slow = node("slow", wait_forever, timeout_s=0.01)
        flow = create(slow.to(), emit_errors_to_rookery=True)
        error = await run_once(flow, make_message("m"))

        assert isinstance(error, FlowError)
        assert error.code == "NODE_TIMEOUT"
        span = only(tel.spans("node slow"))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_TIMEOUT
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(span)[names.ATTR_NODE_TIMEOUT] == pytest.approx(0.01)
        assert attrs(span)[names.ATTR_ERROR_CODE] == "NODE_TIMEOUT"
        count = "penguiflow_node_duration_seconds_count"
        assert value(tel, count, penguiflow_node_name="slow", error_type="timeout") == 1
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_TIMEOUT
        assert attrs(root)[names.ATTR_ERROR_CODE] == "NODE_TIMEOUT"
        assert tel.open_spans() == []


async def test_user_raised_timeout_error_is_a_timeout_without_a_bound() -> None:
    """A `TimeoutError` raised by node code gives `error.type=timeout` and no `node.timeout`."""

    async def gives_up(msg: Any, ctx: Context) -> Any:
        raise TimeoutError("upstream service timed out")

    with capture_telemetry() as tel:
        caller = node("caller", gives_up, timeout_s=5.0)
        flow = create(caller.to(), emit_errors_to_rookery=True)
        error = await run_once(flow, make_message("m"))

        assert isinstance(error, FlowError)
        assert error.code == "NODE_TIMEOUT"
        span = only(tel.spans("node caller"))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_TIMEOUT
        assert names.ATTR_NODE_TIMEOUT not in attrs(span)
        assert [event.name for event in span.events] == ["exception"]
        assert tel.open_spans() == []


async def test_deadline_bound_fails_with_deadline_exceeded() -> None:
    """The message deadline expiring mid-run gives `deadline_exceeded` and code `DEADLINE_EXCEEDED`."""
    with capture_telemetry() as tel:
        slow = node("slow", wait_forever, timeout_s=10.0)
        clock = ManualClock()  # "now" stands still: only the deadline bound (0.02 s of loop time) can fire
        flow = create(slow.to(), emit_errors_to_rookery=True, clock=clock)
        flow.run()
        deadline = clock.time() + 0.02
        await flow.emit(make_message("m", deadline_s=deadline))
        error = await flow.fetch()
        await flow.stop()

        assert isinstance(error, FlowError)
        assert error.code == "DEADLINE_EXCEEDED"
        span = only(tel.spans("node slow"))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(span)[names.ATTR_ERROR_CODE] == "DEADLINE_EXCEEDED"
        assert names.ATTR_NODE_TIMEOUT not in attrs(span)  # the policy bound did not fire
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(root)[names.ATTR_ERROR_CODE] == "DEADLINE_EXCEEDED"
        assert attrs(root)[names.ATTR_MESSAGE_DEADLINE] == deadline
        count = "penguiflow_node_duration_seconds_count"
        assert value(tel, count, penguiflow_node_name="slow", error_type="deadline_exceeded") == 1
        assert tel.open_spans() == []


async def test_cancel_mid_flight_ends_attempt_and_root_cancelled(recorder: EventRecorder) -> None:
    """cancel() with one attempt in flight and two queued: every span ends cancelled, drops add up."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to(), middlewares=[recorder])
        flow.run()
        first = make_message(0)
        await flow.emit(first)
        for i in (1, 2):
            await flow.emit(make_message(i, trace_id=first.trace_id))
        await gate.arrived.wait()
        assert flow.statistics().edge_size["ingress->hold"] == 2
        assert await flow.cancel(first.trace_id)
        assert await flow.cancel(first.trace_id)  # repeated while the held item unwinds
        await recorder.seen("trace_cancel_finish").wait()
        assert not await flow.cancel(first.trace_id)  # ended: nothing to cancel
        await flow.stop()

        span = only(tel.spans("node hold"))
        assert span.status.status_code is StatusCode.UNSET
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(span)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_TRACE_CANCEL
        root = only(tel.spans("flow "))
        assert root.status.status_code is StatusCode.UNSET
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(root)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_TRACE_CANCEL
        cancel_events = [event for event in root.events if event.name == names.EVENT_CANCEL]
        assert len(cancel_events) == 1
        purged = dict(cancel_events[0].attributes or {})[names.ATTR_CANCEL_PURGED]
        assert purged == 2
        dropped = value(tel, "penguiflow_message_dropped_total", penguiflow_drop_reason="cancelled")
        assert dropped == purged + 1  # the purge plus the held item
        assert attrs(root)[names.ATTR_TRACE_MESSAGES_DROPPED] == dropped
        assert value(tel, "penguiflow_trace_cancellations_total") == 1
        count = "penguiflow_node_duration_seconds_count"
        assert value(tel, count, penguiflow_node_name="hold", penguiflow_outcome="cancelled") == 1
        assert tel.open_spans() == []


async def test_deadline_skip_records_a_zero_work_error_span() -> None:
    """A message dequeued past its deadline: one ERROR `node` span, no work, and one deadline drop."""
    gate = Gate()
    gate.open.set()
    with capture_telemetry() as tel:
        late = gate.node("late")
        flow = create(late.to())
        flow.run()
        deadline = time.time() - 1.0
        await flow.emit(make_message("m", deadline_s=deadline))
        result = await flow.fetch()
        await flow.stop()

        assert gate.calls == 0
        assert result.payload == FinalAnswer(text="Deadline exceeded")
        root = only(tel.spans("flow "))
        span = only(tel.spans("node late"))
        assert parent_of(span) == span_id(root)
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(span)[names.ATTR_MESSAGE_DEADLINE] == deadline
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.end_time - span.start_time < 5_000_000  # started and ended at once
        dropped = "penguiflow_message_dropped_total"
        assert value(tel, dropped, penguiflow_drop_reason="deadline", penguiflow_node_name="late") == 1
        assert root.status.status_code is StatusCode.ERROR
        assert attrs(root)[names.ATTR_ERROR_TYPE] == names.ERROR_TYPE_DEADLINE_EXCEEDED
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_ERROR
        assert tel.open_spans() == []


async def test_stop_with_work_in_flight_ends_spans_with_reason_stop() -> None:
    """stop() mid-invocation: the attempt span and every active root end cancelled, reason `stop`."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to())
        flow.run()
        await flow.emit(make_message("held"))
        await flow.emit(make_message("queued"))
        await gate.arrived.wait()
        discarded = await flow.stop()

        assert discarded == 2
        span = only(tel.spans("node hold"))
        assert span.status.status_code is StatusCode.UNSET
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(span)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_STOP
        roots = tel.spans("flow ")
        assert len(roots) == 2
        for root in roots:
            assert root.status.status_code is StatusCode.UNSET
            assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
            assert attrs(root)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_STOP
        assert value(tel, "penguiflow_message_dropped_total", penguiflow_drop_reason="stop") == discarded
        count = "penguiflow_node_duration_seconds_count"
        assert value(tel, count, penguiflow_node_name="hold", penguiflow_outcome="cancelled") == 1
        assert value(tel, "penguiflow_trace_duration_seconds_count", penguiflow_outcome="cancelled") == 2
        assert tel.open_spans() == []


async def test_drain_that_times_out_ends_spans_with_reason_stop() -> None:
    """drain() expiring with an attempt in flight stops the flow: attempt and root end cancelled (`stop`)."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to())
        flow.run()
        await flow.emit(make_message("held"))
        await gate.arrived.wait()
        with pytest.raises(TimeoutError, match="1 items discarded"):
            await flow.drain(timeout_s=0.01)

        assert not flow.statistics().running
        span = only(tel.spans("node hold"))
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(span)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_STOP
        root = only(tel.spans("flow "))
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(root)[names.ATTR_CANCEL_REASON] == names.CANCEL_REASON_STOP
        assert root.status.status_code is StatusCode.UNSET
        assert tel.open_spans() == []


async def test_drain_that_finishes_ends_spans_ok() -> None:
    """drain() while an attempt is in flight lets it finish: its span and root end `ok`."""
    gate = Gate()
    with capture_telemetry() as tel:
        hold = gate.node("hold")
        flow = create(hold.to())
        flow.run()
        await flow.emit(make_message("held"))
        await gate.arrived.wait()
        draining = asyncio.create_task(flow.drain())
        gate.open.set()
        result = await flow.fetch()
        await draining

        assert result.payload == "held"
        assert attrs(only(tel.spans("node hold")))[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert attrs(only(tel.spans("flow ")))[names.ATTR_OUTCOME] == names.OUTCOME_OK
        assert tel.open_spans() == []


def _stream_flow_with_talker() -> tuple[Any, asyncio.Event]:
    """A flow whose node emits three chunks of its message's stream, then waits forever."""
    never = asyncio.Event()

    async def talk(msg: Message[Any], ctx: Context) -> None:
        for text in ("one", "two", "three"):
            await ctx.emit_chunk(parent=msg, text=text)
        await never.wait()

    talker = Node(talk, name="talker")
    return talker, never


async def test_stream_left_by_break_leaves_no_open_span(
    caplog: pytest.LogCaptureFixture, recorder: EventRecorder
) -> None:
    """Leaving `stream_flow` by `break` after two chunks, then cancelling the trace, leaves nothing open."""
    caplog.set_level(logging.DEBUG)
    with capture_telemetry() as tel:
        talker, _ = _stream_flow_with_talker()
        flow = create(talker.to(), middlewares=[recorder])
        flow.run()
        msg = make_message("prompt")
        texts = []
        async for chunk in stream_flow(flow, msg):
            texts.append(chunk.text)
            if len(texts) == 2:
                break
        assert texts == ["one", "two"]
        assert await flow.cancel(msg.trace_id)
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        span = only(tel.spans("node talker"))
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert attrs(span)[names.ATTR_STREAM_CHUNKS] == 3
        assert attrs(only(tel.spans("flow ")))[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert value(tel, "penguiflow_stream_chunks_total", penguiflow_node_name="talker") == 3
        assert tel.open_spans() == []
    assert not [record for record in caplog.records if "Failed to detach context" in record.getMessage()]


async def test_stream_closed_from_another_task_leaves_no_open_span(
    caplog: pytest.LogCaptureFixture, recorder: EventRecorder
) -> None:
    """`aclose()` of the stream from another task, then a trace cancel: no open span, no detach error."""
    caplog.set_level(logging.DEBUG)
    with capture_telemetry() as tel:
        talker, _ = _stream_flow_with_talker()
        flow = create(talker.to(), middlewares=[recorder])
        flow.run()
        msg = make_message("prompt")
        stream = cast(AsyncGenerator[Any, None], stream_flow(flow, msg))
        texts = [(await anext(stream)).text, (await anext(stream)).text]
        assert texts == ["one", "two"]
        await asyncio.create_task(stream.aclose())
        assert await flow.cancel(msg.trace_id)
        await recorder.seen("trace_cancel_finish").wait()
        await flow.stop()

        assert attrs(only(tel.spans("node talker")))[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        root = only(tel.spans("flow "))
        assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert {trace_of(span) for span in tel.spans()} == {int(msg.trace_id, 16)}
        assert tel.open_spans() == []
    assert not [record for record in caplog.records if "Failed to detach context" in record.getMessage()]


async def test_payload_only_puts_each_get_a_root_covering_only_the_put() -> None:
    """Each ingress put of a payload without trace id opens its own trace, whose root ends with the put."""

    async def shout(item: str, ctx: Context) -> str:
        return item + "!"

    with capture_telemetry() as tel:
        a, b = Node(shout, name="a"), node("b")
        flow = create(a.to(b), b.to())
        flow.run()
        await flow.emit("x")
        await flow.emit("y")
        results = {await flow.fetch(), await flow.fetch()}
        await flow.stop()

        assert results == {"x!", "y!"}
        roots = tel.spans("flow ")
        assert len(roots) == 2
        assert len({trace_of(root) for root in roots}) == 2
        for root in roots:
            assert root.parent is None
            assert attrs(root)[names.ATTR_OUTCOME] == names.OUTCOME_OK
            assert names.ATTR_TRACE_ID not in attrs(root)
            in_trace = [span for span in tel.spans("node ") if trace_of(span) == trace_of(root)]
            span_a = only([span for span in in_trace if span.name == "node a"])
            span_b = only([span for span in in_trace if span.name == "node b"])
            assert parent_of(span_a) == span_id(root)
            assert parent_of(span_b) == span_id(span_a)
            assert root.end_time is not None
            assert span_a.start_time is not None
            assert root.end_time <= span_a.start_time  # the root covers only the put
        assert tel.series("penguiflow_trace_duration_seconds_count") == []  # not counted as traces
        assert tel.open_spans() == []


async def test_payload_only_outputs_of_a_traced_message_stay_in_its_trace() -> None:
    """A node turning a traced Message into a bare payload keeps the successor's span in the same trace."""

    async def unwrap(msg: Message[str], ctx: Context) -> str:
        return msg.payload

    with capture_telemetry() as tel:
        a, b = Node(unwrap, name="a"), node("b")
        flow = create(a.to(b), b.to())
        msg = make_message("bare")
        result = await run_once(flow, msg)

        assert result == "bare"
        root = only(tel.spans("flow "))
        span_a, span_b = only(tel.spans("node a")), only(tel.spans("node b"))
        assert {trace_of(span) for span in tel.spans()} == {int(msg.trace_id, 16)}
        assert parent_of(span_b) == span_id(span_a)
        assert parent_of(span_a) == span_id(root)
        assert tel.open_spans() == []


# Metrics -----------------------------------------------------------------------------------------


async def test_node_duration_excludes_time_blocked_on_a_full_successor() -> None:
    """Blocked routing shows as `node.blocked_time` on the span, never in `node.duration`."""
    gate = Gate()
    with capture_telemetry() as tel:
        fast, sink = node("fast"), gate.node("sink")
        flow = create(fast.to(sink), sink.to(), queue_maxsize=1)
        flow.run()
        await flow.emit(make_message(0))
        await gate.arrived.wait()  # sink holds the first item
        await flow.emit(make_message(1))
        # the second fills the edge
        await promptly(lambda: flow.statistics().edge_size["fast->sink"] == 1, rounds=500)
        assert flow.statistics().node_inflight["fast"] == 0
        await flow.emit(make_message(2))
        # fast waits to put the third
        await promptly(lambda: flow.statistics().node_inflight["fast"] == 1, rounds=500)
        await asyncio.sleep(0.05)  # measurable time blocked, not synchronisation
        gate.open.set()
        results = [await flow.fetch() for _ in range(3)]
        await flow.stop()

        assert sorted(result.payload for result in results) == [0, 1, 2]
        spans = tel.spans("node fast")
        assert len(spans) == 3
        blocked_spans = [span for span in spans if names.ATTR_NODE_BLOCKED_TIME in attrs(span)]
        blocked_span = only(blocked_spans)  # only a put that waited sets it
        assert attrs(blocked_span)[names.ATTR_OUTCOME] == names.OUTCOME_OK
        worst = attrs(blocked_span)[names.ATTR_NODE_BLOCKED_TIME]
        assert worst >= 0.04
        assert blocked_span.end_time is not None
        assert blocked_span.start_time is not None
        assert (blocked_span.end_time - blocked_span.start_time) / 1e9 >= worst  # the span covers routing
        count = "penguiflow_node_duration_seconds_count"
        total = "penguiflow_node_duration_seconds_sum"
        assert value(tel, count, penguiflow_node_name="fast", penguiflow_outcome="ok") == 3  # one per attempt
        assert value(tel, total, penguiflow_node_name="fast") < worst / 2  # invocation only
        blocked_count = "penguiflow_queue_blocked_duration_seconds_count"
        assert value(tel, blocked_count, penguiflow_queue_name="fast->sink") == 1
        assert tel.open_spans() == []


async def test_gauges_of_a_blocked_flow_match_statistics_and_vanish_on_stop() -> None:
    """Queue size, capacity and in-flight gauges read what `statistics()` reports; stop removes them."""
    gate = Gate()
    with capture_telemetry() as tel:
        feed, sink = node("feed"), gate.node("sink")
        flow = create(feed.to(sink), sink.to(), queue_maxsize=3, name="gauges")
        flow.run()
        for i in range(5):
            await flow.emit(make_message(i))
        # sink holds one item, its input queue is full (3) and feed holds one waiting for room.
        await promptly(
            lambda: (
                flow.statistics().edge_size["feed->sink"] == 3
                and flow.statistics().node_inflight["feed"] == 1
            ),
            rounds=500,
        )
        stats = flow.statistics()
        queue_size = gauges(tel, "penguiflow_queue_size", "gauges", "penguiflow_queue_name")
        queue_capacity = gauges(tel, "penguiflow_queue_capacity", "gauges", "penguiflow_queue_name")
        node_active = gauges(tel, "penguiflow_node_active", "gauges", "penguiflow_node_name")
        trace_active = gauges(tel, "penguiflow_trace_active", "gauges", "penguiflow_flow_name")

        assert queue_size == {edge: float(size) for edge, size in stats.edge_size.items()}
        assert queue_size["feed->sink"] == 3
        assert queue_capacity == {
            edge: float(capacity) for edge, capacity in stats.edge_capacity.items() if capacity > 0
        }
        assert queue_capacity == {"ingress->feed": 3.0, "feed->sink": 3.0}  # no capacity for egress
        assert node_active == {name: float(count) for name, count in stats.node_inflight.items()}
        assert node_active == {"feed": 1.0, "sink": 1.0}
        assert trace_active == {"gauges": float(stats.active_traces)} == {"gauges": 5.0}

        await flow.stop()
        for family in (
            "penguiflow_queue_size",
            "penguiflow_queue_capacity",
            "penguiflow_node_active",
            "penguiflow_node_active_limit",
            "penguiflow_trace_active",
        ):
            assert gauges(tel, family, "gauges", "penguiflow_flow_name") == {}, family
        assert tel.open_spans() == []
