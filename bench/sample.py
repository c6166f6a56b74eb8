"""Run one measurement in a fresh subprocess and judge what it printed."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, Literal

from .impls import ROOT, Impl, Interpreter
from .scenarios import Scenario

__all__ = ["SampleResult", "command", "run_sample", "timeout_s"]

EXIT_UNAVAILABLE = 3  # the worker's and the import probe's "cannot import the implementation"
IMPORT_TIMEOUT_S = 60.0
# A flow worker gets its drive budget plus this for starting up, warming up and reporting.
FLOW_MARGIN_S = 120.0

# Which of the two runtimes may be loaded in a worker of each implementation: the floor carries this
# project's Message; upstream's worker must never see this project's package, nor ours upstream's.
ALLOWED_MODULES = {"otel": {"penguiflow_otel"}, "upstream": {"penguiflow"}, "asyncio": {"penguiflow_otel"}}


@dataclass(frozen=True, slots=True)
class SampleResult:
    """One measurement: its record when ``status`` is ``ok``, else why not."""

    status: Literal["ok", "unavailable", "failed"]
    record: dict[str, Any]
    error: str = ""


def command(interp: Interpreter, impl: Impl, scenario: Scenario, messages: int) -> list[str]:
    """The argv of one measurement."""
    python = str(interp.python)
    if scenario.kind == "import":
        return [python, "-I", str(ROOT / "bench" / "import_probe.py"), impl.module, *impl.required]
    return [
        *(python, "-m", "bench.worker", "--impl", impl.name),
        *("--scenario", scenario.name, "--messages", str(messages)),
    ]


def timeout_s(scenario: Scenario) -> float:
    """How long the parent waits for one measurement of ``scenario`` before killing it."""
    return scenario.budget_s + FLOW_MARGIN_S if scenario.kind == "flow" else IMPORT_TIMEOUT_S


def _check_flow(impl: Impl, record: dict[str, Any]) -> str:
    warm = record.get("warmup")
    if warm and (warm["results"] != warm["sent"] or warm["invalid"]):
        return f"warm-up: {warm['results']} of {warm['sent']} results, {warm['invalid']} invalid"
    if record["timed_out"]:
        return f"timed out after {record['elapsed_s']:.1f} s"
    if record["results"] != record["sent"]:
        return f"dropped: fetched {record['results']} distinct results of {record['sent']} sent"
    if record["invalid"]:
        return f"{record['invalid']} unexpected or duplicate results"
    if record.get("telemetry_problem"):
        return str(record["telemetry_problem"])
    foreign = set(record["modules_loaded"]) - ALLOWED_MODULES[impl.name]
    if foreign:
        return f"loaded {', '.join(sorted(foreign))}, which this implementation must not use"
    return ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_sample(interp: Interpreter, impl: Impl, scenario: Scenario, messages: int) -> SampleResult:
    """Run one measurement of ``scenario`` on ``impl`` and check it."""
    argv = command(interp, impl, scenario, messages)
    limit = timeout_s(scenario)
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=interp.env,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SampleResult("failed", {}, f"no answer within {limit:.0f} s")
    try:
        record: dict[str, Any] = json.loads(_last_line(done.stdout))
    except json.JSONDecodeError:
        tail = _last_line(done.stderr) or _last_line(done.stdout) or "no output"
        return SampleResult("failed", {}, f"exit {done.returncode}: {tail}")
    if done.returncode == EXIT_UNAVAILABLE:
        return SampleResult("unavailable", record, record.get("unavailable", "unavailable"))
    if done.returncode != 0:
        return SampleResult("failed", record, f"exit {done.returncode}: {_last_line(done.stderr)}")
    problem = _check_flow(impl, record) if scenario.kind == "flow" else ""
    return SampleResult("failed" if problem else "ok", record, problem)
