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
Driver = Literal["pipe", "cancel", "stream", "memory", "planner"]
# What the worker installs as the OTel global providers before the flow starts (``bench/otel_setup.py``).
Telemetry = Literal["off", "full", "sampled_1pct", "collector_down", "spans_only"]


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
            ``memory``: ``pipe`` in segments with RSS sampled; ``planner``: planner runs in turn, built by
            ``bench.planner_runs`` instead of a graph).
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
        supported: The implementations the scenario can run on at all (``None``: all); the others are
            always skipped, in smoke runs and with ``--impl`` too, and ``skip_reason`` says why.
        telemetry: The OTel providers installed before the flow starts: ``off`` (none, the API no-op),
            ``full`` (100 % sampling, batch processor with a discarding exporter, Prometheus reader),
            ``sampled_1pct`` (the same at parent-based 1 %), ``collector_down`` (100 %, batch processor
            with an OTLP/HTTP exporter pointed at a closed loopback port, Prometheus reader),
            ``spans_only`` (``full`` without the meter provider).
        reference: For ratios: the scenario whose ``upstream``/``asyncio`` rows stand in for this one's
            where it has none of its own (a telemetry mode compared with the untraced chain).
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
    supported: tuple[str, ...] | None = None
    telemetry: Telemetry = "off"
    reference: str = ""


# The traced chains move 1,500-3,000 msg/s here (the untraced one over 10,000), so they send fewer
# messages than chain_envelope to keep the full run within 15 minutes. All four send the same number, so
# that the ratios between them cover the same stretch of the batch processor's behaviour (its export
# thread is starved of the GIL by the busy loop for long stretches, and spans are dropped meanwhile).
TELEMETRY_MESSAGES, TELEMETRY_QUICK = 10_000, 3_000

_OUR_TELEMETRY = (
    "our telemetry modes; the untraced baseline is chain_envelope, upstream's traced form "
    "upstream_span_middleware"
)

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
            name="telemetry_full",
            summary="chain_envelope, our telemetry, 100 %: batch processor, discarding exporter, Prometheus",
            kind="flow",
            graph="chain3",
            envelope=True,
            telemetry="full",
            extras=("spans_per_msg",),
            supported=("otel",),
            skip_reason=_OUR_TELEMETRY,
            messages=TELEMETRY_MESSAGES,
            quick_messages=TELEMETRY_QUICK,
            reference="chain_envelope",
        ),
        Scenario(
            name="telemetry_1pct",
            summary="telemetry_full at ParentBased(TraceIdRatioBased(0.01))",
            kind="flow",
            graph="chain3",
            envelope=True,
            telemetry="sampled_1pct",
            extras=("spans_per_msg",),
            supported=("otel",),
            skip_reason=_OUR_TELEMETRY,
            messages=TELEMETRY_MESSAGES,
            quick_messages=TELEMETRY_QUICK,
            reference="chain_envelope",
        ),
        Scenario(
            name="telemetry_collector_down",
            summary="telemetry_full with an OTLP/HTTP exporter pointed at a closed loopback port",
            kind="flow",
            graph="chain3",
            envelope=True,
            telemetry="collector_down",
            extras=("spans_per_msg",),
            supported=("otel",),
            skip_reason=_OUR_TELEMETRY,
            messages=TELEMETRY_MESSAGES,
            quick_messages=TELEMETRY_QUICK,
            reference="chain_envelope",
        ),
        Scenario(
            name="upstream_span_middleware",
            summary="upstream chain_envelope with a middleware turning FlowEvents into spans, 100 %",
            kind="flow",
            graph="chain3_span_middleware",
            envelope=True,
            telemetry="spans_only",
            extras=("spans_per_msg",),
            supported=("upstream",),
            skip_reason="upstream's instrumentation as its users write it; ours is telemetry_full",
            messages=TELEMETRY_MESSAGES,
            quick_messages=TELEMETRY_QUICK,
            reference="chain_envelope",
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
            name="planner",
            summary="ReactPlanner runs in turn, scripted LLM: 10 tool calls each, 3 in one parallel step",
            kind="flow",
            driver="planner",
            unit="run",
            latency="one planner.run() (9 LLM decisions, 10 tool calls)",
            messages=500,
            quick_messages=100,
            smoke_messages=5,
            supported=("otel", "upstream"),
            skip_reason="the floor has no planner",
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
PLANNED: tuple[str, ...] = ()
