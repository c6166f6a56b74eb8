"""The controller loop (WM payloads), FinalAnswer short-circuits and routing failures (F4, F18)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import pytest
from flowkit import EventRecorder, fetch

from penguiflow_otel import (
    WM,
    Context,
    FinalAnswer,
    FlowError,
    Headers,
    Message,
    Node,
    NodePolicy,
    PenguiFlow,
    TenantMismatch,
    create,
)


def wm_msg(**wm_fields: Any) -> Message[Any]:
    """A message carrying a fresh WM."""
    return Message(payload=WM(query="q", **wm_fields), headers=Headers(tenant="t"))


def controller(fn: Any, *, name: str = "ctl", **policy: Any) -> tuple[Node, PenguiFlow, EventRecorder]:
    """A running flow with one self-looping controller node named ``name``."""
    node = Node(fn, name=name, allow_cycle=True, policy=NodePolicy(**policy))
    recorder = EventRecorder()
    flow = create(node.to(node), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    return node, flow, recorder


# Hop budget ------------------------------------------------------------------------------------


async def test_hop_budget_ends_the_loop_with_a_final_answer() -> None:
    """The runtime counts a hop per pass and stops at budget_hops with 'Hop budget exhausted'."""
    seen_hops: list[int] = []

    async def loop(message: Any, ctx: Context) -> Any:
        seen_hops.append(message.payload.hops)
        return message

    _, flow, recorder = controller(loop)
    message = wm_msg(budget_hops=3)
    await flow.emit(message)
    result = await fetch(flow)
    assert result.payload == FinalAnswer(text="Hop budget exhausted")
    assert result.trace_id == message.trace_id
    assert seen_hops == [0, 1, 2]
    assert recorder.steps() == [("node_start", "ctl", 0), ("node_success", "ctl", 0)] * 3
    assert flow.statistics().buffered_results == 0
    assert flow.statistics().active_traces == 0
    await flow.stop()


async def test_hops_raised_by_the_node_are_kept() -> None:
    """A node that sets hops itself is not incremented again by the runtime."""
    seen_hops: list[int] = []

    async def leaps(message: Any, ctx: Context) -> Any:
        wm = message.payload
        seen_hops.append(wm.hops)
        return message.model_copy(update={"payload": wm.model_copy(update={"hops": wm.hops + 3})})

    _, flow, _ = controller(leaps)
    await flow.emit(wm_msg(budget_hops=8))
    result = await fetch(flow)
    assert result.payload == FinalAnswer(text="Hop budget exhausted")
    assert seen_hops == [0, 3, 6]
    await flow.stop()


# Token budget ----------------------------------------------------------------------------------


async def test_token_budget_ends_the_loop_before_the_hop_budget() -> None:
    """tokens_used reaching budget_tokens ends the loop with 'Token budget exhausted'."""
    calls = 0

    async def spends(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        wm = message.payload
        return message.model_copy(
            update={"payload": wm.model_copy(update={"tokens_used": wm.tokens_used + 10})}
        )

    _, flow, _ = controller(spends)
    await flow.emit(wm_msg(budget_tokens=25, budget_hops=3))
    result = await fetch(flow)
    assert result.payload == FinalAnswer(text="Token budget exhausted")
    assert calls == 3
    await flow.stop()


async def test_token_budget_is_checked_before_the_hop_budget() -> None:
    """When both budgets are exhausted by one result, the token budget wins."""

    async def spends(message: Any, ctx: Context) -> Any:
        wm = message.payload
        return message.model_copy(update={"payload": wm.model_copy(update={"tokens_used": 100})})

    _, flow, _ = controller(spends)
    await flow.emit(wm_msg(budget_tokens=50, budget_hops=1))
    result = await fetch(flow)
    assert result.payload == FinalAnswer(text="Token budget exhausted")
    await flow.stop()


# Stream-updates mode ---------------------------------------------------------------------------


async def test_stream_updates_deliver_a_deep_copy_of_each_hop() -> None:
    """With both budgets None each hop sends a deep copy to the Rookery before looping."""
    finished = asyncio.Event()

    async def grows(message: Any, ctx: Context) -> Any:
        wm = message.payload
        if wm.hops >= 2:
            finished.set()
            return message.model_copy(update={"payload": FinalAnswer(text="done")})
        wm.facts.append(wm.hops)  # mutates the list the earlier copies would share if not deep
        return message

    _, flow, recorder = controller(grows)
    message = wm_msg(budget_hops=None, budget_tokens=None)
    await flow.emit(message)
    async with asyncio.timeout(2):
        await finished.wait()
    results = [await fetch(flow) for _ in range(3)]
    updates = [result.payload for result in results[:2]]
    assert [(wm.hops, wm.facts) for wm in updates] == [(1, [0]), (2, [0, 1])]
    assert results[2].payload == FinalAnswer(text="done")
    assert all(result.trace_id == message.trace_id for result in results)
    assert [kind for kind, _, _ in recorder.steps()] == ["node_start", "node_success"] * 3
    await flow.stop()


async def test_re_emitting_a_fetched_stream_update_is_dropped() -> None:
    """A caller re-emitting the WM update it just fetched is de-duplicated by its hops."""
    second_pass = asyncio.Event()
    gate = asyncio.Event()
    calls = 0

    async def streams(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        if message.payload.hops >= 1:
            second_pass.set()
            await gate.wait()
            return message.model_copy(update={"payload": FinalAnswer(text="done")})
        return message

    _, flow, _ = controller(streams)
    await flow.emit(wm_msg(budget_hops=None))
    update = await fetch(flow)
    assert update.payload.hops == 1
    async with asyncio.timeout(2):
        await second_pass.wait()
    await flow.emit(update)
    assert flow.statistics().edge_size["ctl->ctl"] == 0
    gate.set()
    assert (await fetch(flow)).payload == FinalAnswer(text="done")
    assert calls == 2
    await flow.stop()


# Routing failures (F4) -------------------------------------------------------------------------


async def test_missing_self_edge_is_a_routing_failure_without_re_invocation(recorder: EventRecorder) -> None:
    """A WM result from a node with no self-edge fails routing once, whatever max_retries says."""
    calls = 0

    async def no_loop(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        return message

    node = Node(no_loop, name="ctl", policy=NodePolicy(max_retries=3, backoff_base=0))
    flow = create(node.to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    message = wm_msg()
    await flow.emit(message)
    error = await fetch(flow)
    assert calls == 1
    assert isinstance(error, FlowError)
    assert error.code == "NODE_EXCEPTION"
    assert error.message == "Node 'ctl' raised KeyError: 'Unknown target ctl for ctl'"
    assert error.metadata["phase"] == "route"
    assert error.metadata["attempt"] == 0
    assert isinstance(error.original_exc, KeyError)
    assert error.trace_id == message.trace_id
    assert recorder.steps() == [
        ("node_start", "ctl", 0),
        ("node_error", "ctl", 0),
        ("node_failed", "ctl", 0),
    ]
    await flow.stop()


async def test_deliveries_made_before_a_routing_failure_stand() -> None:
    """In stream mode the update copy reaches the Rookery even though the loop-back then fails."""
    calls = 0

    async def no_loop(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        return message

    node = Node(no_loop, name="ctl", policy=NodePolicy(max_retries=2, backoff_base=0))
    flow = create(node.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(wm_msg(budget_hops=None))
    update, error = await fetch(flow), await fetch(flow)
    assert isinstance(update, Message)
    assert update.payload.hops == 1
    assert isinstance(error, FlowError)
    assert error.metadata["phase"] == "route"
    assert calls == 1
    await flow.stop()


async def test_tenant_mismatch_while_routing_fails_once_and_keeps_earlier_puts(
    recorder: EventRecorder,
) -> None:
    """A result whose tenant differs from its trace's fails routing with no retry and no success."""
    calls = 0
    received: list[object] = []

    async def rebrands(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        await ctx.emit(message)  # a delivery made during the attempt, before routing
        return message.model_copy(update={"headers": Headers(tenant="intruder")})

    async def sink(message: Any, ctx: Context) -> Any:
        received.append(message)
        return None

    source = Node(rebrands, name="src", policy=NodePolicy(max_retries=2, backoff_base=0))
    target = Node(sink, name="sink")
    flow = create(source.to(target), target.to(), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    message = Message(payload="p", headers=Headers(tenant="owner"))
    await flow.emit(message)
    error = await fetch(flow)
    assert isinstance(error, FlowError)
    assert isinstance(error.original_exc, TenantMismatch)
    assert error.metadata["phase"] == "route"
    assert (
        error.message == f"Node 'src' raised TenantMismatch: tenant mismatch for trace '{message.trace_id}'"
    )
    assert calls == 1
    await recorder.wait_for("node_success")
    assert received == [message]
    src_events = [(kind, attempt) for kind, node, attempt in recorder.steps() if node == "src"]
    assert src_events == [("node_start", 0), ("node_error", 0), ("node_failed", 0)]
    await flow.stop()


async def test_routing_failure_without_errors_to_rookery_is_silent(recorder: EventRecorder) -> None:
    """By default a routing failure delivers nothing and the trace ends."""

    async def no_loop(message: Any, ctx: Context) -> Any:
        return message

    flow = create(Node(no_loop, name="ctl").to(), middlewares=[recorder])
    flow.run()
    await flow.emit(wm_msg())
    await recorder.wait_for("node_failed")
    stats = flow.statistics()
    assert (stats.buffered_results, stats.active_traces) == (0, 0)
    await flow.stop()


# FinalAnswer (F18, section 12) -----------------------------------------------------------------


async def test_returned_final_answer_runs_the_node_once_and_skips_successors(recorder: EventRecorder) -> None:
    """A FinalAnswer result goes to the Rookery once, past the successors, with one node_success."""
    calls = 0
    downstream: list[object] = []

    async def answers(message: Any, ctx: Context) -> Any:
        nonlocal calls
        calls += 1
        return message.model_copy(update={"payload": FinalAnswer(text="42")})

    async def after(message: Any, ctx: Context) -> Any:
        downstream.append(message)
        return message

    first, second = Node(answers, name="first"), Node(after, name="second")
    flow = create(first.to(second), second.to(), middlewares=[recorder], queue_maxsize=1)
    flow.run()
    message = wm_msg()
    await flow.emit(message)
    result = await fetch(flow)
    assert result.payload == FinalAnswer(text="42")
    assert result.trace_id == message.trace_id
    assert calls == 1
    assert downstream == []
    assert recorder.steps() == [("node_start", "first", 0), ("node_success", "first", 0)]
    stats = flow.statistics()
    assert (stats.buffered_results, stats.active_traces, stats.pending) == (0, 0, 0)
    await flow.stop()


async def test_final_answer_from_a_controller_loop_is_delivered_once(recorder: EventRecorder) -> None:
    """A controller that answers on its second pass produces exactly one result and two successes."""

    async def answers_second(message: Any, ctx: Context) -> Any:
        if message.payload.hops == 1:
            return message.model_copy(update={"payload": FinalAnswer(text="final")})
        return message

    node = Node(answers_second, name="ctl", allow_cycle=True)
    flow = create(node.to(node), middlewares=[recorder])
    flow.run()
    await flow.emit(wm_msg())
    assert (await fetch(flow)).payload == FinalAnswer(text="final")
    assert [kind for kind, _, _ in recorder.steps()] == ["node_start", "node_success"] * 2
    assert flow.statistics().buffered_results == 0
    await flow.stop()


# Deadline rules for WM (section 12, F11) -------------------------------------------------------


async def test_controller_past_its_deadline_mid_run_returns_deadline_exceeded(
    recorder: EventRecorder,
) -> None:
    """A 0.02 s deadline on a controller sleeping 0.05 s ends with FinalAnswer('Deadline exceeded')."""

    async def slow(message: Any, ctx: Context) -> Any:
        await asyncio.sleep(0.05)
        return message

    node = Node(slow, name="ctl", allow_cycle=True, policy=NodePolicy(max_retries=2))
    flow = create(node.to(node), middlewares=[recorder], emit_errors_to_rookery=True)
    flow.run()
    message = Message(payload=WM(query="q"), headers=Headers(tenant="t"), deadline_s=time.time() + 0.02)
    await flow.emit(message)
    result = await fetch(flow)
    assert isinstance(result, Message)
    assert result.payload == FinalAnswer(text="Deadline exceeded")
    assert result.trace_id == message.trace_id
    assert [kind for kind, _, _ in recorder.steps()] == ["node_start", "node_timeout"]
    assert flow.statistics().buffered_results == 0
    await flow.stop()


async def test_wm_result_past_its_deadline_is_turned_into_a_final_answer() -> None:
    """A WM result whose deadline passed during the attempt is answered 'Deadline exceeded' at routing."""

    async def expires(message: Any, ctx: Context) -> Any:
        return message.model_copy(update={"deadline_s": time.time() - 1})

    _, flow, recorder = controller(expires)
    await flow.emit(wm_msg())
    result = await fetch(flow)
    assert result.payload == FinalAnswer(text="Deadline exceeded")
    assert [kind for kind, _, _ in recorder.steps()] == ["node_start", "node_success"]
    await flow.stop()


@pytest.mark.parametrize("payload", ["text", {"k": "v"}, 3])
async def test_non_controller_payloads_go_to_every_successor(payload: object) -> None:
    """A result that is neither WM nor FinalAnswer fans out to all successors, the same object each."""
    received: dict[str, list[object]] = defaultdict(list)

    async def source(message: Any, ctx: Context) -> Any:
        return message

    def sink(label: str) -> Node:
        async def collect(message: Any, ctx: Context) -> Any:
            received[label].append(message)
            return None

        return Node(collect, name=label)

    src, left, right = Node(source, name="src"), sink("left"), sink("right")
    flow = create(src.to(left, right), left.to(), right.to())
    flow.run()
    message = Message(payload=payload, headers=Headers(tenant="t"))
    await flow.emit(message)
    await flow.drain(timeout_s=2)
    assert received["left"] == [message]
    assert received["left"][0] is message
    assert received["right"][0] is message
