"""The targets of the benchmark issue, judged from one run's medians: one line each, ``met`` or ``MISSED``.

Every ratio is taken from the summaries of this run only (medians over its interleaved repetitions), so
that, for example, 1 % sampling and telemetry off were measured under the same conditions. A target
whose scenarios were not all measured says so instead of being judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .runner import Plan

__all__ = ["TARGETS", "Target", "Verdict", "judge", "render_targets"]

Summaries = dict[str, dict[str, dict[str, Any]]]
# (scenario, impl, metric): the median of one metric of one row.
Ref = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A target judged: its text, the measured figure as shown, and ``met`` (``None``: not measured)."""

    text: str
    shown: str
    met: bool | None


@dataclass(frozen=True, slots=True)
class Target:
    """One target: the medians it needs, and how to turn them into a figure and a verdict.

    ``judge`` gets the medians in the order of ``needs`` and returns what to show and whether it is met.
    """

    text: str
    needs: tuple[Ref, ...]
    judge: Callable[..., tuple[str, bool]]


RATE = "msgs_per_s"


def _at_least(limit: float) -> Callable[..., tuple[str, bool]]:
    """A throughput ratio ``mine / theirs`` that must reach ``limit``."""

    def judge(mine: float, theirs: float) -> tuple[str, bool]:
        ratio = mine / theirs
        return f"{ratio:.2f}x", ratio >= limit

    return judge


def _slower_at_most(fraction: float) -> Callable[..., tuple[str, bool]]:
    """``base`` vs ``other`` throughput: ``other`` may take at most ``fraction`` more time per message."""

    def judge(base: float, other: float) -> tuple[str, bool]:
        slowdown = base / other - 1.0
        word = "slower" if slowdown >= 0 else "faster"
        return f"{other / base:.2f}x ({abs(slowdown) * 100:.1f} % {word})", slowdown <= fraction

    return judge


def _import_ms(mine: float) -> tuple[str, bool]:
    return f"{mine:.1f} ms", mine <= 150.0


def _import_share(mine: float, theirs: float) -> tuple[str, bool]:
    ratio = mine / theirs
    return f"{ratio:.2f}x upstream's", ratio <= 1 / 3


def _rss_growth(growth: float) -> tuple[str, bool]:
    return f"{growth:+.1f} MB", growth < 50.0


TARGETS: tuple[Target, ...] = (
    Target(
        "envelope chain, telemetry off >= 4x upstream",
        (("chain_envelope", "otel", RATE), ("chain_envelope", "upstream", RATE)),
        _at_least(4.0),
    ),
    Target(
        "payload-only chain >= 2x upstream",
        (("chain_payload", "otel", RATE), ("chain_payload", "upstream", RATE)),
        _at_least(2.0),
    ),
    Target(
        "full tracing 100 % >= upstream's untraced envelope chain",
        (("telemetry_full", "otel", RATE), ("chain_envelope", "upstream", RATE)),
        _at_least(1.0),
    ),
    Target(
        "full tracing 100 % >= 2x upstream with the span middleware",
        (("telemetry_full", "otel", RATE), ("upstream_span_middleware", "upstream", RATE)),
        _at_least(2.0),
    ),
    Target(
        "1 % sampling <= 10 % slower than telemetry off",
        (("chain_envelope", "otel", RATE), ("telemetry_1pct", "otel", RATE)),
        _slower_at_most(0.10),
    ),
    Target(
        "collector down <= 10 % slower than collector up (full)",
        (("telemetry_full", "otel", RATE), ("telemetry_collector_down", "otel", RATE)),
        _slower_at_most(0.10),
    ),
    Target("import penguiflow_otel <= 150 ms", (("import", "otel", "import_ms"),), _import_ms),
    Target(
        "import <= 1/3 of upstream's",
        (("import", "otel", "import_ms"), ("import", "upstream", "import_ms")),
        _import_share,
    ),
    Target(
        "memory: RSS growth after warm-up < 50 MB",
        (("memory", "otel", "rss_growth_mb"),),
        _rss_growth,
    ),
)


def _median(sums: Summaries, ref: Ref) -> float | None:
    scenario, impl, metric = ref
    row = sums.get(scenario, {}).get(impl)
    if row is None or row["status"] != "ok" or metric not in row["stats"]:
        return None
    value = row["stats"][metric]["median"]
    return float(value) if value else None


def judge(sums: Summaries) -> list[Verdict]:
    """Every target against this run's medians."""
    verdicts = []
    for target in TARGETS:
        values = [_median(sums, ref) for ref in target.needs]
        if any(value is None for value in values):
            missing = sorted(
                {f"{s}/{i}" for (s, i, _), v in zip(target.needs, values, strict=True) if v is None}
            )
            verdicts.append(Verdict(target.text, f"not measured in this run ({', '.join(missing)})", None))
            continue
        shown, met = target.judge(*values)
        verdicts.append(Verdict(target.text, shown, met))
    return verdicts


def render_targets(plan: Plan, sums: Summaries) -> str:
    """One line per target: the measured figure and ``met`` or ``MISSED``."""
    caveat = " SMOKE run: timings meaningless" if plan.smoke else " QUICK run" if plan.quick else ""
    memory = next((s for s in plan.scenarios if s.name == "memory"), None)
    lines = [f"targets (issue 8), medians of this run:{caveat}"]
    verdicts = judge(sums)
    width = max(len(v.text) for v in verdicts)
    for verdict in verdicts:
        status = "" if verdict.met is None else "  met" if verdict.met else "  MISSED"
        shown = verdict.shown
        if verdict.text.startswith("memory") and memory is not None and verdict.met is not None:
            shown += f" over {plan.messages(memory):,} messages"
        lines.append(f"  {verdict.text.ljust(width)}  {shown}{status}")
    lines.append(
        "  memory: nothing left per trace is not measurable here; the runtime's tests check it. "
        "Ratio to the asyncio floor: the vs asyncio column."
    )
    return "\n".join(lines)
