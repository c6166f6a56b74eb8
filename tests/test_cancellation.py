"""Trace cancellation (runtime.md section 11, F1, F6) and tenant isolation (F10)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flowkit import EventRecorder, Gate, assert_empty, make_message, passthrough, promptly, settle

from penguiflow_otel import (
    Context,
    FlowError,
    FlowErrorCode,
    Headers,
    Node,
    NodePolicy,
    PenguiFlow,
    TenantMismatch,
    TraceCancelled,
    create,
    join_k,
)


class Hang:
    """A node body that blocks on "hang" payloads until cancelled, and passes everything else."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.interrupted: list[object] = []
        self.seen: list[object] = []

    async def body(self, message: Any, ctx: Context) -> Any:
        self.seen.append(message.payload)
        if message.payload != "hang":
            return message
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.interrupted.append(message.payload)
            raise
        return message  # pragma: no cover - never released


# basics ------------------------------------------------------------------------------------------


async def test_cancel_returns_false_for_a_trace_that_is_not_active() -> None:
    """cancel() of a never-started or ended trace returns False and leaves no mark."""
    flow = create(Node(passthrough, name="only").to())
    flow.run()
    assert await flow.cancel("never-started") is False
    await flow.emit(make_message("x", trace_id="ended"))
    assert (await flow.fetch(trace_id="ended")).payload == "x"
    assert await flow.cancel("ended") is False
    stats = flow.statistics()
    assert stats.cancelled_ring == 0
    assert_empty(stats)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flow.fetch(trace_id="ended"), 0.01)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_on_a_flow_that_is_not_running_raises() -> None:
    """cancel() before run() and after stop() raises RuntimeError("PenguiFlow is not running")."""
    flow = create(Node(passthrough, name="only").to())
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is not running$"):
        await flow.cancel("any")
    flow.run()
    assert await flow.stop() == 0
    with pytest.raises(RuntimeError, match=r"^PenguiFlow is not running$"):
        await flow.cancel("any")


# fetch on a cancelled trace (F1) -----------------------------------------------------------------


async def test_fetch_waiting_on_a_cancelled_trace_raises_trace_cancelled() -> None:
    """A fetch(trace_id=X) waiting when X is cancelled raises TraceCancelled(X), as does every later one."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to())
    flow.run()
    await flow.emit(make_message("hang"), trace_id="doomed")
    await hang.started.wait()
    waiting = asyncio.create_task(flow.fetch(trace_id="doomed"))
    await settle()
    assert not waiting.done()
    assert await flow.cancel("doomed") is True
    await promptly(waiting.done)
    with pytest.raises(TraceCancelled) as caught:
        await waiting
    assert caught.value.trace_id == "doomed"
    assert str(caught.value) == "trace cancelled: doomed"
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="doomed")
    await promptly(lambda: flow.statistics().active_traces == 0)
    stats = flow.statistics()
    assert stats.cancelled_ring == 1
    assert_empty(stats)
    assert await flow.stop() == 0


async def test_fetch_on_a_cancelled_trace_returns_a_flow_error_when_errors_go_to_the_rookery() -> None:
    """With errors to the Rookery, fetch on a cancelled trace returns a fresh FlowError(TRACE_CANCELLED)."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("hang", trace_id="doomed"))
    await hang.started.wait()
    waiting = asyncio.create_task(flow.fetch(trace_id="doomed"))
    await settle()
    assert await flow.cancel("doomed") is True
    await promptly(waiting.done)
    first = await waiting
    later = await flow.fetch(trace_id="doomed")
    for error in (first, later):
        assert isinstance(error, FlowError)
        assert error.code == FlowErrorCode.TRACE_CANCELLED
        assert error.trace_id == "doomed"
        assert error.node_name is None
        assert error.message == "trace cancelled: doomed"
    assert first is not later
    await promptly(lambda: flow.statistics().active_traces == 0)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_a_new_trace_with_a_cancelled_id_clears_the_mark() -> None:
    """After X is cancelled, a new message with id X starts a new trace whose results fetch returns."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to())
    flow.run()
    await flow.emit(make_message("hang", trace_id="reused"))
    await hang.started.wait()
    assert await flow.cancel("reused") is True
    await promptly(lambda: flow.statistics().active_traces == 0)
    await flow.emit(make_message("fresh", trace_id="reused"))
    assert (await flow.fetch(trace_id="reused")).payload == "fresh"
    stats = flow.statistics()
    assert stats.cancelled_ring == 0
    assert_empty(stats)
    assert await flow.stop() == 0


async def test_stop_wakes_trace_scoped_fetches_and_keeps_the_marks() -> None:
    """stop() makes a waiting fetch(trace_id=X) raise TraceCancelled; after run() the mark still holds."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to())
    flow.run()
    await flow.emit(make_message("hang", trace_id="stopped"))
    await hang.started.wait()
    waiting = asyncio.create_task(flow.fetch(trace_id="stopped"))
    await settle()
    assert await flow.stop() == 1
    with pytest.raises(TraceCancelled):
        await waiting
    assert flow.statistics().cancelled_ring == 1
    flow.run()
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="stopped")
    assert await flow.stop() == 0


# interrupting work (F6) --------------------------------------------------------------------------


async def test_cancel_interrupts_a_node_mid_invocation(recorder: EventRecorder) -> None:
    """cancel() interrupts user code holding the trace, purges its queued items, and the worker moves on."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("hang", trace_id="doomed"))
    await flow.emit(make_message("queued", trace_id="doomed"))
    await flow.emit(make_message("other", trace_id="other"))
    await hang.started.wait()
    assert await flow.cancel("doomed") is True
    assert (await flow.fetch(trace_id="other")).payload == "other"
    assert hang.interrupted == ["hang"]
    assert hang.seen == ["hang", "other"]
    assert recorder.kinds("doomed") == [
        "node_start",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_finish",
    ]
    start = recorder.first("trace_cancel_start", "doomed")
    assert start.node_name == "OpenSea"
    assert start.extra["pending"] == 2
    assert (start.trace_pending, start.trace_inflight, start.trace_cancelled) == (2, 1, True)
    finish = recorder.first("trace_cancel_finish", "doomed")
    assert finish.node_name == "Rookery"
    assert (finish.trace_pending, finish.trace_inflight, finish.trace_cancelled) == (0, 0, True)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_interrupts_a_backoff_sleep(recorder: EventRecorder) -> None:
    """A trace cancelled during a retry backoff ends at once instead of after the 10 s sleep."""
    calls: list[object] = []

    async def flaky(message: Any, ctx: Context) -> Any:
        calls.append(message.payload)
        if message.payload == "fail":
            raise ValueError("try again")
        return message

    node = Node(flaky, name="flaky", policy=NodePolicy(max_retries=3, backoff_base=10))
    flow = create(node.to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("fail", trace_id="sleeping"))
    await recorder.seen("node_retry").wait()
    assert flow.statistics().node_inflight == {"flaky": 1}
    assert await flow.cancel("sleeping") is True
    await promptly(lambda: flow.statistics().active_traces == 0)
    assert recorder.kinds("sleeping") == [
        "node_start",
        "node_error",
        "node_retry",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_finish",
    ]
    await flow.emit(make_message("ok", trace_id="after"))
    assert (await flow.fetch(trace_id="after")).payload == "ok"
    assert calls == ["fail", "ok"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_interrupts_a_put_blocked_on_a_full_edge(recorder: EventRecorder) -> None:
    """A worker blocked putting a cancelled trace's output downstream is freed; the output is discarded."""
    gate = Gate()
    head = Node(passthrough, name="head")
    sink = Node(gate.hold, name="sink")
    flow = create(head.to(sink), sink.to(), queue_maxsize=1, middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("first", trace_id="first"))
    await gate.started.wait()
    await flow.emit(make_message("second", trace_id="second"))
    await flow.emit(make_message("blocked", trace_id="blocked"))
    await settle()
    stats = flow.statistics()
    assert stats.node_inflight == {"head": 1, "sink": 1}
    assert stats.edge_size["head->sink"] == 1
    assert stats.active_traces == 3
    assert await flow.cancel("blocked") is True
    await promptly(lambda: flow.statistics().active_traces == 2)
    stats = flow.statistics()
    assert stats.node_inflight == {"head": 0, "sink": 1}
    assert stats.pending == 2
    assert recorder.kinds("blocked") == [
        "node_start",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_finish",
    ]
    await flow.emit(make_message("third", trace_id="third"))
    gate.release(3)
    for trace_id in ("first", "second", "third"):
        assert (await flow.fetch(trace_id=trace_id)).payload == trace_id
    assert gate.seen == ["first", "second", "third"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_interrupts_a_delivery_waiting_on_a_full_result_buffer() -> None:
    """A worker waiting for room in a cancelled trace's result buffer is freed and the buffer purged."""

    async def three(message: Any, ctx: Context) -> None:
        for index in range(3):
            await ctx.emit(message.model_copy(update={"payload": index}))

    flow = create(Node(three, name="three").to(), queue_maxsize=1)
    flow.run()
    await flow.emit(make_message("go"), trace_id="full")
    await settle()
    stats = flow.statistics()
    assert stats.buffered_results == 1
    assert stats.node_inflight == {"three": 1}
    assert await flow.cancel("full") is True
    await promptly(lambda: flow.statistics().active_traces == 0)
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="full")
    await flow.emit(make_message("next"), trace_id="next")
    assert [(await flow.fetch(trace_id="next")).payload for _ in range(3)] == [0, 1, 2]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_leaves_other_traces_untouched() -> None:
    """Cancelling one of three traces held at once discards only its work; the others finish normally."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only", policy=NodePolicy(concurrency=3)).to())
    flow.run()
    for trace_id in ("a", "b", "c"):
        await flow.emit(make_message(trace_id, trace_id=trace_id))
    await settle()
    assert flow.statistics().node_inflight == {"only": 3}
    assert await flow.cancel("b") is True
    await promptly(lambda: flow.statistics().active_traces == 2)
    gate.release(3)
    assert (await flow.fetch(trace_id="a")).payload == "a"
    assert (await flow.fetch(trace_id="c")).payload == "c"
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="b")
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


def stubborn(gate: Gate, payload: str) -> Node:
    """A node named ``stubborn`` that swallows the trace's cancel on ``payload``, then waits at ``gate``.

    It sets ``gate.started`` once the cancel has been swallowed; other payloads pass straight through.
    """

    async def swallow_cancel(message: Any, ctx: Context) -> Any:
        if message.payload == payload:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                gate.started.set()
            await gate.hold(message, ctx)
        return message

    return Node(swallow_cancel, name="stubborn")


async def test_a_value_returned_after_swallowing_the_cancel_is_discarded(recorder: EventRecorder) -> None:
    """User code that swallows the trace's CancelledError and returns a value delivers nothing."""
    gate = Gate()
    flow = create(stubborn(gate, "x").to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("x", trace_id="stubborn"))
    await recorder.seen("node_start").wait()
    await settle()
    assert await flow.cancel("stubborn") is True
    await gate.started.wait()
    assert flow.statistics().active_traces == 1
    gate.release()
    await promptly(lambda: flow.statistics().active_traces == 0)
    assert "node_success" not in recorder.kinds("stubborn")
    assert recorder.kinds("stubborn")[-2:] == ["node_trace_cancelled", "trace_cancel_finish"]
    assert flow.statistics().buffered_results == 0
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="stubborn")
    await flow.emit(make_message("y", trace_id="after"))
    assert (await flow.fetch(trace_id="after")).payload == "y"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_repeat_cancel_purges_again_without_a_second_start_event(recorder: EventRecorder) -> None:
    """A second cancel() of a still-active trace purges new items; trace_cancel_start fires once."""
    gate = Gate()
    flow = create(stubborn(gate, "first").to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("first", trace_id="twice"))
    await recorder.seen("node_start").wait()
    await settle()
    assert await flow.cancel("twice") is True
    await gate.started.wait()
    await flow.emit(make_message("late", trace_id="twice"))
    assert flow.statistics().pending == 2
    assert await flow.cancel("twice") is True
    assert flow.statistics().pending == 1
    gate.release()
    await promptly(lambda: flow.statistics().active_traces == 0)
    kinds = recorder.kinds("twice")
    assert kinds.count("trace_cancel_start") == 1
    assert kinds.count("trace_cancel_finish") == 1
    assert kinds[-1] == "trace_cancel_finish"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_of_a_trace_with_only_unfetched_results_ends_it_inside_cancel(
    recorder: EventRecorder,
) -> None:
    """When the purge brings pending to 0, the trace ends before cancel() returns."""
    flow = create(Node(passthrough, name="only").to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("x", trace_id="buffered"))
    await settle()
    assert flow.statistics().buffered_results == 1
    assert await flow.cancel("buffered") is True
    assert flow.statistics().active_traces == 0
    assert recorder.kinds("buffered")[-2:] == ["trace_cancel_start", "trace_cancel_finish"]
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id="buffered")
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_releases_a_waiting_roundtrip() -> None:
    """A second emit(trace_id=X) waiting on X's roundtrip lock proceeds once X is cancelled."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to())
    flow.run()
    await flow.emit(make_message("hang"), trace_id="locked")
    await hang.started.wait()
    second = asyncio.create_task(flow.emit(make_message("second"), trace_id="locked"))
    await settle()
    assert not second.done()
    assert await flow.cancel("locked") is True
    await promptly(second.done)
    await second
    assert (await flow.fetch(trace_id="locked")).payload == "second"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


# the cancel ring and the cancel event ------------------------------------------------------------


async def test_cancel_ring_is_bounded_at_1024() -> None:
    """Cancelling 1100 traces keeps 1024 marks: the oldest are forgotten, the newest still raise."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to(), queue_maxsize=0)
    flow.run()
    trace_ids = [f"trace-{index:04d}" for index in range(1100)]
    flow.emit_nowait(make_message("hang", trace_id=trace_ids[0]))
    for trace_id in trace_ids[1:]:
        flow.emit_nowait(make_message("queued", trace_id=trace_id))
    await hang.started.wait()
    for trace_id in trace_ids:
        assert await flow.cancel(trace_id) is True
    await promptly(lambda: flow.statistics().active_traces == 0)
    stats = flow.statistics()
    assert stats.cancelled_ring == 1024
    assert_empty(stats)
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id=trace_ids[-1])
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id=trace_ids[1100 - 1024])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flow.fetch(trace_id=trace_ids[1100 - 1025]), 0.01)
    assert hang.seen == ["hang"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_ensure_trace_event_is_set_by_cancel_and_released_at_trace_end() -> None:
    """The trace's cancel event is set by cancel() and released when the trace ends, cancelled or not."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to())
    flow.run()
    await flow.emit(make_message("hang", trace_id="watched"))
    await hang.started.wait()
    event = flow.ensure_trace_event("watched")
    assert flow.ensure_trace_event("watched") is event
    assert not event.is_set()
    assert flow.statistics().trace_tables["cancel_events"] == 1
    assert await flow.cancel("watched") is True
    assert event.is_set()
    await promptly(lambda: flow.statistics().active_traces == 0)
    assert flow.statistics().trace_tables["cancel_events"] == 0
    await flow.emit(make_message("fine", trace_id="fine"))
    fine_event = flow.ensure_trace_event("fine")
    assert (await flow.fetch(trace_id="fine")).payload == "fine"
    assert not fine_event.is_set()
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_leaves_external_tasks_to_stop() -> None:
    """A task registered for a trace survives cancel() and is cancelled by stop()."""
    hang = Hang()
    flow = create(Node(hang.body, name="only").to())
    flow.run()
    await flow.emit(make_message("hang", trace_id="external"))
    await hang.started.wait()
    external = asyncio.create_task(asyncio.Event().wait())
    flow.register_external_task("external", external)
    assert await flow.cancel("external") is True
    await settle()
    assert not external.done()
    await flow.stop()
    assert external.cancelled()


# tenants (F10) -----------------------------------------------------------------------------------

TRACE = "shared-trace"


def assert_tenant_mismatch(error: TenantMismatch) -> None:
    """The error names the trace and neither tenant."""
    assert isinstance(error, PermissionError)
    assert error.trace_id == TRACE
    assert str(error) == f"tenant mismatch for trace '{TRACE}'"
    assert "acme" not in str(error)
    assert "globex" not in str(error)


async def held_trace_of_acme() -> tuple[PenguiFlow, Gate]:
    """A running flow whose node holds one message of TRACE for tenant acme."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(make_message("acme's", trace_id=TRACE, tenant="acme"))
    await gate.started.wait()
    return flow, gate


async def test_emitting_another_tenants_message_into_an_active_trace_raises() -> None:
    """Every flow emit of another tenant's message into an active trace raises TenantMismatch."""
    flow, gate = await held_trace_of_acme()
    before = flow.statistics()
    intruder = make_message("globex's", trace_id=TRACE, tenant="globex")
    with pytest.raises(TenantMismatch) as on_emit:
        await flow.emit(intruder)
    assert_tenant_mismatch(on_emit.value)
    with pytest.raises(TenantMismatch) as on_nowait:
        flow.emit_nowait(intruder)
    assert_tenant_mismatch(on_nowait.value)
    with pytest.raises(TenantMismatch) as on_roundtrip:
        await flow.emit(make_message("globex's", tenant="globex"), trace_id=TRACE)
    assert_tenant_mismatch(on_roundtrip.value)
    after = flow.statistics()
    assert after.pending == before.pending == 1
    assert after.edge_size == before.edge_size
    await flow.emit(make_message("acme again", trace_id=TRACE, tenant="acme"))
    assert flow.statistics().pending == 2
    gate.release(2)
    got = [(await flow.fetch(trace_id=TRACE, tenant="acme")).payload for _ in range(2)]
    assert got == ["acme's", "acme again"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_the_tenant_binding_is_released_when_the_trace_ends() -> None:
    """Once a trace has ended, a message of another tenant may start a new trace with the same id."""
    flow, gate = await held_trace_of_acme()
    gate.release()
    assert (await flow.fetch(trace_id=TRACE)).payload == "acme's"
    await flow.emit(make_message("globex's", trace_id=TRACE, tenant="globex"))
    gate.release()
    assert (await flow.fetch(trace_id=TRACE, tenant="globex")).payload == "globex's"
    assert await flow.stop() == 0


async def test_fetch_with_another_tenant_raises_and_leaves_the_result_buffered() -> None:
    """fetch(trace_id=X, tenant=other) raises TenantMismatch; the owner's fetch still gets the result."""
    flow, gate = await held_trace_of_acme()
    with pytest.raises(TenantMismatch) as at_call:
        await flow.fetch(trace_id=TRACE, tenant="globex")
    assert_tenant_mismatch(at_call.value)
    gate.release()
    await settle()
    assert flow.statistics().buffered_results == 1
    with pytest.raises(TenantMismatch):
        await flow.fetch(trace_id=TRACE, tenant="globex")
    assert flow.statistics().buffered_results == 1
    assert (await flow.fetch(trace_id=TRACE, tenant="acme")).payload == "acme's"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_waiting_fetch_of_another_tenant_raises_when_the_result_arrives() -> None:
    """A fetch of another tenant waiting before X is bound raises at hand-out; the result stays."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    waiting = asyncio.create_task(flow.fetch(trace_id=TRACE, tenant="globex"))
    await settle()
    await flow.emit(make_message("acme's", trace_id=TRACE, tenant="acme"))
    gate.release()
    with pytest.raises(TenantMismatch) as caught:
        await waiting
    assert_tenant_mismatch(caught.value)
    assert flow.statistics().buffered_results == 1
    assert (await flow.fetch(trace_id=TRACE, tenant="acme")).payload == "acme's"
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_with_another_tenant_raises_and_the_mark_remembers_the_tenant() -> None:
    """cancel(X, tenant=other) raises and leaves X running; the cancel mark remembers the tenant."""
    flow, _gate = await held_trace_of_acme()
    with pytest.raises(TenantMismatch) as caught:
        await flow.cancel(TRACE, tenant="globex")
    assert_tenant_mismatch(caught.value)
    assert flow.statistics().active_traces == 1
    assert flow.statistics().cancelled_ring == 0
    assert await flow.cancel(TRACE, tenant="acme") is True
    await promptly(lambda: flow.statistics().active_traces == 0)
    with pytest.raises(TenantMismatch):
        await flow.fetch(trace_id=TRACE, tenant="globex")
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id=TRACE, tenant="acme")
    with pytest.raises(TraceCancelled):
        await flow.fetch(trace_id=TRACE)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_a_node_emitting_another_tenants_message_into_its_trace_fails() -> None:
    """ctx.emit of another tenant's message into the held trace is a node error carrying TenantMismatch."""

    async def impostor(message: Any, ctx: Context) -> None:
        await ctx.emit(message.model_copy(update={"headers": Headers(tenant="globex")}))

    flow = create(Node(impostor, name="impostor").to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("x", trace_id=TRACE, tenant="acme"))
    error = await flow.fetch(trace_id=TRACE)
    assert isinstance(error, FlowError)
    assert error.code == FlowErrorCode.NODE_EXCEPTION
    assert isinstance(error.__cause__, TenantMismatch)
    assert_empty(flow.statistics())
    assert await flow.stop() == 0


async def test_cancel_purges_a_partial_join_bucket() -> None:
    """A join_k bucket of a cancelled trace is dropped with it, and its parked inputs stop counting."""
    join = join_k("join", 3)
    flow = create(join.to())
    flow.run()
    await flow.emit(make_message("one", trace_id="partial"))
    await flow.emit(make_message("two", trace_id="partial"))
    await settle()
    stats = flow.statistics()
    assert stats.parked_join_items == 2
    assert stats.trace_tables["join_buckets"] == 1
    assert stats.active_traces == 1
    assert await flow.cancel("partial") is True
    stats = flow.statistics()
    assert stats.parked_join_items == 0
    assert_empty(stats)
    await flow.emit(make_message("fresh", trace_id="partial"))
    await settle()
    assert flow.statistics().parked_join_items == 1, "the new trace starts a new bucket"
    assert await flow.stop() == 1


class Envelope:
    """A traced item that is not a Message, so it carries no tenant."""

    def __init__(self, trace_id: str, payload: str) -> None:
        self.trace_id = trace_id
        self.payload = payload


async def test_traces_without_a_message_have_no_tenant_to_check() -> None:
    """A trace made only of non-Message items accepts any tenant on fetch and cancel."""
    gate = Gate()
    flow = create(Node(gate.hold, name="only").to())
    flow.run()
    await flow.emit(Envelope("untenanted", "first"))
    gate.release()
    result = await flow.fetch(trace_id="untenanted", tenant="anyone")
    assert isinstance(result, Envelope)
    await flow.emit(Envelope("untenanted", "second"))
    await settle()
    assert await flow.cancel("untenanted", tenant="someone else") is True
    await promptly(lambda: flow.statistics().active_traces == 0)
    assert gate.seen == ["first", "second"]
    assert_empty(flow.statistics())
    assert await flow.stop() == 0
