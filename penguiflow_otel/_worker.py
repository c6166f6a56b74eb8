"""The worker loop and the per-message algorithm (runtime.md section 7).

User code runs inline in the worker task; no task is created per message. A trace cancellation
cancels the worker task while it holds an item of that trace and sets ``cancel_requested``; the
worker tells it from ``stop()`` by that flag, ``uncancel()``s itself and goes on with the next
item. ``phase`` records what the worker is doing, so the one ``except CancelledError`` branch
knows which telemetry handle is open.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from ._controller import route_wm
from ._failures import after_failure, deadline_passed, routing_failed
from ._message import WM, FinalAnswer, Message
from ._worker_state import (
    ATTEMPT,
    BACKOFF,
    CANCELLING,
    CURRENT_WORKER,
    DONE,
    HELD,
    IDLE,
    ROUTE,
    NodeRuntime,
    WorkerState,
    attempt_ended,
    egress_floe,
)

if TYPE_CHECKING:
    from ._runner import PenguiFlow
    from ._traces import TraceRecord

__all__ = ["run_worker"]

_perf = time.perf_counter
_INFO, _WARNING, _DEBUG = logging.INFO, logging.WARNING, logging.DEBUG


async def run_worker(flow: PenguiFlow, rt: NodeRuntime, ws: WorkerState) -> None:
    """Take items from the node's inbox forever; ``stop()`` ends it by cancellation."""
    CURRENT_WORKER.set(ws)
    inbox = rt.inbox
    while True:
        got = inbox.pop()
        if got is None:
            got = await inbox.get()
        floe, (item, record, stamp) = got
        ws.item, ws.record, ws.stamp, ws.handle, ws.phase = item, record, stamp, None, HELD
        rt.inflight += 1
        if record is not None:
            record.inflight += 1
        try:
            if flow._hooks_on:
                try:
                    flow._hooks.dequeued(floe, stamp)
                except Exception:
                    flow._hook_failed()
            if (
                isinstance(item, Message)
                and item.deadline_s is not None
                and flow._clock.time() > item.deadline_s
            ):
                await _deadline_skip(flow, rt, ws, item, record)
            elif record is not None and record.cancelled:
                await _cancel_drop(flow, rt, ws, record, stamp)
            else:
                await _attempts(flow, rt, ws, item, record, stamp)
        except asyncio.CancelledError:
            if not _absorb_trace_cancel(flow, ws):
                _interrupted_by_stop(flow, ws)
                raise
            await _trace_cancelled(flow, rt, ws)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit, ...: end the open span, then die
            _interrupted_by_base_exception(flow, ws, exc)
            raise
        rt.inflight -= 1
        if record is not None:
            record.inflight -= 1
        ws.item = ws.record = ws.stamp = ws.handle = None
        ws.phase = IDLE
        if flow._finalize(record) and record is not None:
            await flow._cancel_finish_event(record)
        if ws.woke_fetch:
            ws.woke_fetch = False
            await asyncio.sleep(0)  # let the fetch we woke resume before our next item


def _absorb_trace_cancel(flow: PenguiFlow, ws: WorkerState) -> bool:
    if not ws.cancel_requested or flow._stopping:
        return False
    ws.cancel_requested = False
    task = ws.task
    if task is not None:
        task.uncancel()
    return True


def _interrupted_by_stop(flow: PenguiFlow, ws: WorkerState) -> None:
    if not flow._hooks_on:
        return
    if ws.phase == ATTEMPT:
        flow._safe_hook(attempt_ended, flow, ws.handle, "stopped", None, None, None)
    elif ws.phase == ROUTE:
        flow._safe_hook(flow._hooks.routed, ws.handle, "stopped", 0.0)


def _interrupted_by_base_exception(flow: PenguiFlow, ws: WorkerState, exc: BaseException) -> None:
    """A non-``Exception`` ``BaseException`` escaped the attempt: its span ends ``cancelled``."""
    if not flow._hooks_on:
        return
    if ws.phase == ATTEMPT:
        flow._safe_hook(attempt_ended, flow, ws.handle, "cancelled", exc, None, None)
    elif ws.phase == ROUTE:
        flow._safe_hook(flow._hooks.routed, ws.handle, "cancelled", 0.0)


async def _trace_cancelled(flow: PenguiFlow, rt: NodeRuntime, ws: WorkerState) -> None:
    """The held item's trace was cancelled: end the open handle, drop the item, report it."""
    phase = ws.phase
    ws.phase = CANCELLING
    if flow._hooks_on:
        if phase == ATTEMPT:
            flow._safe_hook(attempt_ended, flow, ws.handle, "cancelled", None, None, None)
        elif phase == ROUTE:
            flow._safe_hook(flow._hooks.routed, ws.handle, "cancelled", 0.0)
        if phase != DONE:
            flow._safe_hook(flow._hooks.dropped, flow, str(rt.node.name), ws.stamp, "cancelled", 1)
    if phase == DONE:
        return
    trace_id = ws.record.trace_id if ws.record is not None else None
    await flow._event("node_trace_cancelled", rt.node, trace_id, _INFO)


async def _cancel_drop(
    flow: PenguiFlow, rt: NodeRuntime, ws: WorkerState, record: TraceRecord, stamp: object
) -> None:
    """An item of a cancelled trace reached a worker: drop it (``trace_cancel_drop``)."""
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.dropped, flow, str(rt.node.name), stamp, "cancelled", 1)
    ws.phase = DONE
    await flow._event("trace_cancel_drop", rt.node, record.trace_id, _INFO)


async def _deadline_skip(
    flow: PenguiFlow, rt: NodeRuntime, ws: WorkerState, item: Message[Any], record: TraceRecord | None
) -> None:
    node = rt.node
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.dropped, flow, str(node.name), ws.stamp, "deadline", 1)
    ws.phase = ROUTE
    await flow._event("deadline_skip", node, item.trace_id, _INFO, extra={"deadline_s": item.deadline_s})
    payload = item.payload if isinstance(item.payload, FinalAnswer) else FinalAnswer(text="Deadline exceeded")
    result = item.model_copy(update={"payload": payload})
    await flow._deliver(egress_floe(rt), node, result, record, ws.stamp, ws)
    ws.phase = DONE


async def _attempts(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    stamp: object,
) -> None:
    node = rt.node
    policy = node.policy
    hooks_on = flow._hooks_on
    deadline = item.deadline_s if isinstance(item, Message) else None
    trace_id = getattr(item, "trace_id", None)
    attempt = 0
    previous: object = None
    held_since = _perf() if deadline is not None else 0.0
    while True:
        if record is not None and record.cancelled:
            await _trace_cancelled(flow, rt, ws)
            return
        timeout = policy.timeout_s
        deadline_bound = False
        if deadline is not None:
            remaining = deadline - flow._clock.time()
            if remaining <= 0:
                await deadline_passed(flow, rt, ws, item, record, attempt, held_since)
                return
            if timeout is None or remaining <= timeout:
                timeout, deadline_bound = remaining, True
        if flow._events.wants(_DEBUG):
            await flow._event(
                "node_start",
                node,
                trace_id,
                _DEBUG,
                attempt=attempt,
                latency_ms=0.0,
                extra=flow._item_extra(item),
            )
        ws.phase = ATTEMPT
        handle = None
        if hooks_on:
            try:
                handle = flow._hooks.attempt_started(node, stamp, attempt, item, previous)
            except Exception:
                flow._hook_failed()
        ws.handle = handle
        token = flow._safe_hook(flow._hooks.enter_attempt, handle) if hooks_on else None
        started = _perf()
        scope: asyncio.Timeout | None = None
        try:
            try:  # the attempt's span is current in user code only (telemetry.md section 5.1)
                call = (
                    rt.node.func(item, rt.ctx)
                    if rt.direct
                    else rt.node.invoke(item, rt.ctx, registry=flow._registry)
                )
                if timeout is None:
                    result = await call
                else:
                    scope = asyncio.timeout(timeout)
                    async with scope:
                        result = await call
            finally:
                if token is not None:
                    flow._safe_hook(flow._hooks.exit_attempt, token)
        except Exception as exc:
            if ws.cancel_requested and _absorb_trace_cancel(flow, ws):
                await _trace_cancelled(flow, rt, ws)  # user code swallowed the trace cancel, then raised
                return
            elapsed_ms = (_perf() - started) * 1000
            fired = scope is not None and scope.expired()
            if isinstance(exc, TimeoutError):
                outcome = "deadline" if fired and deadline_bound else "timeout"
            else:
                outcome = "error"
            retry = await after_failure(
                flow, rt, ws, item, record, exc, outcome, attempt, elapsed_ms, timeout if fired else None
            )
            if retry is None:
                return
            ws.phase = BACKOFF
            await asyncio.sleep(retry)
            attempt += 1
            previous = handle
            continue
        if ws.cancel_requested and _absorb_trace_cancel(flow, ws):
            await _trace_cancelled(flow, rt, ws)  # a value returned after swallowing the cancel is discarded
            return
        if hooks_on:  # the invocation is over: node.duration must not include routing (telemetry.md 7.1)
            try:
                flow._hooks.attempt_ended(handle, "success", None, retry_delay_s=None, failure_code=None)
            except Exception:
                flow._hook_failed()
        if _plain_route(flow, result):
            ws.phase = ROUTE
            try:
                blocked = (
                    await _route_plain(flow, rt, ws, record, result, handle) if result is not None else 0.0
                )
            except Exception as exc:  # F4: e.g. a tenant mismatch on the second of two puts
                await routing_failed(flow, rt, ws, item, record, exc, attempt, (_perf() - started) * 1000)
                return
            if hooks_on:
                try:
                    flow._hooks.routed(handle, "ok", blocked)
                except Exception:
                    flow._hook_failed()
            ws.phase = DONE
            if flow._events.wants(_INFO):
                latency_ms = (_perf() - started) * 1000
                await flow._event(
                    "node_success", node, trace_id, _INFO, attempt=attempt, latency_ms=latency_ms
                )
            return
        ws.phase = ROUTE
        await _route_and_succeed(flow, rt, ws, item, record, result, handle, attempt, started)
        return


def _plain_route(flow: PenguiFlow, result: object) -> bool:
    """Whether routing ``result`` is plain: no validation or bus to serve, no controller payload."""
    if flow._registry is not None or flow._message_bus is not None:
        return False
    return not (isinstance(result, Message) and isinstance(result.payload, WM | FinalAnswer))


async def _route_plain(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    record: TraceRecord | None,
    result: object,
    handle: object,
) -> float:
    """The hot path of a hop: puts and deliveries without suspending while there is room.

    Awaiting happens only for a full edge or result buffer, one frame below the attempt loop, so
    a blocked worker resumes through as few frames as possible. Returns the seconds blocked.
    """
    node = rt.node
    hooks_on = flow._hooks_on
    blocked = 0.0
    for floe in rt.out_floes:
        if floe._inbox is None:
            if not flow._deliver_now(floe, node, result, record, ws, handle):
                blocked += await flow._deliver(floe, node, result, record, handle, ws)
            continue
        admitted = flow._admit(result, record, handle)
        stamp = flow._enqueue_stamp(floe, result, handle, admitted) if hooks_on else None
        entry = (result, admitted, stamp)
        waited = 0.0 if floe.put_nowait(entry) else await flow._wait_put(floe, entry)
        blocked += waited
        if hooks_on and (waited or admitted is None):
            try:
                flow._hooks.enqueue_finished(stamp, waited)
            except Exception:
                flow._hook_failed()
    return blocked


async def _route_and_succeed(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    result: object,
    handle: object,
    attempt: int,
    started: float,
) -> None:
    invoked = _perf() - started
    try:
        blocked = await _route(flow, rt, ws, item, record, result, handle)
    except Exception as exc:  # F4: a routing failure is terminal, never retried
        await routing_failed(flow, rt, ws, item, record, exc, attempt, invoked * 1000)
        return
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.routed, handle, "ok", blocked)
    ws.phase = DONE
    if flow._events.wants(_INFO):
        trace_id = getattr(item, "trace_id", None)
        latency_ms = (_perf() - started) * 1000
        await flow._event("node_success", rt.node, trace_id, _INFO, attempt=attempt, latency_ms=latency_ms)


async def _route(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    result: object,
    handle: object,
) -> float:
    """Route a node's result once (runtime.md section 12); return seconds blocked on full queues."""
    if result is None:
        return 0.0
    if flow._registry is not None and not isinstance(result, Message):
        _warn_message_to_message(flow, rt)
    if isinstance(result, Message):
        payload = result.payload
        if isinstance(payload, FinalAnswer):
            return await flow._deliver(egress_floe(rt), rt.node, result, record, handle, ws)
        if isinstance(payload, WM):
            return await route_wm(flow, rt, ws, item, record, result, payload, handle)
    blocked = 0.0
    for floe in rt.out_floes:
        if not flow._try_send(floe, result, record, handle):
            blocked += await flow._send(floe, result, record, handle, ws)
    return blocked


def _warn_message_to_message(flow: PenguiFlow, rt: NodeRuntime) -> None:
    registry = flow._registry
    name = str(rt.node.name)
    if registry is None or rt.node.policy.validate == "none" or not registry.has(name):
        return
    _, out_model = registry.models(name)
    if isinstance(out_model, type) and issubclass(out_model, Message):
        warnings.warn(
            f"Node '{name}' is registered as Message -> Message but returned a non-Message result",
            RuntimeWarning,
            stacklevel=2,
        )
