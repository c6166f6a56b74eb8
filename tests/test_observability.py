"""Event fields, logging and the message bus (runtime.md sections 19.1, 19.5 and 19.8)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from flowkit import EventRecorder, make_message, passthrough, promptly, settle, wait_forever

from penguiflow_otel import BusEnvelope, Context, Node, create

_LOGGERS = (
    "penguiflow_otel",
    "penguiflow_otel.core",
    "penguiflow_otel.middlewares",
    "penguiflow_otel.patterns",
    "penguiflow_otel.telemetry",
    "penguiflow_otel.planner",
)


async def test_cancel_events_carry_the_depths_of_the_open_sea_and_rookery_contexts(
    recorder: EventRecorder,
) -> None:
    """trace_cancel_start reads OpenSea's edges; trace_cancel_finish reads the Rookery's (unfetched)."""
    held, other = Node(wait_forever, name="held"), Node(passthrough, name="other")
    flow = create(held.to(), other.to(), middlewares=[recorder])
    flow.run()
    first = make_message("held")
    await flow.emit(first, to=held)
    await recorder.wait_for("node_start", "held")
    await flow.emit(make_message("queued", trace_id=first.trace_id), to=held)
    await flow.emit(make_message("unrelated"), to=other)
    await recorder.wait_for("node_success", "other")

    assert await flow.cancel(first.trace_id)
    await recorder.wait_for("trace_cancel_finish")
    start, finish = recorder.first("trace_cancel_start"), recorder.first("trace_cancel_finish")

    assert (start.node_name, start.outgoing_edges, start.queue_depth_in, start.queue_depth_out) == (
        "OpenSea",
        2,
        0,
        1,
    )
    assert (finish.node_name, finish.outgoing_edges, finish.queue_depth_in, finish.queue_depth_out) == (
        "Rookery",
        0,
        1,
        0,
    )
    assert start.queue_maxsize == finish.queue_maxsize == 64
    await flow.stop()


def test_importing_the_package_installs_no_log_handlers() -> None:
    """After importing the runtime, telemetry and planner, no package logger has a handler."""
    code = (
        "import json, logging\n"
        "import penguiflow_otel, penguiflow_otel.telemetry, penguiflow_otel.planner\n"
        "import penguiflow_otel.testing\n"
        f"names = {list(_LOGGERS)!r}\n"
        "report = {name: len(logging.getLogger(name).handlers) for name in names}\n"
        "report['root'] = len(logging.getLogger().handlers)\n"
        "print(json.dumps(report))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report == dict.fromkeys((*_LOGGERS, "root"), 0)


async def test_running_a_flow_installs_no_log_handlers() -> None:
    """Running a flow that logs WARNING and ERROR events adds no handler to the package loggers."""
    import logging

    before = {name: list(logging.getLogger(name).handlers) for name in _LOGGERS}

    async def fail(message: Any, ctx: Context) -> Any:
        raise ValueError("boom")

    flow = create(Node(fail, name="fail").to())
    flow.run()
    await flow.emit(make_message("x"))
    await promptly(lambda: flow.statistics().active_traces == 0)
    await flow.stop()

    assert {name: list(logging.getLogger(name).handlers) for name in _LOGGERS} == before


class HeldBus:
    """A bus whose publish of the ingress put waits for ``release``; other publishes pass."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.finished: list[str] = []

    async def publish(self, envelope: BusEnvelope) -> None:
        if envelope.source == "OpenSea":
            self.started.set()
            await self.release.wait()
        self.finished.append(envelope.edge)


async def test_stop_awaits_the_publish_task_of_emit_nowait_without_cancelling_it() -> None:
    """emit_nowait publishes in a task; stop() waits for it to finish rather than cancelling it."""
    bus = HeldBus()
    flow = create(Node(passthrough, name="node").to(), message_bus=bus)
    flow.run()
    flow.emit_nowait(make_message("m"))
    async with asyncio.timeout(2):
        await bus.started.wait()
    await promptly(lambda: "node->Rookery" in bus.finished)

    stopping = asyncio.create_task(flow.stop())
    await settle()
    assert not stopping.done()
    assert "OpenSea->node" not in bus.finished

    bus.release.set()
    async with asyncio.timeout(2):
        await stopping
    assert bus.finished == ["node->Rookery", "OpenSea->node"]
