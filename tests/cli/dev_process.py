"""Starting ``penguiflow-otel dev`` as a real process for the CLI tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loopback import clean_env

CONSOLE_SCRIPT = Path(sys.executable).with_name("penguiflow-otel")


def start_dev(project: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``dev --port 0`` on ``project``; return the process and its ``serving ...`` line.

    Blocks until dev prints its first line; if that is not the serving line, the process is killed and
    the assertion names the line and dev's stderr.
    """
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "dev", "--project-root", str(project), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(**env),
    )
    assert process.stdout is not None
    first = process.stdout.readline().rstrip()  # blocks until dev serves or exits
    if not first.startswith("serving "):
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"dev did not start: {first!r} {err}")
    return process, first
