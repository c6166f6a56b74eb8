"""One measurement in a fresh interpreter: ``python -m bench.worker --impl X --scenario Y --messages N``.

Prints one JSON line on stdout. Exit status 0 on a measurement (even one that lost messages: the parent
judges the counts), 3 when the implementation cannot be imported, 1 on any other failure. Standard
library only at import time: this module also runs under upstream's interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module, metadata
from time import perf_counter_ns
from types import ModuleType
from typing import Any

from . import api_flows, floor_flows
from .drive import DriveResult, FlowHandle, drive
from .scenarios import SCENARIOS, Scenario

__all__ = ["main"]

API_MODULES = {"otel": "penguiflow_otel", "upstream": "penguiflow"}
EXIT_UNAVAILABLE = 3


class Unavailable(Exception):
    """The implementation under test cannot be imported or lacks a name the benchmark uses."""


@dataclass(frozen=True, slots=True)
class Setup:
    """How one implementation builds the scenario's graph and items."""

    build: Callable[[], FlowHandle]
    make: Callable[[int], object]
    key: Callable[[object], int]


def _import(module: str, names: tuple[str, ...]) -> ModuleType:
    try:
        mod = import_module(module)
    except ImportError as exc:
        raise Unavailable(f"import {module}: {type(exc).__name__}: {exc}") from exc
    missing = [name for name in names if not hasattr(mod, name)]
    if missing:
        raise Unavailable(f"{module} has no {', '.join(missing)}")
    return mod


def _envelope_classes(impl: str) -> tuple[Any, Any]:
    if impl in API_MODULES:
        mod = _import(API_MODULES[impl], ("Headers", "Message"))
        return mod.Headers, mod.Message
    # The floor carries this project's envelope. Until the facade re-exports it, take it from its module.
    try:
        mod = _import("penguiflow_otel", ("Headers", "Message"))
    except Unavailable:
        mod = _import("penguiflow_otel._message", ("Headers", "Message"))
    return mod.Headers, mod.Message


def _int_key(result: object) -> int:
    return result if type(result) is int else -1


def _items(scenario: Scenario, impl: str) -> tuple[Callable[[int], object], Callable[[object], int]]:
    if not scenario.envelope:
        return int, _int_key
    headers_cls, message_cls = _envelope_classes(impl)

    def make(i: int) -> object:
        return message_cls(payload=i, headers=headers_cls(tenant="bench"))

    def key(result: object) -> int:
        return _int_key(result.payload) if isinstance(result, message_cls) else -1

    return make, key


def _setup(scenario: Scenario, impl: str) -> Setup:
    make, key = _items(scenario, impl)
    if impl in API_MODULES:
        api = _import(API_MODULES[impl], api_flows.REQUIRED_NAMES)
        api_build = api_flows.GRAPHS[scenario.graph]
        return Setup(lambda: api_build(api), make, key)
    if impl == "asyncio":
        return Setup(floor_flows.GRAPHS[scenario.graph], make, key)
    raise ValueError(f"unknown impl {impl!r}; choose from otel, upstream, asyncio")


def _rss_now_mb() -> float | None:
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentile_ms(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def _construct_us(make: Callable[[int], object], count: int) -> float:
    start = perf_counter_ns()
    for i in range(count):
        make(i)
    return (perf_counter_ns() - start) / 1e3 / max(count, 1)


async def _measure(setup: Setup, messages: int, warmup: int, budget_s: float) -> DriveResult:
    flow = setup.build()
    try:
        if warmup:
            await drive(flow, setup.make, setup.key, warmup, budget_s)
        return await drive(flow, setup.make, setup.key, messages, budget_s)
    finally:
        await flow.stop()


def _runtime_version(impl: str) -> str | None:
    distribution = {"otel": "penguiflow-otel", "upstream": "penguiflow"}.get(impl)
    if distribution is None:
        return None
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _report(args: argparse.Namespace, run: DriveResult, rss_import: float | None) -> dict[str, Any]:
    elapsed_s = run.elapsed_ns / 1e9
    latencies = sorted(run.latencies_ns)
    return {
        "impl": args.impl,
        "scenario": args.scenario,
        "sent": run.sent,
        "results": run.results,
        "invalid": run.invalid,
        "timed_out": run.timed_out,
        "elapsed_s": elapsed_s,
        "msgs_per_s": run.results / elapsed_s if elapsed_s else 0.0,
        "us_per_msg": elapsed_s * 1e6 / run.results if run.results else None,
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_import_mb": rss_import,
        "modules_loaded": sorted(m for m in ("penguiflow", "penguiflow_otel") if m in sys.modules),
        "python": sys.version.split()[0],
        "runtime_version": _runtime_version(args.impl),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--impl", required=True, choices=("otel", "upstream", "asyncio"))
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=None, help="default: messages // 10, at most 1000")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds before a drive gives up")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its JSON line."""
    args = _parse(argv)
    scenario = SCENARIOS[args.scenario]
    if scenario.kind != "flow":
        raise SystemExit(f"scenario {scenario.name!r} is not run by the worker (kind {scenario.kind!r})")
    try:
        setup = _setup(scenario, args.impl)
    except Unavailable as exc:
        print(json.dumps({"impl": args.impl, "scenario": args.scenario, "unavailable": str(exc)}))
        return EXIT_UNAVAILABLE
    rss_import = _rss_now_mb()
    warmup = min(1000, args.messages // 10) if args.warmup is None else args.warmup
    run = asyncio.run(_measure(setup, args.messages, warmup, args.budget))
    record = _report(args, run, rss_import)
    record["construct_us"] = _construct_us(setup.make, args.messages)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
