"""Interleaved repetitions: every repetition runs every scenario on every implementation, in rotated order."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .impls import IMPLS, Impl, Interpreter, resolve
from .sample import SampleResult, command, run_sample
from .scenarios import Scenario
from .upstream_env import UpstreamEnvError

__all__ = ["Outcome", "Plan", "run"]

Status = Literal["ok", "unavailable", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures."""

    scenarios: tuple[Scenario, ...]
    impls: tuple[Impl, ...]
    reps: int
    quick: bool
    messages_override: int | None = None
    smoke: bool = False
    impls_chosen: bool = False

    def messages(self, scenario: Scenario) -> int:
        """Messages per measurement of ``scenario`` in this run."""
        if self.messages_override is not None and scenario.kind == "flow":
            return self.messages_override
        if self.smoke:
            return scenario.smoke_messages
        return scenario.quick_messages if self.quick else scenario.messages

    def samples(self, scenario: Scenario) -> int:
        """Measurements per implementation of ``scenario`` in one repetition."""
        return 1 if self.smoke else scenario.samples_per_rep

    def runs_in(self, scenario: Scenario, rep: int) -> bool:
        """Whether repetition ``rep`` (from 0) measures ``scenario``."""
        return scenario.max_reps is None or rep < scenario.max_reps

    def skips(self, scenario: Scenario, impl: Impl) -> bool:
        """Whether ``scenario`` leaves ``impl`` out: always when unsupported; else by default only (a
        smoke run or ``--impl`` runs it)."""
        if scenario.supported is not None and impl.name not in scenario.supported:
            return True
        if self.smoke or self.impls_chosen or scenario.impls is None:
            return False
        return impl.name not in scenario.impls


@dataclass(slots=True)
class Outcome:
    """Everything measured for one scenario on one implementation."""

    status: Status = "ok"
    error: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    failed_record: dict[str, Any] = field(default_factory=dict)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _interpreters(impls: Sequence[Impl]) -> dict[str, Interpreter | str]:
    """Each implementation's interpreter, or why it has none."""
    found: dict[str, Interpreter | str] = {}
    for impl in impls:
        try:
            found[impl.name] = resolve(impl)
        except UpstreamEnvError as exc:
            found[impl.name] = str(exc)
    return found


def _prime(plan: Plan, interps: dict[str, Interpreter | str]) -> None:
    """One discarded import per interpreter: writes bytecode caches and warms the page cache."""
    probe = Scenario(name="prime", summary="", kind="import")
    for impl in plan.impls:
        interp = interps[impl.name]
        if isinstance(interp, Interpreter):
            run_sample(interp, impl, probe, 0)


def _record(outcome: Outcome, result: SampleResult) -> None:
    if result.status == "ok":
        outcome.samples.append(result.record)
        return
    outcome.status, outcome.error, outcome.failed_record = result.status, result.error, result.record


def _describe(scenario: Scenario, result: SampleResult) -> str:
    record = result.record
    if result.status != "ok":
        return f"{result.status}: {result.error}"
    if "import_ms" in record:
        return f"{record['import_ms']:.1f} ms"
    text = f"{record['msgs_per_s']:,.0f} {scenario.unit}/s"
    if record.get("p99_ms") is not None:
        text += f", p99 {record['p99_ms']:.2f} ms"
    if record.get("rss_growth_mb") is not None:
        text += f", RSS growth {record['rss_growth_mb']:+.1f} MB"
    return text


def _rotated(impls: tuple[Impl, ...], rep: int) -> tuple[Impl, ...]:
    shift = rep % len(impls)
    return impls[shift:] + impls[:shift]


def run(plan: Plan) -> dict[str, dict[str, Outcome]]:
    """Run ``plan``; returns ``{scenario: {impl: outcome}}``. A failed or unavailable pair stops early."""
    interps = _interpreters(plan.impls)
    outcomes = {
        s.name: {
            i.name: Outcome("skipped", s.skip_reason) if plan.skips(s, i) else Outcome() for i in plan.impls
        }
        for s in plan.scenarios
    }
    for impl in plan.impls:
        interp = interps[impl.name]
        if isinstance(interp, str):
            for by_impl in outcomes.values():
                if by_impl[impl.name].status == "ok":
                    by_impl[impl.name] = Outcome("unavailable", interp)
    _prime(plan, interps)
    for rep in range(plan.reps):
        for scenario in plan.scenarios:
            if not plan.runs_in(scenario, rep):
                continue
            for impl in _rotated(plan.impls, rep):
                outcome, interp = outcomes[scenario.name][impl.name], interps[impl.name]
                if outcome.status != "ok" or not isinstance(interp, Interpreter):
                    continue
                messages = plan.messages(scenario)
                outcome.argv = command(interp, impl, scenario, messages)
                for _ in range(plan.samples(scenario)):
                    result = run_sample(interp, impl, scenario, messages)
                    _record(outcome, result)
                    said = _describe(scenario, result)
                    _log(f"rep {rep + 1}/{plan.reps} {scenario.name:<24} {impl.name:<9} {said}")
                    if result.status != "ok":
                        break
    return outcomes


def selected_impls(names: Sequence[str] | None) -> tuple[Impl, ...]:
    """The implementations named (all by default), in the registry's order."""
    wanted = set(names or IMPLS)
    return tuple(impl for name, impl in IMPLS.items() if name in wanted)
