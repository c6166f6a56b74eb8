"""Where and when a run happened: machine, interpreters, date and commit (read-only git queries)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from .impls import ROOT
from .upstream_env import UPSTREAM_PIN, UpstreamEnvError, upstream_pins

__all__ = ["describe", "load_average"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    # GIT_OPTIONAL_LOCKS=0 keeps `git status` from refreshing the index: these queries change nothing.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages; other work on the machine skews a run."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _upstream_env() -> list[str]:
    try:
        return [f"{name}=={version}" for name, version in upstream_pins().items()]
    except UpstreamEnvError as exc:
        return [str(exc)]


def describe() -> dict[str, Any]:
    """Metadata that a README table built from this run must quote."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "upstream_pin": f"penguiflow=={UPSTREAM_PIN}",
        "upstream_env": _upstream_env(),
        "load_before": load_average(),
    }
