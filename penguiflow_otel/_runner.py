"""``PenguiFlow``: building, running and stopping a flow, emitting into it and fetching from it.

The per-message algorithm lives in ``_worker.py``, cancellation and shutdown in ``_cancel.py`` and
trace accounting in ``_accounting.py``; this module holds the public surface and the wiring.

Invariants: the runner may hold an edge, an edge never holds the runner; telemetry hooks are
called synchronously and never awaited; nothing is kept per trace once the trace record is
released.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._accounting import Accounting
from ._cancel import cancel_trace, drain_flow, stop_flow
from ._clock import SYSTEM_CLOCK, Clock
from ._context import _EMPTY, Context, Target
from ._dispatch import CORE_LOGGER, EventSink
from ._edge import Floe, wake_first
from ._errors import TenantMismatch
from ._events import FlowEvent
from ._fetching import fetch_plain, fetch_trace
from ._graph import OPEN_SEA, ROOKERY, Endpoint, build_graph
from ._message import WM, Message
from ._node import Node
from ._patterns import join_bucket_count
from ._results import ResultStore
from ._statistics import FlowStatistics
from ._traces import TraceRecord
from ._worker import run_worker
from ._worker_state import NodeRuntime, WorkerState
from .telemetry._protocol import NoOpHooks, TelemetryHooks, resolve_hooks
from .telemetry._w3c import parse_traceparent

if TYPE_CHECKING:
    from ._bus import MessageBus
    from ._middlewares import Middleware
    from ._registry import ModelRegistry
    from ._state import RemoteBinding, StateStore, StoredEvent

__all__ = ["DEFAULT_QUEUE_MAXSIZE", "PenguiFlow", "create"]

DEFAULT_QUEUE_MAXSIZE = 64
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_NAME_ERROR = "flow name must match ^[A-Za-z0-9_.:-]{1,64}$"
_NOT_RUNNING = "PenguiFlow is not running"
_DRAINING = "PenguiFlow is draining"

Adjacency = tuple[Node, Sequence[Node]]


def _default_name(nodes: list[Node]) -> str:
    if not nodes:
        return "flow"
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", str(nodes[0].name))[:64] or "flow"


class PenguiFlow(Accounting):
    """A running graph of async nodes joined by bounded queues."""

    def __init__(
        self,
        *adjacencies: Adjacency,
        queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
        allow_cycles: bool = False,
        middlewares: Sequence[Middleware] | None = None,
        emit_errors_to_rookery: bool = False,
        state_store: StateStore | None = None,
        message_bus: MessageBus | None = None,
        redactor: Callable[[str, Any], Any] | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if name is not None and not _NAME_RE.match(name):
            raise ValueError(_NAME_ERROR)
        graph = build_graph(adjacencies, maxsize=queue_maxsize, allow_cycles=allow_cycles)
        super().__init__()
        self._graph = graph
        self._name = name or _default_name(graph.nodes)
        self._queue_maxsize = queue_maxsize
        self._emit_errors_to_rookery = emit_errors_to_rookery
        self._state_store = state_store
        self._message_bus = message_bus
        self._redactor = redactor
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._middlewares: list[Middleware] = list(middlewares or [])
        self._registry: ModelRegistry | None = None
        self._running = False
        self._draining = False
        self._stopping = False
        self._drain_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[WorkerState] = []
        self._external_tasks: dict[asyncio.Task[Any], str] = {}
        self._trace_scoped = False
        self._redactor_warned = False
        bounded = queue_maxsize > 0 and bool(graph.egress)
        self._results = ResultStore(
            queue_maxsize if bounded else 0,
            queue_maxsize * max(1, len(graph.egress)) if bounded else 0,
        )
        self._events = EventSink(self._middlewares, state_store, self._consumer_failed)
        self._contexts: dict[Node | Endpoint, Context] = {}
        self._floes: list[Floe] = graph.floes
        self._node_rt: dict[Node, NodeRuntime] = {}
        self._open_sea = Context(OPEN_SEA, self)
        self._open_sea._attach([], graph.ingress)
        self._ingress = list(graph.ingress)
        self._rookery = Context(ROOKERY, self)
        self._rookery._attach(graph.egress, [])
        self._contexts[OPEN_SEA] = self._open_sea
        self._contexts[ROOKERY] = self._rookery
        egress_nodes = {floe.source for floe in graph.egress}
        for node in graph.nodes:
            ctx = Context(node, self)
            ctx._attach(graph.incoming[node], graph.outgoing[node])
            self._contexts[node] = ctx
            self._node_rt[node] = NodeRuntime(
                node, ctx, graph.inboxes[node], graph.outgoing[node], node in egress_nodes
            )

    def __repr__(self) -> str:
        return f"PenguiFlow(name={self._name!r}, nodes={len(self._graph.nodes)}, running={self._running})"

    # Properties ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The flow's name, used by telemetry."""
        return self._name

    @property
    def registry(self) -> ModelRegistry | None:
        """The registry given to ``run()``."""
        return self._registry

    @property
    def state_store_failures(self) -> int:
        """How many state store calls raised."""
        return self._events.store_failures

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The flow's nodes in declaration order."""
        return tuple(self._graph.nodes)

    @property
    def floes(self) -> tuple[Floe, ...]:
        """Every edge of the flow: ingress, node to node and egress."""
        return tuple(self._floes)

    # Lifecycle -------------------------------------------------------------------------------

    def _ensure_hooks(self) -> None:
        if self._hooks_resolved:
            return
        hooks = resolve_hooks(self)
        self._hooks: TelemetryHooks = hooks
        self._hooks_on = not isinstance(hooks, NoOpHooks)
        self._hooks_resolved = True

    def run(self, *, registry: ModelRegistry | None = None) -> None:
        """Start ``policy.concurrency`` workers per node on the running loop."""
        if self._running:
            raise RuntimeError("PenguiFlow already running")
        if registry is not None:
            missing = sorted(
                str(node.name)
                for node in self._graph.nodes
                if node.policy.validate != "none" and not registry.has(str(node.name))
            )
            if missing:
                raise RuntimeError(
                    "ModelRegistry is missing entries for nodes requiring validation: " + ", ".join(missing)
                )
        loop = asyncio.get_running_loop()
        self._registry = registry
        self._ensure_hooks()
        self._running = True
        self._stopping = False
        self._trace_scoped = False
        for node in self._graph.nodes:
            rt = self._node_rt[node]
            rt.direct = registry is None or node.policy.validate == "none"
            for _ in range(node.policy.concurrency):
                state = WorkerState(rt)
                task = loop.create_task(run_worker(self, rt, state), name=f"penguiflow:{node.name}")
                state.task = task
                self._workers.append(state)
                self._tasks.append(task)
        if self._hooks_on:
            self._safe_hook(self._hooks.flow_started, self)

    async def stop(self) -> int:
        """Cancel every worker and discard all queued and held work; return the discarded count."""
        return await stop_flow(self)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Refuse new emits, finish the work in flight, then stop."""
        await drain_flow(self, timeout_s)

    async def __aenter__(self) -> PenguiFlow:
        if not self._running:
            self.run()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # Emitting --------------------------------------------------------------------------------

    def _check_emit(self) -> None:
        if self._draining:
            raise RuntimeError(_DRAINING)

    async def emit(self, msg: Any, to: Target = None, *, trace_id: str | None = None) -> None:
        """Send ``msg`` to the ingress nodes (or ``to``); with ``trace_id``, start a round trip."""
        self._check_emit()
        if trace_id is not None:
            await self._emit_roundtrip(msg, to, trace_id)
            return
        floes = self._ingress if to is None else self._open_sea._resolve(to, self._open_sea._outgoing)
        self._ensure_hooks()
        if self._is_duplicate_wm(msg):
            return
        for floe in floes:
            if not self._try_send(floe, msg, None):
                await self._send(floe, msg, None, None)

    def emit_nowait(self, msg: Any, to: Target = None, *, trace_id: str | None = None) -> None:
        """Send without waiting; ``asyncio.QueueFull`` when a target is full."""
        self._check_emit()
        if trace_id is not None:
            raise RuntimeError(
                "emit_nowait(trace_id=...) is not supported; use await emit(..., trace_id=...)"
            )
        floes = self._open_sea._resolve(to, self._open_sea._outgoing)
        self._ensure_hooks()
        if self._is_duplicate_wm(msg):
            return
        for floe in floes:
            self._send_nowait(floe, msg, from_worker=False)

    async def emit_chunk(
        self,
        *,
        parent: Message[Any],
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Target = None,
    ) -> Any:
        """Emit a stream chunk through the ingress context."""
        self._check_emit()
        return await self._open_sea.emit_chunk(
            parent=parent, text=text, stream_id=stream_id, seq=seq, done=done, meta=meta, to=to
        )

    def _attach_trace_id(self, msg: Any, trace_id: str) -> Any:
        if isinstance(msg, Message):
            parsed = parse_traceparent(msg.headers.traceparent)
            if parsed is not None and parsed.trace_id != trace_id:
                raise ValueError("trace_id does not match headers.traceparent")
            return msg if msg.trace_id == trace_id else msg.model_copy(update={"trace_id": trace_id})
        try:
            if getattr(msg, "trace_id", None) != trace_id:
                msg.trace_id = trace_id
        except (AttributeError, TypeError, ValueError) as exc:
            raise TypeError(
                "emit(trace_id=...) requires a Message (or object with writable .trace_id)"
            ) from exc
        return msg

    async def _emit_roundtrip(self, msg: Any, to: Target, trace_id: str) -> None:
        if not self._running:
            raise RuntimeError(_NOT_RUNNING)
        msg = self._attach_trace_id(msg, trace_id)
        record = self._records.get(trace_id)
        if (
            record is not None
            and record.pending > 0
            and record.tenant is not None
            and isinstance(msg, Message)
            and msg.headers.tenant != record.tenant
        ):
            raise TenantMismatch(trace_id)
        floes = self._open_sea._resolve(to, self._open_sea._outgoing)
        self._ensure_hooks()
        record = self._record(trace_id)
        if record.lock is None:
            record.lock = asyncio.Lock()
        record.lock_waiters += 1
        try:
            await record.lock.acquire()
        finally:
            record.lock_waiters -= 1
        try:
            if not self._running:  # stop() released the lock while we waited: it discarded the trip
                raise RuntimeError(_NOT_RUNNING)
            self._trace_scoped = True
            self._results.claim(record)
            if self._is_duplicate_wm(msg):
                self._release_lock(record)
                return
            for floe in floes:
                await self._send(floe, msg, None, None)
        except BaseException:
            self._release_lock(record)
            raise

    def _is_duplicate_wm(self, msg: Any) -> bool:
        if not isinstance(msg, Message) or not isinstance(msg.payload, WM):
            return False
        record = self._records.get(msg.trace_id)
        if record is None or record.wm_hops is None or record.wm_hops != msg.payload.hops:
            return False
        if self._hooks_on:
            self._safe_hook(self._hooks.dropped, self, "ingress", None, "duplicate", 1)
        return True

    def _release_lock(self, record: TraceRecord) -> None:
        if record.lock is not None and record.lock.locked():
            record.lock.release()
        self._release_record(record)

    # Fetching --------------------------------------------------------------------------------

    async def fetch(
        self, from_: Target = None, *, trace_id: str | None = None, tenant: str | None = None
    ) -> Any:
        """Return the next result: untraced or unclaimed (plain), or of one trace (``trace_id``)."""
        if trace_id is not None:
            if from_ is not None:
                raise RuntimeError("fetch(trace_id=...) does not support from_ filtering")
            return await fetch_trace(self, trace_id, tenant)
        return await fetch_plain(self, from_)

    fetch_any = fetch

    # Cancellation ----------------------------------------------------------------------------

    async def cancel(self, trace_id: str, *, tenant: str | None = None) -> bool:
        """Cancel an active trace: purge its queued work, interrupt its workers, wake its fetches."""
        return await cancel_trace(self, trace_id, tenant)

    def ensure_trace_event(self, trace_id: str) -> asyncio.Event:
        """The trace's cancel event, created if needed and set by ``cancel()``."""
        event = self._trace_events.get(trace_id)
        if event is None:
            event = self._trace_events[trace_id] = asyncio.Event()
            record = self._records.get(trace_id)
            if (record is not None and record.cancelled) or trace_id in self._cancel_ring:
                event.set()
        return event

    def register_external_task(self, trace_id: str, task: asyncio.Task[Any]) -> None:
        """Track a task for ``stop()`` to cancel and await; forgotten once done."""
        self._external_tasks[task] = trace_id
        task.add_done_callback(lambda done: self._external_tasks.pop(done, None))

    # State store and events ------------------------------------------------------------------

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """The stored events of a trace, stably sorted by ``seq``."""
        if self._state_store is None:
            raise RuntimeError("PenguiFlow was created without a state_store")
        history = await self._state_store.load_history(trace_id)
        return sorted(history, key=lambda event: event.seq)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Persist a remote binding, best effort."""
        if self._state_store is None:
            return
        try:
            await self._state_store.save_remote_binding(binding)
        except Exception:
            self._events.store_failures += 1
            CORE_LOGGER.exception("state_store_binding_failed", extra={"trace_id": binding.trace_id})
            self._consumer_failed("state_store")

    async def record_remote_event(
        self,
        *,
        event: str,
        node: Node,
        context: Context,
        trace_id: str | None,
        latency_ms: float | None,
        level: int = logging.INFO,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Dispatch an arbitrary FlowEvent with ``attempt=0``."""
        if self._events.wants(level):
            built = self._build_event(event, node, trace_id, 0, latency_ms, extra or {})
            await self._events.dispatch(built, level)

    def add_middleware(self, mw: Middleware) -> None:
        """Append a middleware; it sees events from the next one on."""
        self._middlewares.append(mw)

    def _build_event(
        self,
        event_type: str,
        owner: Node | Endpoint,
        trace_id: str | None,
        attempt: int,
        latency_ms: float | None,
        extra: dict[str, Any],
    ) -> FlowEvent:
        ctx = self._contexts.get(owner)
        record = self._records.get(trace_id) if trace_id is not None else None
        if trace_id is not None and record is None:
            pending: int | None = 0
            inflight = 0
            cancelled = trace_id in self._cancel_ring
        elif record is not None:
            pending, inflight, cancelled = record.pending, record.inflight, record.cancelled
        else:
            pending, inflight, cancelled = None, 0, False
        return FlowEvent(
            event_type=event_type,
            ts=self._clock.time(),
            node_name=str(owner.name),
            node_id=owner.node_id if isinstance(owner, Node) else owner.name,
            trace_id=trace_id,
            attempt=attempt,
            latency_ms=latency_ms,
            queue_depth_in=ctx.queue_depth_in() if ctx else 0,
            queue_depth_out=ctx.queue_depth_out() if ctx else 0,
            outgoing_edges=ctx.outgoing_count() if ctx else 0,
            queue_maxsize=self._queue_maxsize,
            trace_pending=pending,
            trace_inflight=inflight,
            trace_cancelled=cancelled,
            extra=extra,
        )

    async def _event(
        self,
        event_type: str,
        owner: Node | Endpoint,
        trace_id: str | None,
        level: int,
        *,
        attempt: int = 0,
        latency_ms: float | None = None,
        extra: dict[str, Any] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        if self._events.wants(level):
            built = self._build_event(event_type, owner, trace_id, attempt, latency_ms, extra or {})
            await self._events.dispatch(built, level, exc)

    async def _cancel_finish_event(self, record: TraceRecord) -> None:
        if self._events.wants(logging.INFO):
            built = FlowEvent(
                event_type="trace_cancel_finish",
                ts=self._clock.time(),
                node_name=ROOKERY.name,
                node_id=ROOKERY.name,
                trace_id=record.trace_id,
                attempt=0,
                latency_ms=None,
                queue_depth_in=self._rookery.queue_depth_in(),
                queue_depth_out=0,
                outgoing_edges=0,
                queue_maxsize=self._queue_maxsize,
                trace_pending=0,
                trace_inflight=0,
                trace_cancelled=True,
            )
            await self._events.dispatch(built, logging.INFO)

    def _redact(self, kind: str, value: object) -> tuple[bool, object]:
        if self._redactor is None:
            return False, None
        try:
            out = self._redactor(kind, value)
        except Exception:
            if not self._redactor_warned:
                self._redactor_warned = True
                CORE_LOGGER.warning("redactor_failed", exc_info=True)
            self._consumer_failed("redactor")
            return False, None
        return out is not None, out

    def _item_extra(self, item: object) -> dict[str, Any]:
        if self._redactor is None:
            return {}
        extra: dict[str, Any] = {}
        payload = item.payload if isinstance(item, Message) else item
        keep, value = self._redact("payload", payload)
        if keep:
            extra["payload"] = value
        if isinstance(item, Message):
            keep, value = self._redact("meta", item.meta)
            if keep:
                extra["meta"] = value
        return extra

    # Statistics ------------------------------------------------------------------------------

    def statistics(self) -> FlowStatistics:
        """A read-only snapshot of the flow's counters and per-trace table sizes."""
        records = list(self._records.values())
        return FlowStatistics(
            running=self._running,
            active_traces=self._active_traces,
            pending=sum(record.pending for record in records),
            node_inflight={str(rt.node.name): rt.inflight for rt in self._node_rt.values()},
            edge_size={floe.name: floe.qsize() for floe in self._floes},
            edge_capacity={floe.name: floe.maxsize for floe in self._floes},
            buffered_results=self._results.buffered_count(),
            parked_join_items=self._parked,
            cancelled_ring=len(self._cancel_ring),
            trace_tables={
                "trace_records": len(records),
                "result_buffers": len(self._results.buffered_traces),
                "wm_hops": sum(1 for record in records if record.wm_hops is not None),
                "chunk_waiters": sum(1 for record in records if record.chunk_waiters),
                "cancel_events": len(self._trace_events),
                "join_buckets": join_bucket_count(self),
            },
        )

    # Internal hooks for Context --------------------------------------------------------------

    def _take_from_floe(self, floe: Floe) -> Any:
        items = floe._items
        if not items:
            return _EMPTY
        item, record, stamp = items.popleft()
        floe.wake_putter()
        if self._hooks_on:
            self._safe_hook(self._hooks.dequeued, floe, stamp)
        self._finalize(record)
        return item

    async def _wait_for_input(self, owner: Node | Endpoint) -> None:
        if not isinstance(owner, Node):
            raise RuntimeError("context has no incoming floes to fetch from")
        inbox = self._graph.inboxes[owner]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        inbox.getters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                wake_first(inbox.getters)  # the wake-up we got belongs to another waiter now
            raise

    def _chunk_emitted(self, owner: Node | Endpoint, chunk: object) -> None:
        if self._hooks_on:
            self._safe_hook(self._hooks.chunk_emitted, owner, chunk)

    def _chunk_capacity_full(self, stream_id: str) -> bool:
        """Whether a non-first chunk must wait: ``pending(K) - 1 >= queue_maxsize`` (upstream's quirk)."""
        maxsize = self._queue_maxsize
        if maxsize <= 0:
            return False
        record = self._records.get(stream_id)
        return record is not None and record.pending - 1 >= maxsize

    async def _await_chunk_capacity(self, stream_id: str) -> None:
        while True:
            if not self._chunk_capacity_full(stream_id):
                return
            record = self._records[stream_id]
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if record.chunk_waiters is None:
                record.chunk_waiters = []
            record.chunk_waiters.append(fut)
            try:
                await fut
            finally:
                waiters = record.chunk_waiters
                if waiters is not None and fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    record.chunk_waiters = None


def create(*adjacencies: Adjacency, **kwargs: Any) -> PenguiFlow:
    """Build a :class:`PenguiFlow`; keyword arguments are passed through."""
    return PenguiFlow(*adjacencies, **kwargs)
