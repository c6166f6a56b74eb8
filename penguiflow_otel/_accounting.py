"""Trace accounting and item movement: admitting items to traces, puts, deliveries, finalizing.

``pending(X)`` counts X's items queued on an edge (from the start of the put), held by a worker,
parked in a ``join_k`` bucket or unfetched in X's result buffer. A node's outputs are admitted
before its input is finalized, so pending never touches 0 mid-trace. The step 0 -> 1 starts a
trace, the step back to 0 ends it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._bus import BusEnvelope
from ._dispatch import CORE_LOGGER
from ._message import WM, Message
from ._node import Node
from ._results import ResultEntry, ResultStore
from ._traces import CancelRing, TraceRecord
from ._worker_state import CURRENT_WORKER
from .telemetry._protocol import NO_OP_HOOKS, TelemetryHooks

if TYPE_CHECKING:
    from ._bus import MessageBus
    from ._edge import Entry, Floe
    from ._worker_state import WorkerState

__all__ = ["Accounting", "current_worker"]

_perf = time.perf_counter


def current_worker() -> WorkerState | None:
    """The worker state of the running task, if it is a flow worker."""
    return CURRENT_WORKER.get(None)


def _is_egress(floe: Floe) -> bool:
    return floe._inbox is None


class Accounting:
    """Per-trace bookkeeping shared by the runner, the workers and cancellation."""

    def __init__(self) -> None:
        self._records: dict[str, TraceRecord] = {}
        self._cancel_ring = CancelRing()
        self._active_traces = 0
        self._work = 0
        self._parked = 0
        self._epoch = 0  # bumped by stop(): a put begun before it must not touch the reset counters
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._hooks: TelemetryHooks = NO_OP_HOOKS
        self._hooks_on = False
        self._hooks_resolved = False
        self._trace_events: dict[str, asyncio.Event] = {}
        self._bus_tasks: set[asyncio.Task[None]] = set()
        self._message_bus: MessageBus | None = None
        self._results = ResultStore(0, 0)

    # Hooks -----------------------------------------------------------------------------------

    def _safe_hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        try:
            return hook(*args)
        except Exception:  # hooks must never raise; a broken one costs telemetry, not the flow
            self._hook_failed()
            return None

    def _hook_failed(self) -> None:
        """Log and count a hook that raised (called from an ``except`` block)."""
        CORE_LOGGER.debug("telemetry_hook_failed", exc_info=True)
        counter = getattr(self._hooks, "instrumentation_error", None)
        if counter is not None:
            try:
                counter()
            except Exception:
                CORE_LOGGER.debug("telemetry_error_count_failed", exc_info=True)

    def _consumer_failed(self, kind: str) -> None:
        if self._hooks_on:
            self._safe_hook(self._hooks.consumer_failed, self, kind)

    # Records ---------------------------------------------------------------------------------

    def _record(self, trace_id: str) -> TraceRecord:
        record = self._records.get(trace_id)
        if record is None:
            record = self._records[trace_id] = TraceRecord(trace_id)
        return record

    def _release_record(self, record: TraceRecord) -> None:
        if record.is_releasable() and self._records.get(record.trace_id) is record:
            del self._records[record.trace_id]

    def _admit(self, item: object, held: TraceRecord | None, producer: object) -> TraceRecord | None:
        """Count ``item`` in its trace's pending; start the trace on 0 -> 1. Raises TenantMismatch."""
        trace_id = getattr(item, "trace_id", None)
        if trace_id is None:
            self._work += 1
            return None
        record: TraceRecord | None
        if held is not None and (held.trace_id is trace_id or held.trace_id == trace_id):
            record = held
        else:
            record = self._records.get(trace_id)
        tenant = item.headers.tenant if isinstance(item, Message) else None
        if record is not None and record.pending > 0:
            if tenant is not None:
                if record.tenant is None:
                    record.tenant = tenant
                elif record.tenant != tenant:
                    from ._errors import TenantMismatch

                    raise TenantMismatch(trace_id)
        else:
            if record is None:
                record = self._records[trace_id] = TraceRecord(trace_id)
            self._start_trace(record, item, tenant, producer)
        record.pending += 1
        self._work += 1
        return record

    def _start_trace(self, record: TraceRecord, item: object, tenant: str | None, producer: object) -> None:
        record.tenant = tenant
        record.cancelled = False
        self._cancel_ring.discard(record.trace_id)
        self._active_traces += 1
        if self._hooks_on:
            try:
                record.handle = self._hooks.trace_started(self, item, producer)
            except Exception:
                self._hook_failed()

    def _finalize(self, record: TraceRecord | None) -> bool:
        """Drop one pending item; returns True when this ended a cancelled trace (event owed)."""
        self._work -= 1
        if self._work == 0 and self._idle_waiters:
            self._wake_idle()
        if record is None:
            return False
        record.pending -= 1
        if record.pending > 0:
            if record.chunk_waiters:
                self._wake_chunk_waiters(record)
            return False
        return self._end_trace(record, "cancelled" if record.cancelled else "ok")

    def _end_trace(self, record: TraceRecord, reason: str) -> bool:
        self._active_traces -= 1
        if record.chunk_waiters:
            self._wake_chunk_waiters(record)
        record.wm_hops = None
        record.tenant = None
        handle, record.handle = record.handle, None
        self._trace_events.pop(record.trace_id, None)
        if self._hooks_on:
            try:
                self._hooks.trace_ended(handle, reason)  # type: ignore[arg-type]
            except Exception:
                self._hook_failed()
        cancelled = record.cancelled
        if record.claimed and not record.fetch_waiters:
            record.claimed = False
        self._release_record(record)
        return cancelled and reason == "cancelled"

    def _wake_chunk_waiters(self, record: TraceRecord) -> None:
        waiters = record.chunk_waiters or []
        record.chunk_waiters = None
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # Moving items ----------------------------------------------------------------------------

    async def _send_from_context(self, floe: Floe, item: object) -> None:
        worker = current_worker()
        if worker is not None and worker.node_rt.ctx.owner is floe.source:
            await self._send(floe, item, worker.record, worker.handle, worker)
        else:
            await self._send(floe, item, None, None)

    def _send_now_from_context(self, floe: Floe, item: object) -> bool:
        """``ctx.emit``'s fast path: put or deliver without suspending; ``False``: use the async path."""
        if self._hooks_on or self._message_bus is not None:
            return False
        worker = current_worker()
        if worker is None or worker.node_rt.ctx.owner is not floe.source:
            worker = None
        held = worker.record if worker is not None else None
        if floe._inbox is not None:
            return self._try_send(floe, item, held)
        if isinstance(item, Message) and isinstance(item.payload, WM):
            return False  # a WM delivery records its hops; the full path does that
        source = floe.source
        assert isinstance(source, Node)
        return self._deliver_now(floe, source, item, held, worker)

    def _try_send(self, floe: Floe, item: object, held: TraceRecord | None, producer: object = None) -> bool:
        """Put ``item`` without waiting when the edge has room; ``False``: use ``_send``.

        The fast path of ``emit``: no bus to await, a node edge with room. It admits the item only
        when it can also put it, so a ``False`` leaves nothing to undo.
        """
        if self._message_bus is not None or floe._inbox is None or floe.full():
            return False
        record = self._admit(item, held, producer)
        if not self._hooks_on:
            floe.put_nowait((item, record, None))
            return True
        stamp = self._enqueue_stamp(floe, item, producer, record)
        floe.put_nowait((item, record, stamp))
        if record is None:  # enqueue_finished: after a wait, or for an untraced item (payload-only root)
            try:
                self._hooks.enqueue_finished(stamp, 0.0)
            except Exception:
                self._hook_failed()
        return True

    def _enqueue_stamp(
        self, floe: Floe | None, item: object, producer: object, record: TraceRecord | None
    ) -> object:
        """The telemetry stamp of a put or delivery that begins now."""
        handle = record.handle if record is not None else None
        try:
            return self._hooks.enqueue_started(floe, item, producer, handle)
        except Exception:
            self._hook_failed()
            return None

    async def _wait_put(self, floe: Floe, entry: Entry) -> float:
        """Wait for room on ``floe`` and put the already admitted ``entry``; return seconds waited."""
        started = _perf()
        first = True
        try:
            while True:
                await floe.wait_for_room(first)
                first = False
                if floe.put_nowait(entry):
                    return _perf() - started
        except BaseException:
            self._abandon(entry[1])
            raise

    def _deliver_now(
        self,
        floe: Floe,
        source: Node,
        item: object,
        held: TraceRecord | None,
        worker: WorkerState | None,
        producer: object = None,
    ) -> bool:
        """Deliver a result without waiting when its buffer has room; else False (use ``_deliver``).

        An undone admission never ends a trace: a full buffer's results keep its trace active. With
        telemetry on, a result that would start a trace of its own takes the full path, so that an
        undone admission never opens and closes a root span.
        """
        hooks_on = self._hooks_on
        if hooks_on:
            trace_id = getattr(item, "trace_id", None)
            if trace_id is not None and (held is None or held.trace_id != trace_id):
                return False
        record = self._admit_result(item, held, producer)
        stamp = self._enqueue_stamp(floe, item, producer, record) if hooks_on else None
        entry = ResultEntry(item, record, source, floe, stamp)
        delivered, woke = self._results.try_deliver(entry)
        if not delivered:
            self._finalize(record)
            return False
        floe.unfetched += 1
        if woke and worker is not None:
            worker.woke_fetch = True
        if hooks_on and record is None:
            self._safe_hook(self._hooks.enqueue_finished, stamp, 0.0)
        return True

    def _admit_result(
        self, item: object, held: TraceRecord | None, producer: object = None
    ) -> TraceRecord | None:
        """Admit a result: one without a trace id is filed under the trace its worker holds."""
        if held is not None and getattr(item, "trace_id", None) is None:
            held.pending += 1
            self._work += 1
            return held
        return self._admit(item, held, producer)

    async def _send(
        self,
        floe: Floe,
        item: object,
        held: TraceRecord | None,
        producer: object,
        worker: WorkerState | None = None,
    ) -> float:
        """Put ``item`` on ``floe`` (or deliver it, for an egress edge); return seconds blocked."""
        if _is_egress(floe):
            assert isinstance(floe.source, Node)
            return await self._deliver(floe, floe.source, item, held, producer, worker)
        record = self._admit(item, held, producer)
        epoch = self._epoch
        stamp = None
        if self._hooks_on:
            handle = record.handle if record is not None else None
            stamp = self._safe_hook(self._hooks.enqueue_started, floe, item, producer, handle)
        try:
            if self._message_bus is not None:
                await self._publish(floe, item)
            entry = (item, record, stamp)
            if floe.put_nowait(entry):
                if self._hooks_on and record is None:
                    self._safe_hook(self._hooks.enqueue_finished, stamp, 0.0)
                return 0.0
            started = _perf()
            first = True
            while True:
                await floe.wait_for_room(first)
                first = False
                if floe.put_nowait(entry):
                    break
        except BaseException:
            if self._epoch == epoch:
                self._abandon(record)
            if self._hooks_on and held is None and record is None and floe.source.name == "OpenSea":
                self._safe_hook(self._hooks.enqueue_finished, stamp, 0.0)
            raise
        waited = _perf() - started
        if self._hooks_on:
            self._safe_hook(self._hooks.enqueue_finished, stamp, waited)
        return waited

    def _send_nowait(self, floe: Floe, item: object, *, from_worker: bool) -> None:
        worker = current_worker() if from_worker else None
        held = worker.record if worker is not None else None
        producer = worker.handle if worker is not None else None
        if _is_egress(floe):
            raise asyncio.QueueFull("emit_nowait cannot deliver to the Rookery; use await emit()")
        if floe.full():
            raise asyncio.QueueFull()
        record = self._admit(item, held, producer)
        stamp = None
        if self._hooks_on:
            handle = record.handle if record is not None else None
            stamp = self._safe_hook(self._hooks.enqueue_started, floe, item, producer, handle)
        if self._message_bus is not None:
            task = asyncio.get_running_loop().create_task(self._publish(floe, item))
            self._bus_tasks.add(task)
            task.add_done_callback(self._bus_tasks.discard)
        floe.put_nowait((item, record, stamp))
        if self._hooks_on and record is None:
            self._safe_hook(self._hooks.enqueue_finished, stamp, 0.0)

    def _abandon(self, record: TraceRecord | None) -> None:
        if self._finalize(record) and record is not None:
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._cancel_finish_event(record))
            self._bus_tasks.add(task)
            task.add_done_callback(self._bus_tasks.discard)

    async def _deliver(
        self,
        floe: Floe | None,
        source: Node,
        item: object,
        held: TraceRecord | None,
        producer: object,
        worker: WorkerState | None,
    ) -> float:
        """Deliver a result to the Rookery, waiting while its buffer is full."""
        record = self._admit_result(item, held, producer)
        stamp = None
        if self._hooks_on:
            handle = record.handle if record is not None else None
            stamp = self._safe_hook(self._hooks.enqueue_started, floe, item, producer, handle)
        entry = ResultEntry(item, record, source, floe, stamp)
        waited = 0.0
        try:
            if self._message_bus is not None:
                await self._publish(floe, item, target="Rookery")
            delivered, woke = self._results.try_deliver(entry)
            if not delivered:
                started = _perf()
                while not delivered:
                    await self._results.wait_for_room(record)
                    delivered, woke = self._results.try_deliver(entry)
                waited = _perf() - started
        except BaseException:
            self._abandon(record)
            raise
        if floe is not None:
            floe.unfetched += 1
        if record is not None and isinstance(item, Message) and isinstance(item.payload, WM):
            record.wm_hops = item.payload.hops
        if woke and worker is not None:
            worker.woke_fetch = True
        if self._hooks_on and (waited or record is None):
            self._safe_hook(self._hooks.enqueue_finished, stamp, waited)
        return waited

    async def _publish(self, floe: Floe | None, item: object, target: str | None = None) -> None:
        bus = self._message_bus
        assert bus is not None
        source = floe.source.name if floe is not None else "*"
        target_name = target or (str(floe.target.name) if floe is not None else "*")
        is_msg = isinstance(item, Message)
        envelope = BusEnvelope(
            edge=f"{source or '*'}->{target_name or '*'}",
            source=str(source),
            target=target_name,
            trace_id=getattr(item, "trace_id", None),
            payload=item,
            headers=item.headers.model_dump() if is_msg else None,  # type: ignore[attr-defined]
            meta=item.meta if is_msg else None,  # type: ignore[attr-defined]
        )
        try:
            await bus.publish(envelope)
        except Exception:
            CORE_LOGGER.exception("message_bus_publish_failed", extra={"edge": envelope.edge})
            self._consumer_failed("bus")

    async def _cancel_finish_event(self, record: TraceRecord) -> None:
        raise NotImplementedError  # pragma: no cover - PenguiFlow implements it
