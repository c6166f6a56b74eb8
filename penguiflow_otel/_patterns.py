"""Patterns: ``map_concurrent``, ``join_k`` and the routers.

``join_k`` buckets belong to the node object, keyed by flow and trace id. Parked inputs stay
counted in their trace's pending until the bucket completes or is dropped (F8), so a bucket never
outlives its trace. Drops: the trace's cancellation, ``stop()``, and ``timeout_s`` after the first
arrival.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._accounting import current_worker
from ._errors import FlowError, FlowErrorCode
from ._message import Message
from ._node import Node, NodePolicy
from ._policies import PolicyLike, RoutingRequest, evaluate_policy

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from ._context import Context
    from ._runner import PenguiFlow
    from ._traces import TraceRecord

__all__ = ["join_k", "map_concurrent", "predicate_router", "union_router"]

_logger = logging.getLogger("penguiflow_otel.patterns")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


async def map_concurrent(
    items: Iterable[ItemT], worker: Callable[[ItemT], Awaitable[ResultT]], *, max_concurrency: int = 8
) -> list[ResultT]:
    """Run ``worker`` over ``items`` with at most ``max_concurrency`` at once; results in input order."""
    semaphore = asyncio.Semaphore(max(1, max_concurrency))

    async def one(item: ItemT) -> ResultT:
        async with semaphore:
            return await worker(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


# join_k ----------------------------------------------------------------------------------------


class _Bucket:
    __slots__ = ("first_at", "flow", "items", "key", "record", "stamps", "timer")

    def __init__(self, key: tuple[int, str], flow: PenguiFlow | None, record: TraceRecord | None) -> None:
        self.key = key
        self.flow = flow
        self.record = record
        self.items: list[Any] = []
        self.stamps: list[object] = []
        self.first_at = time.perf_counter()
        self.timer: asyncio.TimerHandle | None = None


class _JoinState:
    __slots__ = ("buckets", "k", "node", "timeout_s", "timer_tasks")

    def __init__(self, k: int, timeout_s: float | None) -> None:
        self.k = k
        self.timeout_s = timeout_s
        self.buckets: dict[tuple[int, str], _Bucket] = {}
        self.timer_tasks: set[asyncio.Task[None]] = set()
        self.node: Node | None = None


def _flow_of(ctx: Any) -> PenguiFlow | None:
    from ._runner import PenguiFlow

    runtime = getattr(ctx, "runtime", None)
    return runtime if isinstance(runtime, PenguiFlow) and runtime._running else None


def join_k(name: str, k: int, *, timeout_s: float | None = None) -> Node:
    """A node that waits for ``k`` messages of a trace and emits them as one (payload list)."""
    if k <= 0:
        raise ValueError("k must be positive")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    state = _JoinState(k, timeout_s)

    async def join(msg: Any, ctx: Any) -> Any:
        trace_id = getattr(msg, "trace_id", None)
        if trace_id is None:
            raise ValueError("join_k requires messages with trace_id")
        return _arrive(state, msg, trace_id, _flow_of(ctx))

    node = Node(join, name=name, policy=NodePolicy(validate="none"))
    join._join_state = state  # type: ignore[attr-defined]
    state.node = node
    return node


def _arrive(state: _JoinState, msg: Any, trace_id: str, flow: PenguiFlow | None) -> Any:
    worker = current_worker()
    key = (id(flow), trace_id)
    bucket = state.buckets.get(key)
    if bucket is None:
        record = None
        if flow is not None:
            record = worker.record if worker is not None and worker.record is not None else None
            if record is None or record.trace_id != trace_id:
                record = flow._records.get(trace_id)
        bucket = state.buckets[key] = _Bucket(key, flow, record)
        if state.timeout_s is not None and flow is not None:
            loop = asyncio.get_running_loop()
            bucket.timer = loop.call_later(state.timeout_s, _on_timer, state, bucket)
    bucket.items.append(msg)
    bucket.stamps.append(worker.stamp if worker is not None else None)
    if len(bucket.items) < state.k:
        if flow is not None:
            _park(flow, bucket.record)
        return None
    del state.buckets[key]
    if bucket.timer is not None:
        bucket.timer.cancel()
    if flow is not None:
        _unpark(flow, bucket.record, state.k - 1)
        if flow._hooks_on and worker is not None:
            flow._safe_hook(flow._hooks.joined, worker.handle, list(bucket.stamps))
    first = bucket.items[0]
    if isinstance(first, Message):
        payloads = [item.payload if isinstance(item, Message) else item for item in bucket.items]
        return first.model_copy(update={"payload": payloads})
    return list(bucket.items)


def _park(flow: PenguiFlow, record: TraceRecord | None) -> None:
    flow._parked += 1
    flow._work += 1
    if record is not None:
        record.pending += 1


def _unpark(flow: PenguiFlow, record: TraceRecord | None, count: int) -> None:
    """Release parked inputs of a completed bucket; the completing item keeps the trace active."""
    flow._parked -= count
    flow._work -= count
    if record is not None:
        record.pending -= count


def _on_timer(state: _JoinState, bucket: _Bucket) -> None:
    if state.buckets.get(bucket.key) is not bucket:
        return
    task = asyncio.get_running_loop().create_task(_expire(state, bucket))
    state.timer_tasks.add(task)
    task.add_done_callback(state.timer_tasks.discard)


async def _expire(state: _JoinState, bucket: _Bucket) -> None:
    flow = bucket.flow
    node = state.node
    if state.buckets.get(bucket.key) is not bucket or flow is None or node is None:
        return
    del state.buckets[bucket.key]
    received = len(bucket.items)
    timeout_s = state.timeout_s or 0.0
    trace_id = bucket.key[1]
    _logger.debug(
        "join_bucket_dropped", extra={"trace_id": trace_id, "node_name": node.name, "reason": "timeout"}
    )
    extra = {"received": received, "expected": state.k, "timeout_s": timeout_s}
    latency_ms = (time.perf_counter() - bucket.first_at) * 1000
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.dropped, flow, str(node.name), bucket.stamps[0], "join_timeout", received)
    await flow._event("join_timeout", node, trace_id, logging.WARNING, latency_ms=latency_ms, extra=extra)
    if flow._emit_errors_to_rookery:
        error = FlowError(
            trace_id=trace_id,
            node_name=node.name,
            node_id=node.node_id,
            code=FlowErrorCode.JOIN_TIMEOUT,
            message=(
                f"join_k '{node.name}' timed out after {timeout_s:.2f}s with {received}/{state.k} messages"
            ),
            metadata=extra,
        )
        egress = next((f for f in flow._graph.egress if f.source is node), None)
        await flow._deliver(egress, node, error, bucket.record, None, None)
    flow._parked -= received
    for _ in range(received):
        if flow._finalize(bucket.record) and bucket.record is not None:
            await flow._cancel_finish_event(bucket.record)


def _states(flow: PenguiFlow) -> list[_JoinState]:
    states = []
    for node in flow._graph.nodes:
        state = getattr(node.func, "_join_state", None)
        if isinstance(state, _JoinState):
            states.append(state)
    return states


def join_bucket_count(flow: PenguiFlow) -> int:
    """How many join buckets of this flow are open."""
    return sum(1 for state in _states(flow) for bucket in state.buckets.values() if bucket.flow is flow)


def _drop_buckets(flow: PenguiFlow, keep: Callable[[_Bucket], bool], reason: str) -> list[tuple[str, object]]:
    dropped: list[tuple[str, object]] = []
    for state in _states(flow):
        name = str(state.node.name) if state.node is not None else "join"
        for key, bucket in list(state.buckets.items()):
            if bucket.flow is not flow or keep(bucket):
                continue
            del state.buckets[key]
            if bucket.timer is not None:
                bucket.timer.cancel()
            _logger.debug(
                "join_bucket_dropped", extra={"trace_id": key[1], "node_name": name, "reason": reason}
            )
            dropped.extend((name, stamp) for stamp in bucket.stamps)
    return dropped


def purge_join_buckets(flow: PenguiFlow, record: TraceRecord) -> list[tuple[str, object]]:
    """Drop the buckets of a cancelled trace; return ``(node name, stamp)`` per parked input."""
    return _drop_buckets(flow, lambda bucket: bucket.key[1] != record.trace_id, "cancelled")


def clear_join_buckets(flow: PenguiFlow) -> list[tuple[str, object]]:
    """Drop every bucket of this flow (``stop()``)."""
    return _drop_buckets(flow, lambda bucket: False, "stop")


def join_timer_tasks(flow: PenguiFlow) -> list[asyncio.Task[object]]:
    """Running join-timeout tasks, for ``stop()`` to cancel and await."""
    return [task for state in _states(flow) for task in state.timer_tasks]


# Routers ---------------------------------------------------------------------------------------


def _normalise_targets(ctx: Context, targets: Any) -> list[Node]:
    if isinstance(targets, Node | str):
        targets = [targets]
    elif not isinstance(targets, Iterable):
        raise TypeError("Targets must be Node or str")
    candidates = [node for node in getattr(ctx, "_outgoing", {}) if isinstance(node, Node)]
    resolved: list[Node] = []
    for target in targets:
        if isinstance(target, Node):
            resolved.append(target)
            continue
        if not isinstance(target, str):
            raise TypeError("Targets must be Node or str")
        match = next((node for node in candidates if node.name == target), None)
        if match is None:
            raise KeyError(f"No successor named '{target}'")
        resolved.append(match)
    return resolved


async def _apply_policy(
    policy: PolicyLike | None, ctx: Context, node: Node, message: Any, proposed: list[Node]
) -> list[Node]:
    if policy is None:
        return proposed
    request = RoutingRequest(
        message=message,
        context=ctx,
        node=node,
        proposed=tuple(proposed),
        trace_id=getattr(message, "trace_id", None),
    )
    decision = await evaluate_policy(policy, request)
    if decision is None:
        return []
    return _normalise_targets(ctx, decision)


def predicate_router(
    name: str,
    predicate: Callable[[Any], Node | str | Sequence[Node | str] | None],
    *,
    policy: PolicyLike | None = None,
) -> Node:
    """A node forwarding the same message to the successors ``predicate(msg)`` names."""

    async def router(msg: Any, ctx: Context) -> None:
        targets = predicate(msg)
        if targets is None:
            return
        selected = _normalise_targets(ctx, targets)
        if selected:
            selected = await _apply_policy(policy, ctx, node, msg, selected)
        if selected:
            await ctx.emit(msg, to=selected)

    node = Node(router, name=name, policy=NodePolicy(validate="none"))
    return node


def union_router(name: str, union_model: Any, *, policy: PolicyLike | None = None) -> Node:
    """A node validating with ``union_model`` and routing to the successor named by ``kind``."""
    from pydantic import TypeAdapter  # build-time only: keeps pydantic.type_adapter off the import

    adapter: TypeAdapter[Any] = TypeAdapter(union_model)

    async def router(msg: Any, ctx: Context) -> None:
        validated = adapter.validate_python(msg)
        target = getattr(validated, "kind", type(validated).__name__)
        try:
            selected = _normalise_targets(ctx, target)
        except KeyError:
            raise KeyError(f"No successor matches '{target}'") from None
        selected = await _apply_policy(policy, ctx, node, validated, selected)
        if selected:
            await ctx.emit(validated, to=selected)

    node = Node(router, name=name, policy=NodePolicy(validate="none"))
    return node
