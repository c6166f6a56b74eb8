"""Spans from ``configure(traces="otlp")`` reach a real OTLP collector, over OTLP/HTTP and OTLP/gRPC.

The collector is rotel (backends.md), started on run-time loopback ports and forwarding over
OTLP/HTTP to a sink in this test that decodes each ``ExportTraceServiceRequest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import clean_env
from otel_support import OtlpSink, RotelAgent, rotel_agent, run_child

ROTEL = rotel_agent()

pytestmark = [
    pytest.mark.backend,
    pytest.mark.timeout(60),
    pytest.mark.skipif(ROTEL is None, reason="rotel-agent is not installed (rotel wheel: Linux x86_64 only)"),
]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[RotelAgent, OtlpSink]]:
    assert ROTEL is not None
    sink = OtlpSink()
    agent = RotelAgent(ROTEL, sink.url, tmp_path)
    try:
        agent.start()
        yield agent, sink
    finally:
        agent.stop()
        sink.close()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_the_collector(protocol: str, collector: tuple[RotelAgent, OtlpSink]) -> None:
    """Every span of one trace arrives at the collector's downstream, with its parent and resource."""
    agent, sink = collector
    port = agent.http_port if protocol == "http/protobuf" else agent.grpc_port
    kwargs = {
        "traces": "otlp",
        "otlp_endpoint": f"http://127.0.0.1:{port}",
        "otlp_protocol": protocol,
        "metrics": "none",
        "service_name": f"rotel-{protocol}",
    }
    params = {"kwargs": kwargs, "spans": ["root", "fetch", "render"], "shutdown_timeout": 10}
    report = run_child("configure", params, clean_env()).report
    assert report["shutdown_result"] is True  # shutdown() flushed the batch
    spans = sink.wait_for_spans(3, timeout=10)
    assert sorted(span.name for span in spans) == ["fetch", "render", "root"], agent.log_tail()
    assert {span.trace_id for span in spans} == {report["trace_id"]}
    assert {span.service_name for span in spans} == {f"rotel-{protocol}"}
    parents = {span.name: span.parent_span_id for span in spans}
    assert parents == {"root": "", "fetch": report["root_span_id"], "render": report["root_span_id"]}


def test_demo_sends_every_span_of_its_flow_over_otlp_http(collector: tuple[RotelAgent, OtlpSink]) -> None:
    """``penguiflow-otel demo --otlp`` exports the flow's spans to the collector instead of a file."""
    import json
    import subprocess
    import sys

    agent, sink = collector
    done = subprocess.run(
        [sys.executable, "-m", "penguiflow_otel.cli._main", "demo", "--json", "--messages", "4",
         "--otlp", f"http://127.0.0.1:{agent.http_port}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["traces_file"] is None
    shown = report["shown_trace_id"]
    expected = len(report["span_tree"])
    received = sink.wait_for_spans(expected, timeout=10)
    for _ in range(100):  # the collector forwards in its own time; poll until the shown trace is whole
        if len([span for span in received if span.trace_id == shown]) >= expected:
            break
        received = sink.wait_for_spans(len(received) + 1, timeout=0.1)
    mine = [span for span in received if span.trace_id == shown]
    assert len(mine) == expected, agent.log_tail()
    names = {span.name for span in mine}
    assert {"flow demo", "node receive", "node enrich", "node join", "node render"} <= names
    assert {span.service_name for span in received} == {"penguiflow-demo"}
