"""Rendering what the demo exported: a span tree from JSON-lines spans, gauges and a metric summary
from ``/metrics`` text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..telemetry import names as n

__all__ = ["SpanRecord", "gauge_table", "load_spans", "metric_summary", "render_tree", "span_tree"]

_KEY_ATTRIBUTES = {
    "penguiflow.node.attempt": "attempt",
    "penguiflow.outcome": "outcome",
    "error.type": "type",
    "penguiflow.retry.delay": "delay",
    "penguiflow.join.size": "size",
    "penguiflow.stream.chunks": "chunks",
    "penguiflow.queue.wait_time": "wait_time",
    "penguiflow.cancel.reason": "reason",
    n.ATTR_PLANNER_ACTION: "action",
    n.ATTR_PLANNER_REPAIR_COUNT: "repairs",
    n.ATTR_PLANNER_REPAIR_ATTEMPT: "repair_attempt",
    n.ATTR_GEN_AI_TOOL_CALL_ID: "call_id",
    n.ATTR_GEN_AI_USAGE_INPUT_TOKENS: "input_tokens",
    n.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS: "output_tokens",
    n.ATTR_PLANNER_FINISH_REASON: "finish_reason",
}
"""The attributes the tree shows, with their short labels."""

_SUMMARY: dict[str, tuple[str, bool]] = {
    "penguiflow_node_duration_seconds_count": ("penguiflow_outcome", True),
    "penguiflow_node_retries_total": ("penguiflow_node_name", True),
    "penguiflow_message_dropped_total": ("penguiflow_drop_reason", True),
    "penguiflow_trace_duration_seconds_count": ("penguiflow_outcome", True),
    "penguiflow_stream_chunks_total": ("penguiflow_node_name", True),
    "penguiflow_trace_cancellations_total": ("penguiflow_flow_name", True),
    "gen_ai_client_operation_duration_seconds_count": ("gen_ai_operation_name", False),
    "gen_ai_client_token_usage_sum": ("gen_ai_token_type", False),
    "gen_ai_client_operation_time_to_first_chunk_seconds_count": ("gen_ai_operation_name", False),
    "gen_ai_execute_tool_duration_seconds_count": ("gen_ai_tool_name", False),
    "gen_ai_invoke_agent_duration_seconds_count": ("penguiflow_planner_finish_reason", False),
    "penguiflow_planner_runs_active": ("gen_ai_agent_name", False),
    "penguiflow_planner_steps_sum": ("penguiflow_outcome", False),
    "penguiflow_planner_repairs_total": ("error_type", False),
    "penguiflow_planner_pauses_total": ("penguiflow_planner_pause_reason", False),
    "penguiflow_planner_budget_exhaustions_total": ("penguiflow_planner_budget_kind", False),
}
"""Summarised samples: the label each is broken down by, and whether it is filtered to the flow.

The GenAI and planner metrics carry no flow label; the demo runs one planner, so they are all its.
"""


@dataclass(slots=True)
class SpanRecord:
    """One exported span, reduced to what the tree shows."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start: str
    duration_ms: float
    status: str
    attributes: dict[str, Any]
    links: int
    children: list[SpanRecord] = field(default_factory=list)


def _duration_ms(raw: Mapping[str, Any]) -> float:
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(raw["start_time"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(raw["end_time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (end - start).total_seconds() * 1000


def load_spans(path: Path) -> list[SpanRecord]:
    """Read spans written one JSON object per line (``ReadableSpan.to_json(indent=None)``)."""
    spans: list[SpanRecord] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        ctx = raw.get("context", {})
        spans.append(
            SpanRecord(
                name=raw.get("name", "?"),
                trace_id=str(ctx.get("trace_id", "")).removeprefix("0x"),
                span_id=str(ctx.get("span_id", "")).removeprefix("0x"),
                parent_id=str(raw["parent_id"]).removeprefix("0x") if raw.get("parent_id") else None,
                start=str(raw.get("start_time", "")),
                duration_ms=_duration_ms(raw),
                status=str(raw.get("status", {}).get("status_code", "UNSET")),
                attributes=dict(raw.get("attributes", {})),
                links=len(raw.get("links", [])),
            )
        )
    return spans


def span_tree(spans: Iterable[SpanRecord], trace_id: str) -> list[SpanRecord]:
    """The roots of one trace with their children attached, in start order."""
    mine = sorted((span for span in spans if span.trace_id == trace_id), key=lambda span: span.start)
    by_id = {span.span_id: span for span in mine}
    roots: list[SpanRecord] = []
    for span in mine:
        span.children = []
    for span in mine:
        parent = by_id.get(span.parent_id or "")
        (parent.children if parent is not None else roots).append(span)
    return roots


def render_tree(roots: Iterable[SpanRecord]) -> list[str]:
    """Indented lines: name, duration, status and the key attributes of each span."""
    lines: list[str] = []

    def walk(span: SpanRecord, depth: int) -> None:
        keys = [
            f"{label}={span.attributes[key]}"
            for key, label in _KEY_ATTRIBUTES.items()
            if key in span.attributes
        ]
        if span.links:
            keys.append(f"links={span.links}")
        status = "" if span.status == "UNSET" else f" [{span.status}]"
        detail = f"  ({', '.join(keys)})" if keys else ""
        lines.append(f"{'  ' * depth}{span.name}  {span.duration_ms:.2f} ms{status}{detail}")
        for child in span.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return lines


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def gauge_table(metrics_text: str, flow: str) -> dict[str, Any]:
    """Queue size/capacity per edge and in-flight per node of ``flow``, from Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    queues: dict[str, dict[str, float]] = {}
    in_flight: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("penguiflow_flow_name") != flow:
                continue
            if sample.name in ("penguiflow_queue_size", "penguiflow_queue_capacity"):
                queue = sample.labels["penguiflow_queue_name"]
                kind = "size" if sample.name.endswith("size") else "capacity"
                queues.setdefault(queue, {})[kind] = sample.value
            elif sample.name == "penguiflow_node_active":
                in_flight[sample.labels["penguiflow_node_name"]] = sample.value
    rows = [
        {"queue": name, "size": int(values.get("size", 0)), "capacity": _capacity(values)}
        for name, values in queues.items()
    ]
    return {"queues": rows, "in_flight": {name: int(value) for name, value in in_flight.items()}}


def _capacity(values: Mapping[str, float]) -> int | None:
    capacity = values.get("capacity")
    return int(capacity) if capacity is not None else None


def metric_summary(metrics_text: str, flow: str) -> dict[str, dict[str, float]]:
    """Totals of the summarised samples by their breakdown label; a metric without samples maps to ``{}``."""
    from prometheus_client.parser import text_string_to_metric_families

    summary: dict[str, dict[str, float]] = {name: {} for name in _SUMMARY}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            wanted = _SUMMARY.get(sample.name)
            if wanted is None:
                continue
            label, per_flow = wanted
            if per_flow and sample.labels.get("penguiflow_flow_name") != flow:
                continue
            by = summary[sample.name]
            key = sample.labels.get(label, "")
            by[key] = by.get(key, 0.0) + sample.value
    return summary
