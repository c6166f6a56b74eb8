"""``fetch``: taking results from the Rookery, plain or trace-scoped (runtime.md section 10.3).

A waiting fetch is handed its result by the delivery itself (``ResultStore``); a fetch cancelled
by its caller puts a result it was handed back at the front, so it consumes nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from ._errors import FlowError, FlowErrorCode, TenantMismatch, TraceCancelled
from ._node import Node
from ._results import PlainWaiter, ResultEntry

if TYPE_CHECKING:
    from ._context import Target
    from ._runner import PenguiFlow
    from ._traces import TraceRecord

__all__ = ["fetch_plain", "fetch_trace", "hand_out"]


async def fetch_plain(flow: PenguiFlow, from_: Target) -> Any:
    """Plain ``fetch()``: the oldest untraced or unclaimed result, optionally only from some egress nodes."""
    sources: set[Node] | None = None
    if from_ is not None:
        if flow._trace_scoped:
            raise RuntimeError("fetch(from_=...) is not supported once trace-scoped fetching is enabled")
        floes = flow._rookery._resolve(from_, flow._rookery._incoming)
        sources = {floe.source for floe in floes if isinstance(floe.source, Node)}
    entry = flow._results.take_plain(sources)
    if entry is None:
        fut: asyncio.Future[ResultEntry] = asyncio.get_running_loop().create_future()
        waiter = PlainWaiter(fut, sources)
        flow._results.plain_waiters.append(waiter)
        try:
            entry = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                flow._results.put_back(fut.result())
            elif waiter in flow._results.plain_waiters:
                flow._results.plain_waiters.remove(waiter)
            raise
    return await hand_out(flow, entry)


async def hand_out(flow: PenguiFlow, entry: ResultEntry) -> Any:
    """Return a result to its fetcher: finalize it and report the fetch."""
    floe = entry.floe
    if floe is not None:
        floe.unfetched -= 1
    if flow._hooks_on:
        try:
            flow._hooks.result_fetched(floe, entry.stamp)
        except Exception:
            flow._hook_failed()
    record = entry.record
    if flow._finalize(record) and record is not None:
        await flow._cancel_finish_event(record)
    return entry.item


def _cancelled_outcome(flow: PenguiFlow, trace_id: str) -> FlowError:
    if flow._emit_errors_to_rookery:
        return FlowError(
            trace_id=trace_id,
            node_name=None,
            code=FlowErrorCode.TRACE_CANCELLED,
            message=f"trace cancelled: {trace_id}",
        )
    raise TraceCancelled(trace_id)


async def fetch_trace(flow: PenguiFlow, trace_id: str, tenant: str | None) -> Any:
    """``fetch(trace_id=X)``: claims X and returns its results one by one, in delivery order (F1, F2)."""
    flow._trace_scoped = True
    record = flow._records.get(trace_id)
    active = record is not None and record.pending > 0
    if tenant is not None:
        bound = record.tenant if active and record is not None else flow._cancel_ring.tenant(trace_id)
        if bound is not None and bound != tenant:
            raise TenantMismatch(trace_id)
    if (record is not None and record.cancelled) or (not active and trace_id in flow._cancel_ring):
        if record is not None:
            flow._release_lock(record)
        return _cancelled_outcome(flow, trace_id)
    record = flow._record(trace_id)
    try:
        flow._results.claim(record)
        entry = flow._results.take_traced(record)
        if entry is None:
            entry = await _wait_trace_result(flow, record)
            if entry is None:
                return _cancelled_outcome(flow, trace_id)
        if tenant is not None and record.tenant is not None and record.tenant != tenant:
            flow._results.put_back(entry)
            raise TenantMismatch(trace_id)
        return await hand_out(flow, entry)
    finally:
        flow._release_lock(record)


async def _wait_trace_result(flow: PenguiFlow, record: TraceRecord) -> ResultEntry | None:
    fut: asyncio.Future[ResultEntry | None] = asyncio.get_running_loop().create_future()
    if record.fetch_waiters is None:
        record.fetch_waiters = deque()
    record.fetch_waiters.append(fut)
    try:
        return await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled():
            entry = fut.result()
            if entry is not None:
                flow._results.put_back(entry)
        raise
    finally:
        waiters = record.fetch_waiters
        if waiters is not None:
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                record.fetch_waiters = None
