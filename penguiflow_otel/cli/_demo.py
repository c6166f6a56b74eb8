"""``penguiflow-otel demo``: the bundled flow with real telemetry and no backend.

Graph: receive -> fan-out to three branches (``enrich`` fails once per trace and succeeds on
retry; ``stream`` sends status chunks to ``progress``, which hands them to the caller; ``score``)
-> ``join_k(3)`` -> ``agent`` (a scripted ``ReactPlanner``, see ``_agent``) -> ``render``. One
trace is cancelled mid-flight. Spans go as JSON lines to a file (or over OTLP/HTTP with
``--otlp``); ``/metrics`` is served on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._context import Context
from .._errors import TraceCancelled
from .._message import FinalAnswer, Headers, Message, StreamChunk
from .._node import Node, NodePolicy
from .._patterns import join_k
from .._runner import PenguiFlow
from ..testing import ScriptedLLM
from ._agent import AGENT_NAME, AgentAnswer, agent_node, demo_llm, to_answer
from ._recorder import TraceRecorder
from ._report import gauge_table, metric_summary, render_tree, span_tree

__all__ = ["DemoOptions", "build_demo_flow", "build_stalled_flow", "run_demo"]

DEFAULT_TRACES_FILE = "penguiflow-demo-traces.jsonl"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The demo's command-line options."""

    messages: int = 20
    as_json: bool = False
    serve: bool = False
    port: int = 0
    otlp: str | None = None
    traces_file: str = DEFAULT_TRACES_FILE
    capture_content: bool = False

    @property
    def content_switch(self) -> bool | None:
        """The planner's ``capture_content``: on with the flag, else left to the environment variable."""
        return True if self.capture_content else None


def build_demo_flow(llm: ScriptedLLM | None = None, *, capture_content: bool | None = None) -> PenguiFlow:
    """The demo graph (flow name ``demo``); ``llm`` plays the agent's model (default: a fresh one)."""
    failed_once: set[str] = set()
    nodes: dict[str, Node] = {}

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
        return to_answer(message)

    nodes.update(
        receive=Node(receive, name="receive"),
        enrich=Node(enrich, name="enrich", policy=NodePolicy(max_retries=2, backoff_base=0.001)),
        stream=Node(stream, name="stream"),
        score=Node(score, name="score"),
        progress=Node(progress, name="progress"),
        join=join_k("join", 3, timeout_s=5.0),
        agent=agent_node(llm or demo_llm(), capture_content=capture_content),
        render=Node(render, name="render"),
    )
    return PenguiFlow(
        nodes["receive"].to(nodes["enrich"], nodes["stream"], nodes["score"]),
        nodes["enrich"].to(nodes["join"]),
        nodes["stream"].to(nodes["join"], nodes["progress"]),
        nodes["progress"].to(),
        nodes["score"].to(nodes["join"]),
        nodes["join"].to(nodes["agent"]),
        nodes["agent"].to(nodes["render"]),
        nodes["render"].to(),
        queue_maxsize=16,
        name="demo",
    )


def build_stalled_flow(hold: asyncio.Event) -> PenguiFlow:
    """``intake -> sink`` where the sink waits on ``hold``: its input queue fills to capacity."""

    async def intake(message: Message[Any], ctx: Context) -> Message[Any]:
        return message

    async def sink(message: Message[Any], ctx: Context) -> Message[Any]:
        await hold.wait()
        return message

    intake_node, sink_node = Node(intake, name="intake"), Node(sink, name="sink")
    return PenguiFlow(intake_node.to(sink_node), sink_node.to(), queue_maxsize=8, name="demo_stalled")


# Telemetry set-up ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Telemetry:
    handle: Any
    registry: Any
    server: Any
    metrics_url: str
    recorder: TraceRecorder
    traces_file: Path | None


def _start_telemetry(options: DemoOptions) -> _Telemetry:
    from prometheus_client import CollectorRegistry, start_http_server

    from .. import telemetry

    registry = CollectorRegistry()
    traces_file = None if options.otlp else Path(options.traces_file).resolve()
    if traces_file is not None:
        traces_file.write_text("")
    handle = telemetry.configure(
        service_name=os.environ.get("OTEL_SERVICE_NAME", "penguiflow-demo"),
        traces="otlp" if options.otlp else "jsonl",
        traces_file=str(traces_file) if traces_file is not None else None,
        otlp_endpoint=options.otlp,
        otlp_protocol="http/protobuf" if options.otlp else None,
        metrics=("prometheus",),
        prometheus_port=0,
        prometheus_registry=registry,
    )
    recorder = TraceRecorder()
    provider = handle.tracer_provider
    if provider is not None and hasattr(provider, "add_span_processor"):
        provider.add_span_processor(recorder)
    host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    server, _thread = start_http_server(options.port, addr=host, registry=registry)
    url = f"http://{host}:{server.server_port}/metrics"
    return _Telemetry(handle, registry, server, url, recorder, traces_file)


async def _stop_telemetry(tel: _Telemetry) -> None:
    from .. import telemetry

    await telemetry.shutdown(timeout=5.0)
    tel.server.shutdown()
    tel.server.server_close()


# Running ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    shown: str
    progress: int = 0
    chunks: int = 0
    gauges: dict[str, Any] | None = None
    answer: AgentAnswer | None = None


async def _one_trace(
    flow: PenguiFlow, message: Message[Any], cancel: bool, run: _Run, tel: _Telemetry
) -> str:
    await flow.emit(message, trace_id=message.trace_id)
    try:
        while True:
            result = await flow.fetch(trace_id=message.trace_id)
            payload = getattr(result, "payload", result)
            if isinstance(payload, StreamChunk):
                run.chunks += 1
                if cancel:
                    from prometheus_client import generate_latest

                    run.gauges = gauge_table(generate_latest(tel.registry).decode(), flow.name)
                    await flow.cancel(message.trace_id)
                continue
            if isinstance(payload, AgentAnswer) and message.trace_id == run.shown:
                run.answer = payload
            return "ok" if isinstance(payload, FinalAnswer) else "error"
    except TraceCancelled:
        return "cancelled"
    finally:
        run.progress += 1


async def _ticker(run: _Run, total: int) -> None:
    while True:
        sys.stdout.write(f"\rprocessed {run.progress}/{total} traces")
        sys.stdout.flush()
        await asyncio.sleep(0.1)


def _agent_report(answer: AgentAnswer | None) -> dict[str, Any]:
    return {
        "name": AGENT_NAME,
        "answer": answer.text if answer is not None else None,
        "finish_reason": answer.finish_reason if answer is not None else None,
    }


async def _run_main_flow(options: DemoOptions, tel: _Telemetry) -> dict[str, Any]:
    flow = build_demo_flow(capture_content=options.content_switch)
    messages = [
        Message(payload=f"order-{index}", headers=Headers(tenant="demo")) for index in range(options.messages)
    ]
    shown = messages[0].trace_id
    run = _Run(shown)
    tel.recorder.watch(shown)
    ticker = (
        None if options.as_json else asyncio.get_running_loop().create_task(_ticker(run, options.messages))
    )
    flow.run()
    try:
        outcomes = await asyncio.gather(
            *(
                _one_trace(flow, message, index == options.messages // 2, run, tel)
                for index, message in enumerate(messages)
            )
        )
    finally:
        if ticker is not None:
            ticker.cancel()
        await flow.stop()
    from prometheus_client import generate_latest

    return {
        "flow": flow.name,
        "traces": options.messages,
        "outcomes": {name: outcomes.count(name) for name in ("ok", "error", "cancelled")},
        "stream_chunks": run.chunks,
        "gauges": run.gauges or {"queues": [], "in_flight": {}},
        "metrics": metric_summary(generate_latest(tel.registry).decode(), flow.name),
        "shown_trace_id": shown,
        "agent": _agent_report(run.answer),
    }


def _print_report(report: dict[str, Any], tree: list[str]) -> None:
    print(f"\rprocessed {report['traces']}/{report['traces']} traces")
    print(f"flow {report['flow']!r}: {report['outcomes']}, {report['stream_chunks']} stream chunks")
    print(f"\nspan tree of trace {report['shown_trace_id']}:")
    for line in tree:
        print(f"  {line}")
    agent = report["agent"]
    print(f"\nagent {agent['name']!r} on that trace: finish reason {agent['finish_reason']}")
    print(f"  answer: {agent['answer']}")
    print("\ngauges while the flow ran (as /metrics served them):")
    print(f"  {'queue':<20} {'size':>5} {'capacity':>9}")
    for row in report["gauges"]["queues"]:
        capacity = "-" if row["capacity"] is None else row["capacity"]
        print(f"  {row['queue']:<20} {row['size']:>5} {capacity:>9}")
    print(f"  {'node':<20} {'in-flight':>9}")
    for name, count in report["gauges"]["in_flight"].items():
        print(f"  {name:<20} {count:>9}")
    print("\nmetrics:")
    for metric, values in report["metrics"].items():
        rendered = ", ".join(f"{key or '-'}={value:g}" for key, value in sorted(values.items()))
        print(f"  {metric}: {rendered or '(none)'}")


async def run_demo(options: DemoOptions) -> int:
    """Run the demo, print the report, and with ``serve`` keep serving until interrupted."""
    started = time.perf_counter()
    tel = _start_telemetry(options)
    where = options.otlp if options.otlp else str(tel.traces_file)
    if not options.as_json:
        print(f"metrics: {tel.metrics_url}")
        print(f"spans:   {where}", flush=True)
    try:
        report = await _run_main_flow(options, tel)
        report["metrics_url"] = tel.metrics_url
        report["traces_file"] = None if options.otlp else str(tel.traces_file)
        tree = render_tree(span_tree(tel.recorder.spans(), report["shown_trace_id"]))
        report["span_tree"] = tree
        report["seconds"] = round(time.perf_counter() - started, 3)
        if options.as_json:
            print(json.dumps(report), flush=True)
        else:
            _print_report(report, tree)
        if options.serve:
            await _serve(tel, options)
    finally:
        await _stop_telemetry(tel)
    return 0


async def _serve(tel: _Telemetry, options: DemoOptions) -> None:
    """Keep ``/metrics`` up: a stalled flow holds its sink; the main flow gets a trace a second.

    SIGINT and SIGTERM end it; further signals during the shutdown are absorbed.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    hold = asyncio.Event()
    stalled = build_stalled_flow(hold)
    llm = demo_llm()
    main = build_demo_flow(llm, capture_content=options.content_switch)
    stalled.run()
    main.run()
    feeder = loop.create_task(_fill(stalled))
    pulse = loop.create_task(_pulse(main, llm))
    print(f"serving {tel.metrics_url} until Ctrl-C", flush=True)
    try:
        await stop.wait()
    finally:
        for task in (feeder, pulse):
            task.cancel()
        await asyncio.gather(feeder, pulse, return_exceptions=True)
        await stalled.stop()
        await main.stop()


async def _fill(flow: PenguiFlow) -> None:
    index = 0
    while True:
        await flow.emit(Message(payload=index, headers=Headers(tenant="demo")))
        index += 1


async def _pulse(flow: PenguiFlow, llm: ScriptedLLM) -> None:
    index = 0
    while True:
        message: Message[Any] = Message(payload=f"tick-{index}", headers=Headers(tenant="demo"))
        await flow.emit(message, trace_id=message.trace_id)
        while not isinstance(
            getattr(await flow.fetch(trace_id=message.trace_id), "payload", None), FinalAnswer
        ):
            pass
        llm.calls.clear()  # nothing reads the call log here, and a long --serve must not grow it
        index += 1
        await asyncio.sleep(1.0)
