"""``FlowStatistics``: the read-only snapshot ``PenguiFlow.statistics()`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FlowStatistics"]


@dataclass(frozen=True, slots=True)
class FlowStatistics:
    """A synchronous snapshot of a flow's counters, running or stopped.

    ``edge_size`` and ``edge_capacity`` are keyed ``"{source}->{target}"`` with the endpoints
    named ``ingress`` and ``egress``; ``trace_tables`` maps each per-trace table to its size.
    """

    running: bool
    active_traces: int
    pending: int
    node_inflight: Mapping[str, int]
    edge_size: Mapping[str, int]
    edge_capacity: Mapping[str, int]
    buffered_results: int
    parked_join_items: int
    cancelled_ring: int
    trace_tables: Mapping[str, int]
