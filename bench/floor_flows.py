"""The physical floor: the benchmark graphs built from bare ``asyncio.Queue`` hand-offs.

Each node is one consumer task that gets from its inbound queue, awaits the same node body the API
graphs use, and puts the result on its outbound queue. Every queue, ingress and egress included, is
bounded at the default queue size of the PenguiFlow API. No retries, timeouts, traces or events: this is
what moving a message through the graph costs with nothing else.

Joining, cancelling and streaming have no bare-queue form, so those graphs are the closest plain
asyncio equivalent, written out in each builder's docstring. Builders get ``types``, the module that
provides the envelope classes (this project's), or ``None`` for payload-only scenarios.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .api_flows import FANOUT, passthrough
from .drive import CANCELLED, CHUNKS_PER_TRACE, FlowHandle

__all__ = ["GRAPHS", "QUEUE_MAXSIZE"]

QUEUE_MAXSIZE = 64  # PenguiFlow's DEFAULT_QUEUE_MAXSIZE

Queue = asyncio.Queue[Any]


def _queues(count: int) -> list[Queue]:
    return [asyncio.Queue(QUEUE_MAXSIZE) for _ in range(count)]


def _stopper(tasks: list[asyncio.Task[None]]) -> Callable[[], Any]:
    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return stop


async def _node_loop(inbound: Queue, outbound: Queue) -> None:
    while True:
        item = await inbound.get()
        await outbound.put(await passthrough(item, None))


def chain3(types: ModuleType | None = None) -> FlowHandle:
    """a -> b -> c over four bounded queues (ingress, a->b, b->c, egress). Starts the node tasks."""
    queues = _queues(4)
    tasks = [
        asyncio.create_task(_node_loop(queues[i], queues[i + 1]), name=f"floor:{name}")
        for i, name in enumerate("abc")
    ]
    return FlowHandle(emit=queues[0].put, fetch=queues[-1].get, stop=_stopper(tasks))


async def _fan_loop(inbound: Queue, outbound: list[Queue]) -> None:
    while True:
        item = await passthrough(await inbound.get(), None)
        for queue in outbound:
            await queue.put(item)


async def _join_loop(inbound: Queue, outbound: Queue, k: int) -> None:
    buckets: dict[str, list[Any]] = {}
    while True:
        msg = await inbound.get()
        bucket = buckets.setdefault(msg.trace_id, [])
        bucket.append(msg)
        if len(bucket) == k:
            del buckets[msg.trace_id]
            await outbound.put(bucket[0].model_copy(update={"payload": [m.payload for m in bucket]}))


def fanout4_join(types: ModuleType | None = None) -> FlowHandle:
    """a -> b0..b3 -> join -> egress; the closest bare-asyncio form of the API graph.

    ``a`` puts each message on the four branch queues in turn; the branches put into one shared join
    queue (the API's join node has four inbound edges); the join task buckets by ``trace_id`` and, at
    four, puts ``first.model_copy(update={"payload": [payloads]})`` on the egress queue, which is what
    ``join_k`` builds. No bucket timeouts, no cancel or stop cleanup.
    """
    ingress, join_in, egress = _queues(3)
    branch_in = _queues(FANOUT)
    tasks = [asyncio.create_task(_fan_loop(ingress, branch_in), name="floor:a")]
    tasks += [
        asyncio.create_task(_node_loop(queue, join_in), name=f"floor:b{i}")
        for i, queue in enumerate(branch_in)
    ]
    tasks.append(asyncio.create_task(_join_loop(join_in, egress, FANOUT), name="floor:join"))
    return FlowHandle(emit=ingress.put, fetch=egress.get, stop=_stopper(tasks))


class _TraceTable:
    """Per-trace round trips over the bare chain: a future per trace and a set of cancelled traces.

    ``cancel`` resolves the trace's future as ``CANCELLED`` and marks the trace; each node task and the
    egress dispatcher drop a marked trace's message when they take it, and forget the mark then. This is
    the least bookkeeping that gives emit/fetch/cancel by trace id the API's observable behaviour; it
    does not purge queues eagerly, interrupt a node mid-call, emit events or enforce tenants.
    """

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[object]] = {}
        self.cancelled: set[str] = set()

    def dropped(self, msg: Any) -> bool:
        trace_id = msg.trace_id
        if trace_id in self.cancelled:
            self.cancelled.discard(trace_id)
            return True
        return False

    async def node(self, inbound: Queue, outbound: Queue) -> None:
        while True:
            msg = await inbound.get()
            if not self.dropped(msg):
                await outbound.put(await passthrough(msg, None))

    async def dispatch(self, egress: Queue) -> None:
        while True:
            msg = await egress.get()
            if not self.dropped(msg):
                future = self.waiting.get(msg.trace_id)
                if future is not None and not future.done():
                    future.set_result(msg)

    async def cancel(self, trace_id: str) -> bool:
        future = self.waiting.get(trace_id)
        if future is None or future.done():
            return False
        self.cancelled.add(trace_id)
        future.set_result(CANCELLED)
        return True

    async def fetch(self, trace_id: str) -> object:
        future = self.waiting.get(trace_id)
        if future is None:
            return CANCELLED  # already fetched as cancelled, or never emitted
        result = await future
        del self.waiting[trace_id]
        return result


def chain3_traced(types: ModuleType | None = None) -> FlowHandle:
    """a -> b -> c with trace-scoped emit/fetch/cancel added in the plainest asyncio way (``_TraceTable``).

    Each node checks the cancelled set before calling ``passthrough``; a dispatcher task moves egress
    results into per-trace futures. Plain ``emit``/``fetch`` stay the bare queues.
    """
    table = _TraceTable()
    queues = _queues(4)
    tasks = [
        asyncio.create_task(table.node(queues[i], queues[i + 1]), name=f"floor:{name}")
        for i, name in enumerate("abc")
    ]
    tasks.append(asyncio.create_task(table.dispatch(queues[-1]), name="floor:dispatch"))
    loop = asyncio.get_running_loop()

    async def emit_traced(item: object, trace_id: str) -> None:
        table.waiting[trace_id] = loop.create_future()
        await queues[0].put(item)

    return FlowHandle(
        emit=queues[0].put,
        fetch=queues[-1].get,
        stop=_stopper(tasks),
        emit_traced=emit_traced,
        fetch_traced=table.fetch,
        cancel=table.cancel,
    )


def stream1(types: ModuleType | None = None) -> FlowHandle:
    """One task that turns each message into ``CHUNKS_PER_TRACE`` chunk messages on the egress queue.

    Each chunk is built as ``ctx.emit_chunk`` builds it: ``StreamChunk(stream_id=trace_id, seq, text,
    done, meta={})`` inside ``Message(payload=chunk, headers=parent.headers, trace_id=parent.trace_id,
    deadline_s=parent.deadline_s, meta=dict(parent.meta))``, with this project's classes. The bounded
    egress queue is the only backpressure (the API also bounds each stream's unfetched chunks).
    """
    if types is None:
        raise ValueError("the streaming floor needs the envelope classes")
    message_cls, chunk_cls = types.Message, types.StreamChunk
    ingress, egress = _queues(2)
    last = CHUNKS_PER_TRACE - 1

    async def streamer() -> None:
        while True:
            parent = await ingress.get()
            for seq in range(CHUNKS_PER_TRACE):
                chunk = chunk_cls(stream_id=parent.trace_id, seq=seq, text="tok", done=seq == last, meta={})
                await egress.put(
                    message_cls(
                        payload=chunk,
                        headers=parent.headers,
                        trace_id=parent.trace_id,
                        deadline_s=parent.deadline_s,
                        meta=dict(parent.meta),
                    )
                )

    tasks = [asyncio.create_task(streamer(), name="floor:streamer")]
    return FlowHandle(emit=ingress.put, fetch=egress.get, stop=_stopper(tasks))


GRAPHS: dict[str, Callable[[ModuleType | None], FlowHandle]] = {
    "chain3": chain3,
    "chain3_traced": chain3_traced,
    "fanout4_join": fanout4_join,
    "stream1": stream1,
}
