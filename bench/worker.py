"""One measurement in a fresh interpreter: ``python -m bench.worker --impl X --scenario Y --messages N``.

Prints one JSON line on stdout. Exit status 0 on a measurement (even one that lost messages: the parent
judges the counts), 3 when the implementation cannot be imported, 1 on any other failure. Standard
library only at import time: this module also runs under upstream's interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module, metadata
from time import perf_counter_ns
from types import ModuleType
from typing import Any

from . import api_flows, floor_flows, otel_setup, planner_runs
from .drive import (
    DriveResult,
    FlowHandle,
    RunHandle,
    drive,
    drive_cancel,
    drive_memory,
    drive_runs,
    drive_stream,
    rss_mb,
)
from .scenarios import SCENARIOS, Scenario

__all__ = ["main"]

API_MODULES = {"otel": "penguiflow_otel", "upstream": "penguiflow"}
EXIT_UNAVAILABLE = 3


class Unavailable(Exception):
    """The implementation under test cannot be imported or lacks a name the benchmark uses."""


@dataclass(frozen=True, slots=True)
class Setup:
    """How one implementation builds the scenario's graph (or its runs, ``runs``) and items."""

    build: Callable[[], FlowHandle] | None
    make: Callable[[int], object]
    key: Callable[[object], int]
    silent_cancel: bool = False
    runs: Callable[[], RunHandle] | None = None


def _import(module: str, names: tuple[str, ...]) -> ModuleType:
    try:
        mod = import_module(module)
    except ImportError as exc:
        raise Unavailable(f"import {module}: {type(exc).__name__}: {exc}") from exc
    missing = [name for name in names if not hasattr(mod, name)]
    if missing:
        raise Unavailable(f"{module} has no {', '.join(missing)}")
    return mod


ENVELOPE_NAMES = ("Headers", "Message", "StreamChunk")


def _envelope_module(impl: str) -> ModuleType:
    """Where ``impl`` takes ``Headers``, ``Message`` and ``StreamChunk`` from."""
    if impl in API_MODULES:
        return _import(API_MODULES[impl], ENVELOPE_NAMES)
    # The floor carries this project's envelope. Until the facade re-exports it, take it from its module.
    try:
        return _import("penguiflow_otel", ENVELOPE_NAMES)
    except Unavailable:
        return _import("penguiflow_otel._message", ENVELOPE_NAMES)


def _int_key(result: object) -> int:
    return result if type(result) is int else -1


def _joined_key(payload: object) -> int:
    """The ``i`` of a joined payload: a list of ``FANOUT`` copies of the int ``i``; else ``-1``."""
    if type(payload) is not list or len(payload) != api_flows.FANOUT:
        return -1
    first = _int_key(payload[0])
    return first if all(p == first for p in payload) else -1


def _items(
    scenario: Scenario, envelope: ModuleType | None
) -> tuple[Callable[[int], object], Callable[[object], int]]:
    if envelope is None:
        return int, _int_key
    headers_cls, message_cls = envelope.Headers, envelope.Message
    unwrap = _joined_key if scenario.graph == "fanout4_join" else _int_key

    def make(i: int) -> object:
        return message_cls(payload=i, headers=headers_cls(tenant="bench"))

    def key(result: object) -> int:
        return unwrap(result.payload) if isinstance(result, message_cls) else -1

    return make, key


def _planner_setup(impl: str) -> Setup:
    """The planner scenario: no graph; ``make`` is building one run's scripted replies (``make us``)."""
    if impl not in API_MODULES:
        raise ValueError(f"the planner scenario runs on {', '.join(API_MODULES)}, not {impl!r}")
    module = API_MODULES[impl]
    _import(f"{module}.planner", ("ReactPlanner",))
    if impl == "otel":
        _import(f"{module}.testing", ("ScriptedLLM",))
    return Setup(None, planner_runs.replies, _int_key, runs=lambda: planner_runs.build(module))


def _setup(scenario: Scenario, impl: str) -> Setup:
    if scenario.driver == "planner":
        return _planner_setup(impl)
    envelope = _envelope_module(impl) if scenario.envelope else None
    make, key = _items(scenario, envelope)
    if impl in API_MODULES:
        api = _import(API_MODULES[impl], api_flows.REQUIRED_NAMES)
        api_build = api_flows.GRAPHS[scenario.graph]
        # Upstream's fetch(trace_id=...) never returns for a cancelled trace (see drive_cancel).
        return Setup(lambda: api_build(api), make, key, silent_cancel=impl == "upstream")
    if impl == "asyncio":
        floor_build = floor_flows.GRAPHS[scenario.graph]
        return Setup(lambda: floor_build(envelope), make, key)
    raise ValueError(f"unknown impl {impl!r}; choose from otel, upstream, asyncio")


def _percentile_ms(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def _construct_us(make: Callable[[int], object], count: int) -> float:
    start = perf_counter_ns()
    for i in range(count):
        make(i)
    return (perf_counter_ns() - start) / 1e3 / max(count, 1)


def _default_warmup(scenario: Scenario, messages: int) -> int:
    if scenario.driver == "memory":
        return 0  # its first segment is the warm-up
    if scenario.driver == "stream":
        return min(10, messages // 10)
    return min(1000, messages // 10)


async def _run_driver(
    scenario: Scenario, setup: Setup, flow: FlowHandle, count: int, budget_s: float
) -> DriveResult:
    if scenario.driver == "cancel":
        return await drive_cancel(
            flow,
            setup.make,
            setup.key,
            count,
            budget_s,
            concurrency=min(scenario.concurrency, max(count, 1)),
            silent_cancel=setup.silent_cancel,
        )
    if scenario.driver == "stream":
        return await drive_stream(flow, setup.make, count, budget_s)
    if scenario.driver == "memory":
        return await drive_memory(flow, setup.make, setup.key, count, budget_s)
    return await drive(flow, setup.make, setup.key, count, budget_s)


async def _measure(
    scenario: Scenario, setup: Setup, messages: int, warmup: int, budget_s: float
) -> tuple[DriveResult, DriveResult | None]:
    """The measured drive, and the warm-up's when there was one (its counts are checked too)."""
    if setup.runs is not None:
        runs = setup.runs()
        try:
            warm = await drive_runs(runs, warmup, budget_s) if warmup else None
            return await drive_runs(runs, messages, budget_s), warm
        finally:
            await runs.stop()
    assert setup.build is not None
    flow = setup.build()
    try:
        warm = await _run_driver(scenario, setup, flow, warmup, budget_s) if warmup else None
        return await _run_driver(scenario, setup, flow, messages, budget_s), warm
    finally:
        await flow.stop()


def install_telemetry(scenario: Scenario) -> otel_setup.Installed | None:
    """Set the scenario's OTel providers as the globals (before the flow is built); ``None`` when off.

    Raises:
        Unavailable: the OTel SDK or an exporter the mode needs cannot be imported.
    """
    if scenario.telemetry == "off":
        return None
    try:
        return otel_setup.install(scenario.telemetry)
    except ImportError as exc:
        raise Unavailable(f"telemetry {scenario.telemetry}: {type(exc).__name__}: {exc}") from exc


def finish_telemetry(
    installed: otel_setup.Installed, impl: str, run: DriveResult, warm: DriveResult | None
) -> dict[str, Any]:
    """Shut the providers down and report what they saw; ``telemetry_problem`` when they saw nothing.

    Spans must have reached the exporter in every mode but 1 % (a smoke run may sample no trace at all),
    and under our runtime the Prometheus registry must hold the runtime's own series: otherwise the
    providers were not picked up and the numbers would be those of an untraced flow.
    """
    units = run.sent + (warm.sent if warm is not None else 0)
    out: dict[str, Any] = dict(installed.finish(units))
    problems = []
    if installed.mode != "sampled_1pct" and not out["spans_exported"]:
        problems.append("no span reached the exporter")
    if impl == "otel" and installed.registry is not None and not out.get("metric_samples"):
        problems.append("no penguiflow series in the Prometheus registry")
    if problems:
        out["telemetry_problem"] = f"telemetry {installed.mode}: {'; '.join(problems)}"
    return out


def _runtime_version(impl: str) -> str | None:
    distribution = {"otel": "penguiflow-otel", "upstream": "penguiflow"}.get(impl)
    if distribution is None:
        return None
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _report(
    args: argparse.Namespace, run: DriveResult, warm: DriveResult | None, rss_import: float | None
) -> dict[str, Any]:
    elapsed_s = run.elapsed_ns / 1e9
    latencies = sorted(run.latencies_ns)
    units = run.timed_units
    return {
        "impl": args.impl,
        "scenario": args.scenario,
        "sent": run.sent,
        "results": run.results,
        "invalid": run.invalid,
        "timed_out": run.timed_out,
        "warmup": None
        if warm is None
        else {"sent": warm.sent, "results": warm.results, "invalid": warm.invalid},
        "elapsed_s": elapsed_s,
        "msgs_per_s": units / elapsed_s if elapsed_s else 0.0,
        "us_per_msg": elapsed_s * 1e6 / units if units else None,
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_import_mb": rss_import,
        "modules_loaded": sorted(m for m in ("penguiflow", "penguiflow_otel") if m in sys.modules),
        "python": sys.version.split()[0],
        "runtime_version": _runtime_version(args.impl),
        **run.extras,
        "series": _thin(run.series),
    }


def _thin(series: dict[str, list[list[float]]], points: int = 200) -> dict[str, list[list[float]]]:
    """At most about ``points`` evenly spaced entries per series (first and last kept), for the JSON."""
    out = {}
    for name, values in series.items():
        step = max(1, len(values) // points)
        kept = values[::step]
        if values and kept[-1] is not values[-1]:
            kept.append(values[-1])
        out[name] = [[round(x, 4) for x in row] for row in kept]
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--impl", required=True, choices=("otel", "upstream", "asyncio"))
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=None, help="default: messages // 10, at most 1000")
    parser.add_argument("--budget", type=float, default=None, help="seconds before a drive gives up")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its JSON line."""
    args = _parse(argv)
    scenario = SCENARIOS[args.scenario]
    if scenario.kind != "flow":
        raise SystemExit(f"scenario {scenario.name!r} is not run by the worker (kind {scenario.kind!r})")
    try:
        setup = _setup(scenario, args.impl)
        installed = install_telemetry(scenario)
    except Unavailable as exc:
        print(json.dumps({"impl": args.impl, "scenario": args.scenario, "unavailable": str(exc)}))
        return EXIT_UNAVAILABLE
    rss_import = rss_mb()
    warmup = _default_warmup(scenario, args.messages) if args.warmup is None else args.warmup
    budget = scenario.budget_s if args.budget is None else args.budget
    run, warm = asyncio.run(_measure(scenario, setup, args.messages, warmup, budget))
    record = _report(args, run, warm, rss_import)
    if installed is not None:
        record.update(finish_telemetry(installed, args.impl, run, warm))
    record["construct_us"] = _construct_us(setup.make, min(args.messages, 100_000))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
