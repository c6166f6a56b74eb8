"""The "cardinality bounded" case of telemetry.md section 13 (and the caps of sections 9.1 and 9.4).

2 000 traces with unique ids, 500 tenants with tenant metrics opted in
(``PENGUIFLOW_OTEL_TENANT=spans+metrics``, process-wide, hence a fresh interpreter), 60 exception
classes and a unique exception message per failure.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from globals_child import run_in_child
from loopback import clean_env
from prometheus_client.parser import text_string_to_metric_families

from penguiflow_otel.telemetry import names

_TRACES = 2000
_TENANTS = 500
_CLASSES = 60

# The most values each label may take in this workload: one flow, one node (plus the edges' endpoints),
# three outcomes, the capped error types and tenants plus "_OTHER" and the exporter's "" filler.
_LABEL_BOUND = {
    "penguiflow_flow_name": 1,
    "penguiflow_node_name": 3,
    "penguiflow_queue_name": 2,
    "penguiflow_outcome": 3,
    "error_type": names.ERROR_TYPE_CAP + 2,
    "penguiflow_tenant": names.TENANT_CAP + 2,
    "penguiflow_drop_reason": len(names.DROP_REASONS),
    "penguiflow_consumer_kind": len(names.CONSUMER_KINDS),
}


@pytest.fixture(scope="module")
def workload() -> dict[str, Any]:
    """The child's report: its trace ids and the Prometheus exposition after the run."""
    params = {"traces": _TRACES, "tenants": _TENANTS, "classes": _CLASSES}
    return run_in_child("cardinality", params, clean_env(PENGUIFLOW_OTEL_TENANT="spans+metrics"), timeout=15)


def series(report: dict[str, Any]) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Per family, its distinct label sets (``le`` left out) in the exposition."""
    found: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for family in text_string_to_metric_families(report["prometheus"]):
        for sample in family.samples:
            labels = tuple(sorted((key, value) for key, value in sample.labels.items() if key != "le"))
            found.setdefault(family.name, set()).add(labels)
    return found


def label_values(report: dict[str, Any], label: str) -> dict[str, set[str]]:
    """Per family carrying ``label``, the non-empty values it takes in the exposition."""
    found: dict[str, set[str]] = {}
    for family, label_sets in series(report).items():
        for labels in label_sets:
            for key, value in labels:
                if key == label and value:
                    found.setdefault(family, set()).add(value)
    return found


def test_no_label_value_holds_a_trace_id_or_an_exception_message(workload: dict[str, Any]) -> None:
    """No trace id and no exception text appears in any label value."""
    values = {
        value for label_sets in series(workload).values() for labels in label_sets for _, value in labels
    }
    trace_ids = workload["trace_ids"]
    assert len(trace_ids) == len(set(trace_ids)) == _TRACES
    assert not [value for value in values if "order-" in value or "failure " in value]
    assert not any(trace_id in value for value in values for trace_id in trace_ids)


def test_tenant_values_stay_within_the_cap(workload: dict[str, Any]) -> None:
    """500 tenants give each metric at most 100 tenant values plus _OTHER."""
    tenants = label_values(workload, "penguiflow_tenant")
    assert names.METRIC_TRACE_DURATION.prometheus in tenants
    for family, values in tenants.items():
        assert len(values) <= names.TENANT_CAP + 1, family
        assert names.OTHER in values, family


def test_error_types_stay_within_the_cap(workload: dict[str, Any]) -> None:
    """60 exception classes give each metric at most 50 error types plus _OTHER."""
    error_types = label_values(workload, "error_type")
    errors_family = names.METRIC_TELEMETRY_ERRORS.prometheus.removesuffix("_total")
    failing = {family: values for family, values in error_types.items() if family != errors_family}
    assert names.METRIC_NODE_FAILURES.prometheus.removesuffix("_total") in failing
    for family, values in failing.items():
        assert len(values) <= names.ERROR_TYPE_CAP + 1, family
        assert names.OTHER in values, family


def test_series_per_metric_stay_within_the_computed_bound(workload: dict[str, Any]) -> None:
    """Each family's label sets fit the product of its labels' bounds; no SDK overflow series appears."""
    for family, label_sets in series(workload).items():
        keys = {key for labels in label_sets for key, _ in labels if key in _LABEL_BOUND}
        bound = math.prod(_LABEL_BOUND[key] for key in keys)
        assert len(label_sets) <= bound, (family, len(label_sets), bound)
        assert all("otel_metric_overflow" not in dict(labels) for labels in label_sets), family
    assert sum(len(label_sets) for label_sets in series(workload).values()) < 2000


def test_values_past_a_cap_are_counted_as_cardinality_overflow(workload: dict[str, Any]) -> None:
    """Folded values count in penguiflow_telemetry_errors_total{error_type="cardinality_overflow"}."""
    overflow = [
        sample.value
        for family in text_string_to_metric_families(workload["prometheus"])
        for sample in family.samples
        if sample.name == names.METRIC_TELEMETRY_ERRORS.samples[0]
        and sample.labels.get("error_type") == names.ERROR_TYPE_CARDINALITY_OVERFLOW
    ]
    assert sum(overflow) > 0


def test_every_span_of_the_workload_ended(workload: dict[str, Any]) -> None:
    """The capture holds no open span after the 2 000 traces."""
    assert workload["open"] == 0
