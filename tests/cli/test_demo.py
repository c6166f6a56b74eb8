"""``penguiflow-otel demo`` runs the bundled flow with no backend and reports what happened."""

from __future__ import annotations

import json
import subprocess
import sys


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "penguiflow_otel.cli._main", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_json_reports_one_cancelled_trace_and_the_rest_ok() -> None:
    """Every trace but the one cancelled mid-flight ends with a final answer, after streaming chunks."""
    done = _demo("--json", "--messages", "8")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcomes"] == {"ok": 7, "error": 0, "cancelled": 1}
    assert report["stream_chunks"] >= 7 * 3
    queues = {row["queue"]: row["capacity"] for row in report["gauges"]["queues"]}
    assert queues["receive->enrich"] == 16
    assert queues["render->egress"] == 0
    assert set(report["gauges"]["in_flight"]) == {
        "receive",
        "enrich",
        "stream",
        "score",
        "join",
        "progress",
        "render",
    }


def test_demo_rejects_a_non_numeric_message_count() -> None:
    """A bad ``--messages`` value exits non-zero with a message naming the problem."""
    done = _demo("--messages", "many")
    assert done.returncode == 2
    assert "expected a whole number, got 'many'" in done.stderr
