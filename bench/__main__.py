"""``python -m bench``: run the benchmark suite, print the table, write JSON under ``bench/results/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .impls import IMPLS
from .machine import describe, load_average
from .report import render, summaries, write_json
from .runner import Plan, run, selected_impls
from .scenarios import PLANNED, SCENARIOS

RESULTS = Path(__file__).resolve().parent / "results"
FULL_REPS, QUICK_REPS = 7, 3


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REPS} reps, fewer messages (not for README)"
    )
    parser.add_argument("--impl", action="append", choices=list(IMPLS), help="repeatable; default: all")
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="repeatable; default: all"
    )
    parser.add_argument(
        "--reps", type=int, help=f"repetitions (default {FULL_REPS}, {QUICK_REPS} with --quick)"
    )
    parser.add_argument("--messages", type=int, help="override messages per flow measurement")
    parser.add_argument("--list", action="store_true", help="list scenarios, implemented and planned")
    return parser.parse_args(argv)


def _list() -> str:
    lines = [f"{s.name:<16} {s.kind:<7} {s.summary}" for s in SCENARIOS.values()]
    return "\n".join(["implemented:", *lines, "planned:", *(f"  {p}" for p in PLANNED)])


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 1 if any measurement failed (dropped results, crash), 0 otherwise."""
    args = _parse(argv)
    if args.list:
        print(_list())
        return 0
    names = args.scenario or list(SCENARIOS)
    plan = Plan(
        scenarios=tuple(SCENARIOS[name] for name in SCENARIOS if name in names),
        impls=selected_impls(args.impl),
        reps=args.reps or (QUICK_REPS if args.quick else FULL_REPS),
        quick=args.quick,
        messages_override=args.messages,
    )
    meta = describe()
    outcomes = run(plan)
    meta["load_after"] = load_average()
    sums = summaries(plan, outcomes)
    print(render(plan, sums))
    dirty = " (dirty)" if meta["dirty"] else ""
    print(f"\n{meta['date']}  commit {meta['commit'][:12]}{dirty}  {meta['cpu']} x{meta['cpus']}")
    print(f"load average before {meta['load_before']}, after {meta['load_after']}")
    path = write_json(RESULTS, meta, plan, outcomes, sums)
    print(f"{'QUICK run: not for the README. ' if plan.quick else ''}JSON: {path}")
    failed = any(o.status == "failed" for by in outcomes.values() for o in by.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
