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


@dataclass(frozen=True, slots=True)
class Scenario:
    """One benchmark scenario.

    Attributes:
        name: The id used on the command line and in results.
        summary: One line for the report.
        kind: ``"flow"`` runs ``bench.worker`` (producer/consumer through a graph); ``"import"`` times
            importing the implementation's top-level module in a fresh interpreter.
        graph: For ``flow``: the key of the graph builder in ``api_flows`` and ``floor_flows``.
        envelope: For ``flow``: emit a new ``Message(payload=i, headers=Headers(tenant="bench"))`` per
            message instead of the bare int ``i``.
        messages: Messages per measurement in a full run.
        quick_messages: Messages per measurement with ``--quick``.
        samples_per_rep: Measurements per implementation in each repetition (cheap scenarios take more).
    """

    name: str
    summary: str
    kind: ScenarioKind
    graph: str = ""
    envelope: bool = False
    messages: int = 50_000
    quick_messages: int = 10_000
    samples_per_rep: int = 1


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
            name="import",
            summary="import the top-level module in a fresh interpreter",
            kind="import",
            messages=0,
            quick_messages=0,
            samples_per_rep=3,
        ),
    )
}

# Scenarios the suite is meant to grow; not implemented yet. `--list` prints them.
PLANNED: tuple[str, ...] = (
    "fanout4_join: a fans out to 4 workers joined back by join_k",
    "telemetry modes: off, tracing at 100 %, sampling at 1 %, collector down, span middleware",
    "cancel_heavy: most traces cancelled mid-flight",
    "streaming: emit_chunk throughput and first-chunk latency",
    "memory: steady-state RSS with many traces in flight",
)
