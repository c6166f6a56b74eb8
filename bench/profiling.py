"""Profile one scenario on one implementation in-process: ``uv run python -m bench.profiling chain_envelope``.

Runs exactly what ``bench.worker`` measures (same graph, items, warm-up and driver) under ``cProfile``
and prints the functions with the most self time, then the most cumulative time. ``--pyinstrument``
uses pyinstrument's sampling profiler instead, when it is installed (``uv run --with pyinstrument``);
it distorts small functions less. cProfile adds a fixed cost to every call, so read its numbers as
shares, not as absolute microseconds. Numbers from here never go in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
from typing import Any

from .scenarios import SCENARIOS
from .worker import _default_warmup, _measure, _setup, finish_telemetry, install_telemetry

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    flows = sorted(name for name, s in SCENARIOS.items() if s.kind == "flow")
    parser.add_argument("scenario", choices=flows)
    parser.add_argument("--impl", default="otel", choices=("otel", "upstream", "asyncio"))
    parser.add_argument("--messages", type=int, default=None, help="default: the scenario's full count")
    parser.add_argument("--top", type=int, default=25, help="rows per listing")
    parser.add_argument("--pyinstrument", action="store_true", help="sample with pyinstrument instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Profile the measurement and print the listings; exit 1 if it lost or invented results."""
    args = _parse(argv)
    scenario = SCENARIOS[args.scenario]
    messages = scenario.messages if args.messages is None else args.messages
    setup = _setup(scenario, args.impl)
    installed = install_telemetry(scenario)  # a telemetry scenario's providers, as the worker sets them
    warmup = _default_warmup(scenario, messages)

    def measure() -> Any:
        return asyncio.run(_measure(scenario, setup, messages, warmup, scenario.budget_s))

    if args.pyinstrument:
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.0005, async_mode="disabled")
        sampler.start()
        run, _ = measure()
        sampler.stop()
        print(sampler.output_text(unicode=False, color=False, show_all=False))
    else:
        profiler = cProfile.Profile()
        profiler.enable()
        run, _ = measure()
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    print(f"{args.scenario} on {args.impl}: {run.results} of {run.sent} results, {run.invalid} invalid")
    problem = ""
    if installed is not None:
        seen = finish_telemetry(installed, args.impl, run, None)
        problem = seen.get("telemetry_problem", "")
        print(f"telemetry {installed.mode}: {seen['spans_per_msg']:.2f} spans/msg exported {problem}")
    return 0 if run.results == run.sent and not run.invalid and not run.timed_out and not problem else 1


if __name__ == "__main__":
    sys.exit(main())
