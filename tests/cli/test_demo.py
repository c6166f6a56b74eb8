"""``penguiflow-otel demo`` runs the bundled flow with real telemetry and no backend."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from loopback import clean_env, start_demo_serving
from prometheus_client.parser import text_string_to_metric_families


def _demo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "penguiflow_otel.cli._main", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=clean_env(),
    )


def test_demo_json_reports_outcomes_span_tree_gauges_and_exported_spans(tmp_path: Path) -> None:
    """Every trace but the cancelled one ends with an answer; the shown trace's spans are in the file."""
    traces = tmp_path / "spans.jsonl"
    done = _demo("--json", "--messages", "8", "--traces-file", str(traces))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcomes"] == {"ok": 7, "error": 0, "cancelled": 1}
    assert report["stream_chunks"] >= 7 * 3
    assert report["span_tree"][0].startswith("flow demo")
    assert any("node enrich" in line and "attempt=1" in line for line in report["span_tree"])
    assert any("node join" in line and "links=3" in line for line in report["span_tree"])
    queues = {row["queue"]: row["capacity"] for row in report["gauges"]["queues"]}
    assert queues["receive->enrich"] == 16
    assert queues["join->agent"] == queues["agent->render"] == 16
    assert queues["render->egress"] is None
    nodes = {"receive", "enrich", "stream", "score", "join", "progress", "agent", "render"}
    assert set(report["gauges"]["in_flight"]) == nodes
    retries = report["metrics"]["penguiflow_node_retries_total"]["enrich"]
    assert 7.0 <= retries <= 8.0  # one per trace; the cancelled trace may be cut before its retry
    exported = [json.loads(line) for line in traces.read_text().splitlines()]
    shown = f"0x{report['shown_trace_id']}"
    assert {span["name"] for span in exported if span["context"]["trace_id"] == shown} >= {
        "flow demo",
        "node receive",
        "node render",
    }


def test_demo_writes_spans_to_the_default_file_in_the_working_directory(tmp_path: Path) -> None:
    """Without ``--traces-file`` the spans land in ``penguiflow-demo-traces.jsonl`` where it runs."""
    done = _demo("--messages", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "penguiflow-demo-traces.jsonl"
    assert f"spans:   {out}" in done.stdout
    assert out.read_text().count("\n") > 10


def test_demo_rejects_a_non_numeric_message_count() -> None:
    """A bad ``--messages`` value exits non-zero with a message naming the problem."""
    done = _demo("--messages", "many")
    assert done.returncode == 2
    assert "expected a whole number, got 'many'" in done.stderr


def _stalled_series(url: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("penguiflow_flow_name") != "demo_stalled":
                continue
            labels = sample.labels
            label = labels.get("penguiflow_queue_name") or labels.get("penguiflow_node_name", "")
            found[(sample.name, label)] = sample.value
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_demo_serve_keeps_a_stalled_queue_visible_and_stops_cleanly_on_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """With ``--serve`` the held sink's queue sits at capacity on ``/metrics``; a signal exits 0."""
    proc, url = start_demo_serving(tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 10
        series: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            series = _stalled_series(url)
            full = series.get(("penguiflow_queue_size", "intake->sink")) == 8.0
            if full and series.get(("penguiflow_node_active", "sink")) == 1.0:
                break
        assert series[("penguiflow_queue_size", "intake->sink")] == 8.0
        assert series[("penguiflow_queue_capacity", "intake->sink")] == 8.0
        assert series[("penguiflow_node_active", "sink")] == 1.0
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
