"""Pre-bound attribute sets: the mappings a hop's spans and metrics need, built once and reused.

telemetry.md section 11: every attribute mapping a hop needs (per flow, node, edge, outcome, error
type) is built on first use and reused, so a hot-path record passes a long-lived dict (the local
histograms key their points by its identity). Caches with an unbounded key (attempt numbers, tenants)
stop growing at a cap and build a fresh mapping past it.
"""

from __future__ import annotations

from typing import Any

from . import names as n

__all__ = ["AttributeSets"]

_ATTEMPTS_CACHED = 16


class AttributeSets:
    """The attribute mappings of one flow's spans and metrics."""

    __slots__ = ("_drops", "_nodes", "_queues", "_span_names", "_starts", "_traces", "flow_name")

    def __init__(self, flow_name: str) -> None:
        self.flow_name = flow_name
        self._span_names: dict[str, str] = {}
        self._starts: dict[tuple[str, int], dict[str, Any]] = {}
        self._nodes: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self._queues: dict[str, dict[str, Any]] = {}
        self._drops: dict[tuple[str, str], dict[str, Any]] = {}
        self._traces: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}

    def node_metric(self, node: str, outcome: str, error_type: str | None) -> dict[str, Any]:
        """``node.duration`` (and, without the outcome, retries and failures) of ``node``."""
        key = (node, outcome, error_type)
        attrs = self._nodes.get(key)
        if attrs is None:
            attrs = {n.ATTR_FLOW_NAME: self.flow_name, n.ATTR_NODE_NAME: node, n.ATTR_OUTCOME: outcome}
            if error_type is not None:
                attrs[n.ATTR_ERROR_TYPE] = error_type
            self._nodes[key] = attrs
        return attrs

    def trace_metric(self, outcome: str, error_type: str | None, tenant: str | None) -> dict[str, Any]:
        """``trace.duration`` of one outcome, error type and (opt-in) tenant."""
        key = (outcome, error_type, tenant)
        attrs = self._traces.get(key)
        if attrs is None:
            attrs = {n.ATTR_FLOW_NAME: self.flow_name, n.ATTR_OUTCOME: outcome}
            if error_type is not None:
                attrs[n.ATTR_ERROR_TYPE] = error_type
            if tenant is not None:
                attrs[n.ATTR_TENANT] = tenant
            if len(self._traces) < 4 * (n.ERROR_TYPE_CAP + n.TENANT_CAP):
                self._traces[key] = attrs
        return attrs

    def queue_metric(self, queue: str) -> dict[str, Any]:
        """Queue wait and blocked time of one edge."""
        attrs = self._queues.get(queue)
        if attrs is None:
            attrs = self._queues[queue] = {n.ATTR_FLOW_NAME: self.flow_name, n.ATTR_QUEUE_NAME: queue}
        return attrs

    def drop(self, node: str, reason: str) -> dict[str, Any]:
        """``message.dropped`` of one node (or edge target) and reason."""
        key = (node, reason)
        attrs = self._drops.get(key)
        if attrs is None:
            attrs = self._drops[key] = {
                n.ATTR_FLOW_NAME: self.flow_name,
                n.ATTR_NODE_NAME: node,
                n.ATTR_DROP_REASON: reason,
            }
        return attrs

    def span_start(self, node: str, attempt: int) -> dict[str, Any]:
        """A node span's start attributes (visible to samplers, telemetry.md section 5.2)."""
        key = (node, attempt)
        attrs = self._starts.get(key)
        if attrs is None:
            attrs = {n.ATTR_FLOW_NAME: self.flow_name, n.ATTR_NODE_NAME: node, n.ATTR_NODE_ATTEMPT: attempt}
            if attempt < _ATTEMPTS_CACHED:
                self._starts[key] = attrs
        return attrs

    def node_span_name(self, node: str) -> str:
        """``node {node}``."""
        name = self._span_names.get(node)
        if name is None:
            name = self._span_names[node] = n.SPAN_NODE.format(node=node)
        return name
