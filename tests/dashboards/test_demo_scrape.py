"""A real Prometheus scrapes ``penguiflow-otel demo --serve`` and sees the stalled flow's gauges."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bundle import prometheus_argv, prometheus_query
from loopback import Servers, start_demo_serving

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus not installed (Debian package)"
    ),
]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """``demo --serve`` on a run-time port; yields the ``host:port`` of its ``/metrics``."""
    proc, url = start_demo_serving(tmp_path)
    try:
        target = urlsplit(url).netloc
        assert target, "demo --serve printed no metrics URL"
        yield target
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        assert proc.stdout is not None
        proc.stdout.close()


def _value(answer: dict[str, object]) -> float | None:
    data = answer.get("data")
    assert isinstance(data, dict)
    result = data.get("result")
    assert isinstance(result, list)
    if len(result) != 1:
        return None
    return float(result[0]["value"][1])


@pytest.mark.timeout(60)
def test_prometheus_query_api_returns_the_stalled_queue_at_capacity(
    tmp_path: Path, servers: Servers, demo: str
) -> None:
    """Size, capacity and in-flight of the held sink's queue, as Prometheus stored them, match the flow."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: ['{demo}']}}]\n"
    )
    prometheus = servers.start("prometheus", prometheus_argv(config, tmp_path))
    selector = 'penguiflow_flow_name="demo_stalled"'
    queries = {
        "size": f'sum(penguiflow_queue_size{{{selector}, penguiflow_queue_name="intake->sink"}})',
        "capacity": f'sum(penguiflow_queue_capacity{{{selector}, penguiflow_queue_name="intake->sink"}})',
        "in_flight": f'sum(penguiflow_node_active{{{selector}, penguiflow_node_name="sink"}})',
        "limit": f'sum(penguiflow_node_active_limit{{{selector}, penguiflow_node_name="sink"}})',
    }
    expected = {"size": 8.0, "capacity": 8.0, "in_flight": 1.0, "limit": 1.0}
    seen: dict[str, float | None] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = {name: _value(prometheus_query(prometheus, query)) for name, query in queries.items()}
        if seen == expected:
            break
        time.sleep(0.25)
    assert seen == expected
