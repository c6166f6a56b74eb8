"""Spans from ``configure(traces="otlp")`` reach a real OTLP collector, over OTLP/HTTP and OTLP/gRPC.

The collector is rotel (backends.md), started on run-time loopback ports and forwarding over
OTLP/HTTP to a sink in this test that decodes each ``ExportTraceServiceRequest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from otel_support import OtlpSink, RotelAgent, clean_env, rotel_agent, run_child

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
