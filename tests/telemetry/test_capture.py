"""``capture_telemetry()`` itself and its pytest plugin (telemetry.md section 13)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from flowkit import make_message, run_once
from loopback import clean_env
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import HistogramDataPoint

from penguiflow_otel import Node, create
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import capture_telemetry

_INNER_CONFTEST = """
    pytest_plugins = ["penguiflow_otel.testing.pytest_plugin"]
"""

_INNER_TESTS = """
    import asyncio

    import pytest

    from penguiflow_otel import Headers, Message, Node, create


    async def passthrough(message, ctx):
        return message


    async def run_flow():
        flow = create(Node(passthrough, name="inner").to())
        flow.run()
        await flow.emit(Message(payload="x", headers=Headers(tenant="t")))
        await flow.fetch()
        await flow.stop()


    def test_sync_test_sees_the_flows_spans(telemetry):
        asyncio.run(run_flow())
        assert sorted(span.name for span in telemetry.spans()) == ["flow inner", "node inner"]
        assert telemetry.open_spans() == []


    @pytest.mark.asyncio
    async def test_async_test_sees_the_flows_spans(telemetry):
        await run_flow()
        assert sorted(span.name for span in telemetry.spans()) == ["flow inner", "node inner"]
        assert telemetry.metric("penguiflow.node.duration")


    def test_each_test_gets_a_fresh_capture(telemetry):
        assert telemetry.spans() == []
"""


async def passthrough_body(message: object, ctx: object) -> object:
    """Return the input."""
    return message


async def test_metric_returns_the_data_points_of_one_otel_metric() -> None:
    """.metric(name) collects now and returns that metric's points, with the runtime's attributes."""
    with capture_telemetry() as tel:
        await run_once(create(Node(passthrough_body, name="a").to()), make_message("x"))

        points = tel.metric(names.METRIC_NODE_DURATION.name)
        assert len(points) == 1
        assert isinstance(points[0], HistogramDataPoint)
        assert points[0].count == 1
        assert dict(points[0].attributes or {}) == {
            names.ATTR_FLOW_NAME: "a",
            names.ATTR_NODE_NAME: "a",
            names.ATTR_OUTCOME: names.OUTCOME_OK,
        }
        assert tel.metric("no.such.metric") == []


async def test_capture_telemetry_never_touches_the_otel_globals() -> None:
    """The global tracer and meter providers are the same objects before, inside and after the block."""
    before = (trace.get_tracer_provider(), metrics.get_meter_provider())
    with capture_telemetry() as tel:
        inside = (trace.get_tracer_provider(), metrics.get_meter_provider())
        await run_once(create(Node(passthrough_body, name="a").to()), make_message("x"))
        assert tel.spans()
    after = (trace.get_tracer_provider(), metrics.get_meter_provider())

    assert inside == before
    assert after == before
    assert inside[0] is not tel.tracer_provider
    assert inside[1] is not tel.meter_provider


def test_the_pytest_plugin_offers_the_telemetry_fixture(tmp_path: Path) -> None:
    """A project enabling the plugin through pytest_plugins gets a fresh capture per test as `telemetry`."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(_INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_INNER_TESTS))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
