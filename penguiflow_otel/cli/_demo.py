"""``penguiflow-otel demo``: the bundled flow, run with no backend.

receive -> fan-out to three branches (``enrich`` fails once and succeeds on retry, ``stream``
emits status chunks to ``progress``, which hands them to the caller, ``score``) -> ``join_k(3)``
-> ``render``. One trace is cancelled mid-flight.
The report shows the outcome counts and the queue and in-flight gauges read from the live flow.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from .._context import Context
from .._errors import TraceCancelled
from .._message import FinalAnswer, Headers, Message, StreamChunk
from .._node import Node, NodePolicy
from .._patterns import join_k
from .._runner import PenguiFlow
from .._statistics import FlowStatistics

__all__ = ["build_demo_flow", "run_demo"]


def build_demo_flow(hold: asyncio.Event | None = None) -> PenguiFlow:
    """The demo graph; ``hold``, when given, keeps ``render`` waiting (a stalled sink)."""
    failed_once: set[str] = set()

    async def receive(message: Message[Any], ctx: Context) -> Message[Any]:
        return message

    async def enrich(message: Message[Any], ctx: Context) -> Message[Any]:
        if message.trace_id not in failed_once:
            failed_once.add(message.trace_id)
            raise ConnectionError("enrichment service hiccup")
        failed_once.discard(message.trace_id)
        return message.model_copy(update={"payload": f"enriched({message.payload})"})

    async def stream(message: Message[Any], ctx: Context) -> None:
        for step in ("fetching", "ranking"):
            await ctx.emit_chunk(parent=message, text=step, to=nodes["progress"])
        await ctx.emit_chunk(parent=message, text="ready", done=True, to=nodes["progress"])
        await ctx.emit(
            message.model_copy(update={"payload": f"streamed({message.payload})"}), to=nodes["join"]
        )

    async def progress(message: Message[Any], ctx: Context) -> Message[Any]:
        return message

    async def score(message: Message[Any], ctx: Context) -> Message[Any]:
        await asyncio.sleep(0.002)  # stands in for a model call
        return message.model_copy(update={"payload": len(str(message.payload))})

    async def render(message: Message[Any], ctx: Context) -> Message[Any]:
        if hold is not None:
            await hold.wait()
        parts = ", ".join(str(part) for part in message.payload)
        return message.model_copy(update={"payload": FinalAnswer(text=parts)})

    retry = NodePolicy(max_retries=2, backoff_base=0.001)
    nodes = {
        "receive": Node(receive, name="receive"),
        "enrich": Node(enrich, name="enrich", policy=retry),
        "stream": Node(stream, name="stream"),
        "score": Node(score, name="score"),
        "progress": Node(progress, name="progress"),
        "join": join_k("join", 3, timeout_s=5.0),
        "render": Node(render, name="render"),
    }
    return PenguiFlow(
        nodes["receive"].to(nodes["enrich"], nodes["stream"], nodes["score"]),
        nodes["enrich"].to(nodes["join"]),
        nodes["stream"].to(nodes["join"], nodes["progress"]),
        nodes["progress"].to(),
        nodes["score"].to(nodes["join"]),
        nodes["join"].to(nodes["render"]),
        nodes["render"].to(),
        queue_maxsize=16,
        name="demo",
    )


def _gauges(stats: FlowStatistics) -> dict[str, Any]:
    return {
        "queues": [
            {"queue": name, "size": stats.edge_size[name], "capacity": stats.edge_capacity[name]}
            for name in stats.edge_size
        ],
        "in_flight": dict(stats.node_inflight),
        "active_traces": stats.active_traces,
    }


async def _one_trace(
    flow: PenguiFlow,
    index: int,
    cancel: bool,
    progress: list[int],
    chunks: list[int],
    snapshot: list[FlowStatistics],
) -> str:
    message: Message[Any] = Message(payload=f"order-{index}", headers=Headers(tenant="demo"))
    await flow.emit(message, trace_id=message.trace_id)
    try:
        while True:
            result = await flow.fetch(trace_id=message.trace_id)
            payload = getattr(result, "payload", result)
            if isinstance(payload, StreamChunk):
                chunks[0] += 1
                if cancel:
                    snapshot.append(flow.statistics())
                    await flow.cancel(message.trace_id)
                continue
            return "ok" if isinstance(payload, FinalAnswer) else "error"
    except TraceCancelled:
        return "cancelled"
    finally:
        progress[0] += 1


async def _progress(progress: list[int], total: int, stream: Any) -> None:
    while True:
        stream.write(f"\rprocessed {progress[0]}/{total} traces")
        stream.flush()
        await asyncio.sleep(0.1)


async def run_demo(*, messages: int, as_json: bool) -> int:
    """Run the demo flow, print the report, return the exit code."""
    started = time.perf_counter()
    flow = build_demo_flow()
    progress = [0]
    chunks = [0]
    snapshot: list[FlowStatistics] = []
    out = sys.stdout
    ticker = None if as_json else asyncio.get_running_loop().create_task(_progress(progress, messages, out))
    flow.run()
    try:
        outcomes = await asyncio.gather(
            *(
                _one_trace(flow, index, index == messages // 2, progress, chunks, snapshot)
                for index in range(messages)
            )
        )
        gauges = _gauges(snapshot[0] if snapshot else flow.statistics())
    finally:
        if ticker is not None:
            ticker.cancel()
        await flow.stop()
    report = {
        "flow": flow.name,
        "traces": messages,
        "outcomes": {name: outcomes.count(name) for name in ("ok", "error", "cancelled")},
        "stream_chunks": chunks[0],
        "gauges": gauges,
        "seconds": round(time.perf_counter() - started, 3),
        "telemetry": "off (the OpenTelemetry export lands with the telemetry work)",
    }
    if as_json:
        print(json.dumps(report))
        return 0
    print(f"\rprocessed {progress[0]}/{messages} traces")
    print(f"flow {report['flow']!r}: {report['outcomes']}, {chunks[0]} stream chunks, {report['seconds']} s")
    print("gauges mid-run (when the cancelled trace was cancelled):")
    print(f"{'queue':<20} {'size':>5} {'capacity':>9}")
    for row in gauges["queues"]:
        print(f"{row['queue']:<20} {row['size']:>5} {row['capacity']:>9}")
    print(f"{'node':<20} {'in-flight':>9}")
    for name, count in gauges["in_flight"].items():
        print(f"{name:<20} {count:>9}")
    print(f"telemetry: {report['telemetry']}")
    return 0
