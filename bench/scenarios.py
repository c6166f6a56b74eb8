"""The scenario registry: what each benchmark measures, and how many messages it sends.

A scenario is data only. The graph it names is built, once per implementation, by the builders in
``api_flows`` (the PenguiFlow API, used by ``otel`` and ``upstream``) and ``floor_flows`` (bare asyncio
queues). To add a scenario, see ``bench/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PLANNED", "SCENARIOS", "Scenario"]

ScenarioKind = Literal["flow", "import"]
Driver = Literal["pipe", "cancel", "stream", "memory"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One benchmark scenario.

    Attributes:
        name: The id used on the command line and in results.
        summary: One line for the report.
        kind: ``"flow"`` runs ``bench.worker`` (a driver against a graph); ``"import"`` times importing the
            implementation's top-level module in a fresh interpreter.
        graph: For ``flow``: the key of the graph builder in ``api_flows`` and ``floor_flows``.
        envelope: For ``flow``: emit a new ``Message(payload=i, headers=Headers(tenant="bench"))`` per
            item instead of the bare int ``i``.
        driver: For ``flow``: the driving pattern in ``bench.drive`` (``pipe``: producer and consumer;
            ``cancel``: concurrent round trips, half cancelled; ``stream``: one stream at a time;
            ``memory``: ``pipe`` in segments with RSS sampled).
        unit: What the rate counts (``msg``, ``trace``, ``chunk``).
        latency: What p50/p99 measure, for the report's footnote.
        messages: Items emitted per measurement in a full run (traces for ``cancel`` and ``stream``).
        quick_messages: The same with ``--quick``.
        smoke_messages: The same with ``--smoke`` (just enough to exercise every code path).
        samples_per_rep: Measurements per implementation in each repetition (cheap scenarios take more).
        max_reps: Run in at most this many repetitions (``None``: every one).
        budget_s: Seconds a measurement may take before the worker gives up and reports a timeout.
        concurrency: For ``cancel``: traces in flight at once.
        extras: Driver-specific metrics shown in a table of their own.
        impls: The implementations measured when ``--impl`` is not given (``None``: all); naming others
            with ``--impl`` measures them too. ``skip_reason`` says why the rest are left out.
    """

    name: str
    summary: str
    kind: ScenarioKind
    graph: str = ""
    envelope: bool = False
    driver: Driver = "pipe"
    unit: str = "msg"
    latency: str = "emit to fetch"
    messages: int = 50_000
    quick_messages: int = 10_000
    smoke_messages: int = 200
    samples_per_rep: int = 1
    max_reps: int | None = None
    budget_s: float = 120.0
    concurrency: int = 1
    extras: tuple[str, ...] = ()
    impls: tuple[str, ...] | None = None
    skip_reason: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="chain_payload",
            summary="a->b->c pass-through, payload-only ints",
            kind="flow",
            graph="chain3",
        ),
        Scenario(
            name="chain_envelope",
            summary="a->b->c pass-through, a new Message per item",
            kind="flow",
            graph="chain3",
            envelope=True,
        ),
        Scenario(
            name="fanout4_join",
            summary="a->4 branches->join_k(4), a new Message per item",
            kind="flow",
            graph="fanout4_join",
            envelope=True,
            unit="msg",
            latency="emit to fetch of the joined message",
            messages=5_000,
            quick_messages=1_000,
        ),
        Scenario(
            name="cancel_heavy",
            summary="1,000 concurrent trace round trips on a->b->c, half cancelled mid-flight",
            kind="flow",
            graph="chain3_traced",
            envelope=True,
            driver="cancel",
            unit="trace",
            latency="emit to fetch, delivered traces only",
            messages=5_000,
            quick_messages=1_000,
            concurrency=1_000,
            extras=("delivered", "cancelled", "cancel_refused"),
        ),
        Scenario(
            name="streaming",
            summary="100 traces in turn, each streams 100 chunks via ctx.emit_chunk",
            kind="flow",
            graph="stream1",
            envelope=True,
            driver="stream",
            unit="chunk",
            latency="time to first chunk",
            messages=100,
            quick_messages=100,
            smoke_messages=3,
            samples_per_rep=3,  # 10,000 chunks take well under a second: take more samples
            extras=("stream_p50_ms",),
        ),
        Scenario(
            name="memory",
            summary="1,000,000 messages through a->b->c under backpressure, RSS sampled",
            kind="flow",
            graph="chain3",
            envelope=True,
            driver="memory",
            latency="not kept (would grow the worker)",
            messages=1_000_000,
            quick_messages=100_000,
            smoke_messages=2_000,
            max_reps=1,
            budget_s=600.0,
            extras=("rss_base_mb", "rss_end_mb", "rss_growth_mb", "rss_peak_mb"),
            impls=("otel", "asyncio"),
            skip_reason="1,000,000 envelopes take upstream over 5 minutes here; opt in with --impl upstream",
        ),
        Scenario(
            name="import",
            summary="import the top-level module in a fresh interpreter",
            kind="import",
            messages=0,
            quick_messages=0,
            smoke_messages=0,
            samples_per_rep=3,
        ),
    )
}

# Scenarios the suite is meant to grow; not implemented yet. `--list` prints them.
PLANNED: tuple[str, ...] = (
    "telemetry modes: chain_envelope with tracing off, 100 % with a batch processor, 1 %, collector down",
    "upstream with a span middleware: its FlowEvents turned into OTel spans, same batch processor",
    "planner: a ScriptedLLM run with 10 tool calls, 3 of them parallel",
)
