"""Trace cancellation, ``stop()`` and ``drain()`` (runtime.md section 11 and F9).

``cancel()`` purges a trace's queued, parked and buffered items, interrupts the workers holding
its items (backoff sleeps and blocked puts included, F6) and wakes its trace-scoped fetches.
``stop()`` discards everything and finalizes nothing before its step 5; ``drain()`` waits for the
flow to be idle, then stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._errors import TenantMismatch
from ._graph import OPEN_SEA
from ._patterns import clear_join_buckets, join_timer_tasks, purge_join_buckets
from ._worker_state import CANCELLING, DONE, IDLE

if TYPE_CHECKING:
    from ._edge import Entry
    from ._runner import PenguiFlow
    from ._traces import TraceRecord

__all__ = ["cancel_trace", "drain_flow", "stop_flow"]

_NOT_RUNNING = "PenguiFlow is not running"


async def cancel_trace(flow: PenguiFlow, trace_id: str, tenant: str | None) -> bool:
    """Cancel an active trace; ``False`` when it is not active (no check, no mark)."""
    if not flow._running:
        raise RuntimeError(_NOT_RUNNING)
    record = flow._records.get(trace_id)
    if record is None or record.pending == 0:
        return False
    if tenant is not None and record.tenant is not None and record.tenant != tenant:
        raise TenantMismatch(trace_id)
    first = not record.cancelled
    if first:
        record.cancelled = True
        flow._cancel_ring.add(trace_id, record.tenant)
        event = flow._trace_events.get(trace_id)
        if event is not None:
            event.set()
        await flow._event(
            "trace_cancel_start", OPEN_SEA, trace_id, logging.INFO, extra={"pending": record.pending}
        )
    purged = _purge(flow, record)
    ended = False
    if purged:
        record.pending -= purged
        flow._work -= purged
        if flow._work == 0 and flow._idle_waiters:
            flow._wake_idle()
    if first and flow._hooks_on:
        flow._safe_hook(flow._hooks.cancel_accepted, record.handle, purged)
    if purged and record.pending == 0:
        ended = flow._end_trace(record, "cancelled")
    _interrupt_workers(flow, record)
    _wake_fetches(record)
    flow._release_lock(record)
    if ended:
        await flow._cancel_finish_event(record)
    return True


def _purge(flow: PenguiFlow, record: TraceRecord) -> int:
    purged = 0
    for floe in flow._floes:
        if floe._inbox is None:
            continue
        removed = floe.remove_where(record)
        if removed:
            purged += len(removed)
            _dropped(flow, str(floe.target.name), removed[0][2], "cancelled", len(removed))
    parked = purge_join_buckets(flow, record)
    if parked:
        purged += len(parked)
        flow._parked -= len(parked)
        for node_name, stamp, count in parked_groups(parked):
            _dropped(flow, node_name, stamp, "cancelled", count)
    results = flow._results.purge_trace(record)
    if results:
        purged += len(results)
        for entry in results:
            if entry.floe is not None:
                entry.floe.unfetched -= 1
        _dropped(flow, "egress", results[0].stamp, "cancelled", len(results))
    return purged


def parked_groups(parked: list[tuple[str, object]]) -> list[tuple[str, object, int]]:
    """Group parked join inputs by node: ``(node name, one stamp, count)``."""
    groups: dict[str, tuple[object, int]] = {}
    for node_name, stamp in parked:
        first, count = groups.get(node_name, (stamp, 0))
        groups[node_name] = (first, count + 1)
    return [(name, stamp, count) for name, (stamp, count) in groups.items()]


def _dropped(flow: PenguiFlow, node_name: str, stamp: object, reason: str, count: int) -> None:
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.dropped, flow, node_name, stamp, reason, count)


def _interrupt_workers(flow: PenguiFlow, record: TraceRecord) -> None:
    for ws in flow._workers:
        if ws.record is not record or ws.phase in (IDLE, CANCELLING, DONE) or ws.cancel_requested:
            continue
        task = ws.task
        if task is None or task.done():
            continue
        ws.cancel_requested = True
        task.cancel()


def _wake_fetches(record: TraceRecord) -> None:
    waiters = record.fetch_waiters
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)


# stop() ------------------------------------------------------------------------------------------


async def stop_flow(flow: PenguiFlow) -> int:
    """Stop the flow (F9); return the number of discarded items."""
    if not flow._running:
        return 0
    flow._stopping = True
    active = [record for record in flow._records.values() if record.pending > 0]
    await _await_cancelled(flow._tasks)
    discarded = _discard_held(flow)
    for node in flow._graph.nodes:
        await flow._event("node_cancelled", node, None, logging.DEBUG)
    await _await_cancelled([*flow._external_tasks, *join_timer_tasks(flow)])
    if flow._bus_tasks:
        await asyncio.gather(*list(flow._bus_tasks), return_exceptions=True)
    discarded += _discard_queued(flow)
    for record in active:
        flow._cancel_ring.add(record.trace_id, record.tenant)
        record.cancelled = True
        if flow._hooks_on:
            flow._safe_hook(flow._hooks.trace_ended, record.handle, "stopped")
        record.handle = None
        _wake_fetches(record)
    for record in list(flow._records.values()):
        _wake_fetches(record)
        if record.lock is not None and record.lock.locked():
            record.lock.release()
        record.pending = record.inflight = 0
        record.wm_hops = None
        record.claimed = False
        if record.chunk_waiters:
            flow._wake_chunk_waiters(record)
    flow._records.clear()
    flow._trace_events.clear()
    flow._active_traces = 0
    flow._work = 0
    flow._epoch += 1
    flow._parked = 0
    flow._wake_idle()
    flow._trace_scoped = False
    flow._tasks = []
    flow._workers = []
    for rt in flow._node_rt.values():
        rt.inflight = 0
    flow._running = False
    flow._draining = False
    flow._stopping = False
    logging.getLogger("penguiflow_otel.core").info("flow_stopped", extra={"discarded": discarded})
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.flow_stopped, flow, discarded)
    flow._hooks_resolved = False
    return discarded


async def _await_cancelled(tasks: Iterable[asyncio.Task[object]]) -> None:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def _discard_held(flow: PenguiFlow) -> int:
    count = 0
    for ws in flow._workers:
        if ws.phase == IDLE:
            continue
        count += 1
        _dropped(flow, str(ws.node_rt.node.name), ws.stamp, "stop", 1)
        ws.item = ws.record = ws.stamp = ws.handle = None
        ws.phase = IDLE
    return count


def _discard_queued(flow: PenguiFlow) -> int:
    count = 0
    for floe in flow._floes:
        if floe._inbox is None:
            continue
        removed: list[Entry] = floe.clear()
        count += len(removed)
        for stamp, n in _by_trace(removed):
            _dropped(flow, str(floe.target.name), stamp, "stop", n)
    parked = clear_join_buckets(flow)
    count += len(parked)
    for node_name, stamp, n in parked_groups(parked):
        _dropped(flow, node_name, stamp, "stop", n)
    results = flow._results.clear()
    count += len(results)
    for floe in flow._graph.egress:
        floe.unfetched = 0
    if results:
        _dropped(flow, "egress", results[0].stamp, "stop", len(results))
    return count


def _by_trace(entries: list[Entry]) -> list[tuple[object, int]]:
    groups: dict[int, tuple[object, int]] = {}
    for _item, record, stamp in entries:
        key = id(record)
        first, count = groups.get(key, (stamp, 0))
        groups[key] = (first, count + 1)
    return list(groups.values())


# drain() -----------------------------------------------------------------------------------------


async def drain_flow(flow: PenguiFlow, timeout_s: float | None) -> None:
    """Wait until the flow is idle, then stop it; concurrent calls share one outcome."""
    if not flow._running:
        return
    task = flow._drain_task
    if task is None or task.done():
        flow._draining = True
        task = flow._drain_task = asyncio.get_running_loop().create_task(_drain(flow, timeout_s))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            task.cancel()
        await asyncio.shield(flow.stop())
        raise


async def _drain(flow: PenguiFlow, timeout_s: float | None) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while flow._work > 0:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                flow._idle_waiters.append(fut)
                await fut
    except TimeoutError:
        discarded = await flow.stop()
        raise TimeoutError(f"drain timed out after {timeout_s}s; {discarded} items discarded") from None
    await flow.stop()
