"""The run's table on stdout and its JSON under ``bench/results/``."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .runner import Outcome, Plan
from .scenarios import Scenario
from .stats import summarise
from .targets import render_targets

__all__ = ["FLOW_METRICS", "IMPORT_METRICS", "render", "summaries", "write_json"]

FLOW_METRICS = ("msgs_per_s", "us_per_msg", "p50_ms", "p99_ms", "peak_rss_mb", "construct_us")
IMPORT_METRICS = ("import_ms", "modules", "peak_rss_mb")
Summaries = dict[str, dict[str, dict[str, Any]]]

FLOW_HEADER = (
    "scenario",
    "impl",
    "unit",
    "per s",
    "spread (min-max)",
    "us/unit",
    "p50 ms",
    "p99 ms",
    "RSS MB",
    "vs upstream",
    "vs asyncio",
    "make us",
)
IMPORT_HEADER = ("scenario", "impl", "import ms", "spread (min-max)", "modules", "RSS MB", "vs upstream")


def summaries(plan: Plan, outcomes: dict[str, dict[str, Outcome]]) -> Summaries:
    """Per scenario and implementation: status, medians and spreads, and ratios to the references."""
    out: Summaries = {}
    for scenario in plan.scenarios:
        flow = scenario.kind == "flow"
        head = "msgs_per_s" if flow else "import_ms"
        metrics = (*FLOW_METRICS, *scenario.extras) if flow else IMPORT_METRICS
        rows: dict[str, dict[str, Any]] = {}
        for name, outcome in outcomes[scenario.name].items():
            stats = summarise(outcome.samples, metrics)
            rows[name] = {"status": outcome.status, "error": outcome.error, "stats": stats}
        for row in rows.values():
            for ref in ("upstream", "asyncio"):
                against, source = rows.get(ref), ""
                if (against is None or against["status"] != "ok") and scenario.reference in out:
                    against, source = out[scenario.reference].get(ref), scenario.reference
                row[f"vs_{ref}"] = _ratio(row, against, head)
                row[f"vs_{ref}_against"] = source if row[f"vs_{ref}"] is not None else ""
        out[scenario.name] = rows
    return out


def _ratio(row: dict[str, Any], ref: dict[str, Any] | None, metric: str) -> float | None:
    if ref is None or row["status"] != "ok" or ref["status"] != "ok":
        return None
    mine, theirs = row["stats"].get(metric), ref["stats"].get(metric)
    if not mine or not theirs or not theirs["median"]:
        return None
    return float(mine["median"] / theirs["median"])


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _cell(stats: dict[str, Any], metric: str, digits: int = 2) -> str:
    return _num(stats[metric]["median"], digits) if metric in stats else "-"


def _spread(stats: dict[str, Any], metric: str, digits: int = 2) -> str:
    s = stats.get(metric)
    return f"{_num(s['low'], digits)}-{_num(s['high'], digits)}" if s else "-"


def _ratio_cell(value: float | None, against: str = "") -> str:
    """``1.23x``; ``1.23x*`` when the reference row is another scenario's (see the footnote)."""
    return "-" if value is None else f"{value:.2f}x{'*' if against else ''}"


def _rows(plan: Plan, sums: Summaries, flow: bool) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for scenario in plan.scenarios:
        if (scenario.kind == "flow") != flow:
            continue
        for impl, row in sums[scenario.name].items():
            st = row["stats"]
            if _unsupported(scenario, impl):
                continue  # listed once in the footnote
            if row["status"] != "ok":
                rows.append((scenario.name, impl, f"{row['status']}: {row['error']}"))
            elif flow:
                rows.append(
                    (
                        scenario.name,
                        impl,
                        scenario.unit,
                        _cell(st, "msgs_per_s"),
                        _spread(st, "msgs_per_s"),
                        _cell(st, "us_per_msg"),
                        _cell(st, "p50_ms"),
                        _cell(st, "p99_ms"),
                        _cell(st, "peak_rss_mb", 1),
                        _ratio_cell(row["vs_upstream"], row["vs_upstream_against"]),
                        _ratio_cell(row["vs_asyncio"], row["vs_asyncio_against"]),
                        _cell(st, "construct_us"),
                    )
                )
            else:
                rows.append(
                    (
                        scenario.name,
                        impl,
                        _cell(st, "import_ms", 1),
                        _spread(st, "import_ms", 1),
                        _cell(st, "modules", 0),
                        _cell(st, "peak_rss_mb", 1),
                        _ratio_cell(row["vs_upstream"]),
                    )
                )
    return rows


def _unsupported(scenario: Scenario, impl: str) -> bool:
    return scenario.supported is not None and impl not in scenario.supported


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    full = [r for r in rows if len(r) == len(header)]
    widths = [max(len(str(r[i])) for r in [header, *full]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        if len(cells) != len(header):  # a status row: scenario, impl, then the message
            return "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2]])
        left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True)]
        return "  ".join(left + [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *map(line, rows)])


def _extra_cell(stats: dict[str, Any], metric: str) -> str:
    """One decimal, two below 10 (``spans_per_msg`` at 1 % sampling is about 0.04)."""
    median = stats[metric]["median"] if metric in stats else None
    return _num(median, 2 if median is not None and abs(median) < 10 else 1)


def _extras_tables(plan: Plan, sums: Summaries) -> list[str]:
    """One small table per scenario with driver-specific metrics (medians)."""
    tables = []
    for scenario in plan.scenarios:
        if scenario.kind != "flow" or not scenario.extras:
            continue
        rows = [
            (scenario.name, impl, *(_extra_cell(row["stats"], name) for name in scenario.extras))
            for impl, row in sums[scenario.name].items()
            if row["status"] == "ok"
        ]
        if rows:
            tables.append(_table(("scenario", "impl", *scenario.extras), rows))
    return tables


def _footnote(plan: Plan, sums: Summaries) -> str:
    lines = [
        "medians over repetitions; spread is min-max of the rate; vs = rate ratio (higher is faster); "
        "make us = building one item alone; p50/p99 measure:"
    ]
    lines += [f"  {s.name}: {s.latency}" for s in plan.scenarios if s.kind == "flow"]
    borrowed = sorted(
        {
            f"{scenario}: {row[key]}"
            for scenario, rows in sums.items()
            for row in rows.values()
            for key in ("vs_upstream_against", "vs_asyncio_against")
            if row.get(key)
        }
    )
    if borrowed:
        lines.append(
            "x* = against the named scenario's row (this scenario has no such row of its own): "
            + ", ".join(borrowed)
        )
    only: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for s in plan.scenarios:
        if s.supported is not None and any(_unsupported(s, impl.name) for impl in plan.impls):
            only.setdefault((s.supported, s.skip_reason), []).append(s.name)
    for (supported, reason), names in only.items():
        lines.append(f"only on {', '.join(supported)}: {', '.join(names)} ({reason})")
    capped = [f"{s.name} ({s.max_reps})" for s in plan.scenarios if s.max_reps is not None]
    if capped and plan.reps > 1:
        lines.append(f"run in fewer repetitions: {', '.join(capped)}")
    return "\n".join(lines)


def render(plan: Plan, sums: Summaries) -> str:
    """The human-readable report: flow scenarios, their driver-specific metrics, and import time."""
    parts = []
    flow_rows, import_rows = _rows(plan, sums, flow=True), _rows(plan, sums, flow=False)
    if flow_rows:
        parts.append(_table(FLOW_HEADER, flow_rows))
        parts.append(_footnote(plan, sums))
        parts.extend(_extras_tables(plan, sums))
    if import_rows:
        parts.append(_table(IMPORT_HEADER, import_rows))
        parts.append("vs upstream = import-time ratio (lower is faster); asyncio row = `import asyncio`")
    parts.append(render_targets(plan, sums))
    return "\n\n".join(parts)


def write_json(
    directory: Path,
    meta: dict[str, Any],
    plan: Plan,
    outcomes: dict[str, dict[str, Outcome]],
    sums: Summaries,
) -> Path:
    """Write every sample, summary and the run's metadata to ``directory/<UTC timestamp>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    payload = {
        "meta": meta,
        "plan": {
            "quick": plan.quick,
            "smoke": plan.smoke,
            "reps": plan.reps,
            "impls": [i.name for i in plan.impls],
            "scenarios": {s.name: {**asdict(s), "messages_run": plan.messages(s)} for s in plan.scenarios},
        },
        "summary": sums,
        "outcomes": {s: {i: asdict(o) for i, o in by.items()} for s, by in outcomes.items()},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
