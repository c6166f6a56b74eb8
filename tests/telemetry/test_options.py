"""Runtime telemetry options: ``quiet_nodes`` and the tenant modes (telemetry.md sections 3.1, 3.2, 5.1, 5.2).

The options are process-wide and ``configure()`` installs globals, so each case runs ``globals_child.py`` in
a fresh interpreter. ``configure()`` after an application installed its own providers builds nothing and
still applies the options.
"""

from __future__ import annotations

from typing import Any

from globals_child import run_in_child
from loopback import clean_env

from penguiflow_otel.telemetry import names

_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def spans_named(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The reported spans called ``name``."""
    return [span for span in report["spans"] if span["name"] == name]


def one(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The single reported span called ``name``."""
    found = spans_named(report, name)
    assert len(found) == 1, [span["name"] for span in report["spans"]]
    return found[0]


def node_metric_names(report: dict[str, Any], metric: str) -> set[str]:
    """The node names on the points of one runtime metric."""
    return {point["attributes"].get(names.ATTR_NODE_NAME, "") for point in report["metrics"].get(metric, [])}


def test_quiet_nodes_get_no_span_and_their_child_parents_to_the_nearest_spanned_ancestor() -> None:
    """quiet_nodes=["relay"] with an app's provider: no relay span, c under a, relay's metrics stay."""
    params = {"trace_id": _TRACE_ID, "configure": {"quiet_nodes": ["relay"]}}
    report = run_in_child("foreign_provider", params, clean_env())

    assert report["handle_owns"] == [False, False]
    assert spans_named(report, "node relay") == []
    root, first, last = one(report, "flow a"), one(report, "node a"), one(report, "node c")
    assert first["parent"] == root["span_id"]
    assert last["parent"] == first["span_id"]
    assert {span["trace_id"] for span in report["spans"] if span["name"] != "theirs"} == {_TRACE_ID}
    assert "relay" in node_metric_names(report, names.METRIC_NODE_DURATION.name)
    assert "relay" in node_metric_names(report, names.METRIC_NODE_ACTIVE_LIMIT.name) | node_metric_names(
        report, names.METRIC_NODE_DURATION.name
    )


def test_by_default_the_tenant_is_on_roots_and_not_on_metrics() -> None:
    """Without configure() or the variable, the root carries penguiflow.tenant and no metric has it."""
    report = run_in_child("foreign_provider", {"trace_id": _TRACE_ID}, clean_env())

    assert one(report, "flow a")["attributes"][names.ATTR_TENANT] == "acme"
    for span in report["spans"]:
        if span["name"].startswith("node "):
            assert names.ATTR_TENANT not in span["attributes"]
    for points in report["metrics"].values():
        assert all(names.ATTR_TENANT not in point["attributes"] for point in points)


def test_tenant_off_keeps_the_tenant_off_every_span() -> None:
    """configure(tenant="off") leaves the root without penguiflow.tenant."""
    params = {"trace_id": _TRACE_ID, "configure": {"tenant": "off"}}
    report = run_in_child("foreign_provider", params, clean_env())

    assert all(names.ATTR_TENANT not in span["attributes"] for span in report["spans"])
    trace_points = report["metrics"][names.METRIC_TRACE_DURATION.name]
    assert all(names.ATTR_TENANT not in point["attributes"] for point in trace_points)


def test_tenant_argument_beats_the_environment_and_puts_the_tenant_on_trace_metrics() -> None:
    """configure(tenant="spans+metrics") over PENGUIFLOW_OTEL_TENANT=off: root and trace.duration carry it."""
    params = {"trace_id": _TRACE_ID, "configure": {"tenant": "spans+metrics"}}
    report = run_in_child("foreign_provider", params, clean_env(PENGUIFLOW_OTEL_TENANT="off"))

    assert one(report, "flow a")["attributes"][names.ATTR_TENANT] == "acme"
    trace_points = report["metrics"][names.METRIC_TRACE_DURATION.name]
    assert [point["attributes"].get(names.ATTR_TENANT) for point in trace_points] == ["acme"]
    node_points = report["metrics"][names.METRIC_NODE_DURATION.name]
    assert all(names.ATTR_TENANT not in point["attributes"] for point in node_points)


def test_the_tenant_variable_applies_without_configure() -> None:
    """PENGUIFLOW_OTEL_TENANT=spans+metrics without configure() puts the tenant on roots and metrics."""
    report = run_in_child("tenant_in_capture", {}, clean_env(PENGUIFLOW_OTEL_TENANT="spans+metrics"))

    assert one(report, "flow a")["attributes"][names.ATTR_TENANT] == "acme"
    assert [point.get(names.ATTR_TENANT) for point in report["trace_duration"]] == ["acme"]


def test_the_tenant_variable_off_applies_without_configure() -> None:
    """PENGUIFLOW_OTEL_TENANT=off alone keeps the tenant off the root."""
    report = run_in_child("tenant_in_capture", {}, clean_env(PENGUIFLOW_OTEL_TENANT="off"))

    assert names.ATTR_TENANT not in one(report, "flow a")["attributes"]
    assert all(names.ATTR_TENANT not in point for point in report["trace_duration"])


def test_an_invalid_tenant_variable_warns_once_and_keeps_spans() -> None:
    """An unknown PENGUIFLOW_OTEL_TENANT value warns and falls back to 'spans'."""
    report = run_in_child("tenant_in_capture", {}, clean_env(PENGUIFLOW_OTEL_TENANT="everywhere"))

    assert one(report, "flow a")["attributes"][names.ATTR_TENANT] == "acme"
    assert all(names.ATTR_TENANT not in point for point in report["trace_duration"])
    assert sum("PENGUIFLOW_OTEL_TENANT" in message for message in report["warnings"]) == 1
