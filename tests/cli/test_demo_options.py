"""``penguiflow-otel demo`` options and pace (telemetry.md section 3.5): ``--port``, the host variable, the
progress line and a default run that finishes in under five seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from loopback import clean_env, free_port


def demo(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the demo with ``args`` in ``cwd`` and a clean environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "penguiflow_otel.cli._main", "demo", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        env=clean_env(**env),
    )


def test_port_fixes_the_metrics_port_on_loopback(tmp_path: Path) -> None:
    """--port N serves /metrics on 127.0.0.1:N and prints that URL."""
    port = free_port()
    done = demo("--messages", "2", "--port", str(port), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"metrics: http://127.0.0.1:{port}/metrics\n" in done.stdout


def test_the_prometheus_host_variable_overrides_the_host(tmp_path: Path) -> None:
    """OTEL_EXPORTER_PROMETHEUS_HOST replaces 127.0.0.1 in the served and printed address."""
    port = free_port()
    done = demo(
        "--messages", "2", "--port", str(port), cwd=tmp_path, OTEL_EXPORTER_PROMETHEUS_HOST="localhost"
    )

    assert done.returncode == 0, done.stderr
    assert f"metrics: http://localhost:{port}/metrics\n" in done.stdout


def test_a_default_run_shows_progress_and_finishes_within_five_seconds(tmp_path: Path) -> None:
    """The default 20 traces finish in under 5 s, with a progress line counting up to 20/20."""
    started = time.monotonic()
    done = demo(cwd=tmp_path)
    elapsed = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert elapsed < 5.0
    counts = [int(count) for count in re.findall(r"processed (\d+)/20 traces", done.stdout)]
    assert counts[-1] == 20
    assert counts == sorted(counts)
    assert len(counts) >= 2
