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
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REPS} reps, fewer messages (not for README)"
    )
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="CI check: every scenario once with a tiny count; fails only on a crash, hang or lost result",
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
    planned = [f"  {p}" for p in PLANNED] or ["  none"]
    return "\n".join(["implemented:", *lines, "planned:", *planned])


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 1 if any measurement failed (dropped results, crash, hang), 0 otherwise."""
    args = _parse(argv)
    if args.list:
        print(_list())
        return 0
    names = args.scenario or list(SCENARIOS)
    plan = Plan(
        scenarios=tuple(SCENARIOS[name] for name in SCENARIOS if name in names),
        impls=selected_impls(args.impl),
        reps=1 if args.smoke else args.reps or (QUICK_REPS if args.quick else FULL_REPS),
        quick=args.quick or args.smoke,
        messages_override=args.messages,
        smoke=args.smoke,
        impls_chosen=bool(args.impl),
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
    label = (
        "SMOKE run: counts only, timings meaningless. " if plan.smoke else "QUICK run: not for the README. "
    )
    print(f"{label if plan.quick else ''}JSON: {path}")
    failed = [f"{s}/{i}" for s, by in outcomes.items() for i, o in by.items() if _failed(plan, i, o.status)]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _failed(plan: Plan, impl: str, status: str) -> bool:
    """A failed measurement; in a smoke run also a project-side implementation that cannot be imported."""
    if status == "failed":
        return True
    # Upstream may be unavailable (no network to build its env); our package and the floor may not.
    return plan.smoke and status == "unavailable" and IMPLS[impl].env == "project"


if __name__ == "__main__":
    sys.exit(main())
