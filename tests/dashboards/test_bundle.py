"""The generated dashboards, rules and runbook: in sync with the generator, and only catalog names."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from bundle import (
    DASHBOARDS,
    catalog_samples,
    dashboards,
    generate,
    label_values_metric,
    metric_names,
    panels,
    prometheus_exprs,
    rule_groups,
)

from penguiflow_otel.telemetry import names

BURN_RATES = [
    ("critical", "2m", "1h", "5m", "14.4"),
    ("critical", "15m", "6h", "30m", "6"),
    ("warning", "1h", "1d", "2h", "3"),
    ("warning", "3h", "3d", "6h", "1"),
]
"""telemetry.md section 12.3: severity, for, long window, short window, factor."""

SPEC_EXPRESSIONS = {
    "PenguiflowQueueSaturated": "queue:penguiflow_queue_utilization:avg5m > 0.9",
    "PenguiflowBackpressureSustained": (
        "sum by (job, instance, penguiflow_flow_name, penguiflow_queue_name)"
        " (rate(penguiflow_queue_blocked_duration_seconds_sum[5m])) > 0.5"
    ),
    "PenguiflowQueueWaitHigh": (
        "histogram_quantile(0.99, sum by (job, penguiflow_flow_name, penguiflow_queue_name, le)"
        " (rate(penguiflow_queue_wait_duration_seconds_bucket[5m]))) > 1"
    ),
}
"""Alert expressions copied from telemetry.md section 12.3 (whitespace aside)."""


def _alerts() -> list[dict[str, Any]]:
    return rule_groups("prometheus_alerts.yaml")


def _flat(expr: str) -> str:
    return " ".join(expr.split())


def test_regenerated_bundle_equals_the_committed_files() -> None:
    """Rendering config.yaml again gives byte-identical dashboards, rules, promtool tests and runbook."""
    rendered = generate.render(generate.load_config())
    assert set(rendered) == {
        *generate.DASHBOARD_FILES.values(),
        "prometheus_rules.yaml",
        "prometheus_alerts.yaml",
        "tests/rules_test.yaml",
        "runbook.md",
    }
    for relative, text in rendered.items():
        assert (DASHBOARDS / relative).read_text() == text, f"dashboards/{relative} is stale: regenerate it"
    assert generate.render(generate.load_config()) == rendered


def test_generator_check_mode_reports_nothing_stale() -> None:
    """``generate.py --check`` exits 0 on the committed bundle."""
    lines: list[str] = []
    assert generate.main(["--check"], write=lines.append) == 0
    assert lines == []


def test_every_metric_in_dashboards_and_rules_is_a_catalog_series_or_recording_rule() -> None:
    """Each metric a panel, variable or rule selects is a catalog sample or family, or a recorded series."""
    recorded = {rule["record"] for rule in rule_groups("prometheus_rules.yaml")}
    known = catalog_samples() | recorded
    used: dict[str, set[str]] = {}
    for file_name, dashboard in dashboards().items():
        for title, expr in prometheus_exprs(dashboard):
            used.setdefault(f"{file_name}: {title}", set()).update(metric_names(expr))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                used.setdefault(f"{file_name}: ${variable['name']}", set()).update(
                    label_values_metric(variable["definition"])
                )
    for file_name in ("prometheus_rules.yaml", "prometheus_alerts.yaml"):
        for rule in rule_groups(file_name):
            used.setdefault(f"{file_name}: {rule.get('record') or rule['alert']}", set()).update(
                metric_names(rule["expr"])
            )
    unknown = {where: sorted(found - known) for where, found in used.items() if found - known}
    assert unknown == {}
    everything = set().union(*used.values())
    assert {
        "penguiflow_queue_size",
        "penguiflow_queue_capacity",
        "otel_sdk_processor_span_processed_total",
    } <= (everything)
    assert recorded <= everything, "every recording rule is used by an alert or a panel"


def test_metric_name_extraction_skips_functions_labels_and_numbers() -> None:
    """The PromQL scanner finds metric names, not functions, keywords, label names, strings or numbers."""
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{x="b_c", le="2.5"}[5m]))) > 1e-3\n'
        "or on (job) predict_linear(b[15m], 15 * 60) unless c:rule:avg5m and bool"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c:rule:avg5m"}


def test_alert_rules_are_the_spec_rules_backpressure_first() -> None:
    """The alerts of telemetry.md section 12.3 in order, with its expressions and the four burn-rate rows."""
    rules = _alerts()
    assert [rule["alert"] for rule in rules] == [
        "PenguiflowQueueSaturated",
        "PenguiflowQueuePredictedFull",
        "PenguiflowQueueWaitHigh",
        "PenguiflowBackpressureSustained",
        "PenguiflowFlowStalled",
        "PenguiflowNodeErrorRate",
        *["PenguiflowLatencyBudgetBurn"] * 4,
        "PenguiflowTelemetryDropping",
    ]
    by_name = {rule["alert"]: rule for rule in rules}
    for name, expr in SPEC_EXPRESSIONS.items():
        assert _flat(by_name[name]["expr"]) == expr
    burns = [rule for rule in rules if rule["alert"] == "PenguiflowLatencyBudgetBurn"]
    for rule, (severity, for_, long, short, factor) in zip(burns, BURN_RATES, strict=True):
        assert rule["for"] == for_
        assert rule["labels"] == {"severity": severity, "long": long, "short": short}
        assert _flat(rule["expr"]) == (
            f"flow:penguiflow_trace_slo_errors:ratio_rate{long} > ({factor} * 0.01)"
            f" and flow:penguiflow_trace_slo_errors:ratio_rate{short} > ({factor} * 0.01)"
        )
    recorded = [rule["record"] for rule in rule_groups("prometheus_rules.yaml")]
    assert recorded == ["queue:penguiflow_queue_utilization:avg5m"] + [
        f"flow:penguiflow_trace_slo_errors:ratio_rate{window}"
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    ]


def test_slo_rules_count_ok_traces_under_a_catalog_bucket_and_exclude_cancelled() -> None:
    """The SLO ratio reads ``le="2.5"`` (a TRACE_S bucket, as exported) and leaves cancelled traces out."""
    slo = [rule for rule in rule_groups("prometheus_rules.yaml") if rule["record"].startswith("flow:")]
    assert 2.5 in names.TRACE_S
    for rule in slo:
        assert 'penguiflow_outcome="ok", le="2.5"' in rule["expr"]
        assert 'penguiflow_outcome!="cancelled"' in rule["expr"]


def test_every_alert_has_for_severity_summary_description_and_runbook_url() -> None:
    """Each alert has for:, a severity, a static summary, a templated description and its runbook anchor."""
    config = generate.load_config()
    recorded = {rule["record"]: rule["expr"] for rule in rule_groups("prometheus_rules.yaml")}
    for rule in _alerts():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smhd]", rule["for"]), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].endswith("."), name
        assert "{{" not in annotations["summary"], name
        assert "{{ $labels." in annotations["description"], name
        assert annotations["runbook_url"] == f"{config['runbook_base_url']}#{name.lower()}"
        sources = rule["expr"] + "".join(recorded[n] for n in metric_names(rule["expr"]) if n in recorded)
        for label_name in re.findall(r"\$labels\.([A-Za-z_]+)", annotations["description"]):
            assert label_name in sources, (name, label_name)


def _runbook_sections() -> dict[str, str]:
    text = (DASHBOARDS / "runbook.md").read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_every_alert_has_a_runbook_section_at_its_anchor() -> None:
    """runbook.md has one section per alert whose anchor is the runbook_url fragment, with every part."""
    sections = _runbook_sections()
    alerts = _alerts()
    assert set(sections) == {rule["alert"] for rule in alerts}
    for rule in alerts:
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        heading = rule["alert"]
        assert re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") == anchor
        section = sections[heading]
        for part in ("**What it means.**", "**User impact.**", "**Confirm on the dashboards.**"):
            assert part in section, (heading, part)
        assert "**Spans to search.**" in section, heading
        assert "**Mitigations.**" in section, heading
        assert _flat(rule["expr"]) in _flat(section), f"{heading}: the firing expression is shown"


def test_every_runbook_section_names_panels_and_queries_that_exist() -> None:
    """Each panel a runbook section names exists on that dashboard, with the query the section shows."""
    boards = dashboards()
    reference = re.compile(
        r"^- \[(?P<title>[^\]]+)\]\((?P<file>[^)]+)\), panel \*\*(?P<panel>[^*]+)\*\*: `(?P<expr>.+)`$"
    )
    for heading, section in _runbook_sections().items():
        found = [match for line in section.splitlines() if (match := reference.match(line))]
        assert len(found) >= 2, f"{heading} names at least two panels to confirm it"
        for match in found:
            board = boards[match["file"]]
            assert board["title"] == match["title"]
            titled = {panel["title"]: panel for panel in panels(board)}
            assert match["panel"] in titled, (heading, match["panel"])
            exprs = [target.get("expr") for target in titled[match["panel"]]["targets"]]
            assert match["expr"] in exprs, (heading, match["panel"])


def test_panels_have_units_and_rates_use_the_rate_interval() -> None:
    """Every panel has a unit of the spec's set, and every rate() in a panel uses $__rate_interval."""
    for file_name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            assert panel["fieldConfig"]["defaults"]["unit"] in ("s", "percentunit", "reqps", "short"), (
                file_name,
                panel["title"],
            )
        for title, expr in prometheus_exprs(dashboard):
            windows = re.findall(r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]+)\]", expr)
            assert len(windows) == expr.count("rate(") + expr.count("increase("), (file_name, title)
            assert set(windows) <= {"$__rate_interval"}, (file_name, title, windows)


def test_dashboards_choose_data_sources_by_variable() -> None:
    """Panels and queries name data sources only through variables whose defaults are the provisioned uids."""
    uids = generate.load_config()["datasources"]
    for file_name, dashboard in dashboards().items():
        templating = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
        for name, kind in (("datasource", "prometheus"), ("tempo", "tempo"), ("jaeger", "jaeger")):
            variable = templating[name]
            assert variable["type"] == "datasource"
            assert variable["query"] == kind
            assert variable["current"]["value"] == uids[kind], file_name
        for panel in panels(dashboard):
            sources = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
            for source in sources:
                assert source["uid"] in ("${datasource}", "${tempo}", "${jaeger}"), (
                    file_name,
                    panel["title"],
                )
        assert dashboard["uid"] == file_name.removesuffix(".json")
        assert dashboard["id"] is None
        assert dashboard["schemaVersion"] >= 39


def test_variables_chain_job_instance_flow_queue_and_node() -> None:
    """job -> instance -> flow -> queue and node are label_values queries, each scoped by the previous."""
    for file_name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
        assert {"job", "instance", "flow", "queue", "node"} <= set(variables), file_name
        assert variables["job"]["definition"] == "label_values(target_info, job)"
        assert 'job=~"$job"' in variables["instance"]["definition"]
        assert 'instance=~"$instance"' in variables["flow"]["definition"]
        for name in ("queue", "node"):
            assert 'penguiflow_flow_name=~"$flow"' in variables[name]["definition"], (file_name, name)
        names_in_order = [v["name"] for v in dashboard["templating"]["list"]]
        assert names_in_order.index("job") < names_in_order.index("instance") < names_in_order.index("flow")


def test_every_dashboard_ends_with_tempo_and_jaeger_trace_tables_linking_to_the_trace_view() -> None:
    """The last row is Traces: TraceQL on $tempo and a search on $jaeger, trace ids linking to Explore."""
    for file_name, dashboard in dashboards().items():
        rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
        assert rows[-1]["title"] == "Traces", file_name
        tail = dashboard["panels"][dashboard["panels"].index(rows[-1]) + 1 :]
        assert [panel["datasource"]["uid"] for panel in tail] == ["${tempo}", "${jaeger}"], file_name
        tempo, jaeger = tail
        traceql = tempo["targets"][0]["query"]
        assert traceql.count("{") == traceql.count("}") == 1 + traceql.count("${"), traceql
        assert tempo["targets"][0]["queryType"] == "traceql"
        assert tempo["targets"][0]["query"].startswith("{")
        assert jaeger["targets"][0]["queryType"] == "search"
        assert jaeger["targets"][0]["service"] == "${service}"
        for table in tail:
            override = table["fieldConfig"]["overrides"][0]
            assert override["matcher"] == {"id": "byName", "options": "traceID"}
            link = override["properties"][0]["value"][0]
            assert link["url"].startswith("/explore?left=")
            assert "${__value.raw}" in link["url"]
    overview = dashboards()["penguiflow-overview.json"]
    jaeger_tags = next(p for p in panels(overview) if p["datasource"]["uid"] == "${jaeger}")["targets"][0][
        "tags"
    ]
    assert "penguiflow.flow.name=$flow" in jaeger_tags


def test_spec_panels_exist_on_each_dashboard() -> None:
    """The panels telemetry.md section 12.4 lists are on their dashboards."""
    wanted = {
        "penguiflow-overview.json": [
            "Traces per second",
            "Trace error ratio",
            "Active traces",
            "Trace cancellations",
        ],
        "penguiflow-backpressure.json": [
            "Queue size vs capacity",
            "Queue utilization",
            "Queue wait",
            "Producer blocked",
        ],
        "penguiflow-nodes.json": [
            "in flight vs limit",
            "Node duration p95",
            "heatmap",
            "error type",
            "retries",
        ],
        "penguiflow-planner.json": [
            "LLM call latency",
            "tokens",
            "first chunk",
            "Tool latency",
            "Tool calls per",
        ],
        "penguiflow-telemetry-health.json": [
            "Span queue",
            "Spans dropped",
            "export failures",
            "Telemetry errors",
        ],
    }
    for file_name, fragments in wanted.items():
        titles = [panel["title"] for panel in panels(dashboards()[file_name])]
        for fragment in fragments:
            assert any(fragment in title for title in titles), (file_name, fragment)


def test_scaled_config_replaces_windows_and_for_durations() -> None:
    """``scaled_config`` rewrites every alert window, horizon and for:, and the rules follow it."""
    config = generate.scaled_config(generate.load_config(), {"window": "3s", "horizon": "3s", "for": "2s"})
    rendered = generate.render(config)
    rules = yaml.safe_load(rendered["prometheus_rules.yaml"])["groups"][0]["rules"]
    assert rules[0]["record"] == "queue:penguiflow_queue_utilization:avg3s"
    assert "avg_over_time(penguiflow_queue_size[3s])" in rules[0]["expr"]
    alerts = yaml.safe_load(rendered["prometheus_alerts.yaml"])["groups"][0]["rules"]
    saturated = alerts[0]
    assert saturated["expr"] == "queue:penguiflow_queue_utilization:avg3s > 0.9"
    assert saturated["for"] == "2s"
    assert "predict_linear(penguiflow_queue_size[3s], 3)" in alerts[1]["expr"]
    assert generate.load_config()["alerts"]["queue_saturated"]["for"] == "10m", (
        "the loaded config is not changed"
    )


def test_per_flow_slo_bucket_gets_its_own_rules_and_leaves_the_default() -> None:
    """A flow listed under slo.flows is measured against its bucket and excluded from the default rule."""
    config = generate.load_config()
    config["slo"]["flows"] = {"checkout": 1.0}
    rules = yaml.safe_load(generate.render(config)["prometheus_rules.yaml"])["groups"][0]["rules"]
    five = [rule for rule in rules if rule["record"] == "flow:penguiflow_trace_slo_errors:ratio_rate5m"]
    assert len(five) == 2
    default, checkout = five
    assert 'penguiflow_flow_name!~"checkout"' in default["expr"]
    assert 'le="2.5"' in default["expr"]
    assert 'penguiflow_flow_name="checkout"' in checkout["expr"]
    assert 'le="1.0"' in checkout["expr"]
    assert checkout["labels"] == {"penguiflow_slo_seconds": "1"}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("slo", "latency_bucket_seconds"),
            2.0,
            "slo.latency_bucket_seconds must be one of the TRACE_S buckets",
        ),
        (("alerts", "queue_saturated", "for"), "ten minutes", "alerts.queue_saturated.for"),
        (
            ("alerts", "queue_saturated", "threshold"),
            1.5,
            "alerts.queue_saturated.threshold must be between 0 and 1",
        ),
        (("alerts", "flow_stalled", "severity"), "page", "alerts.flow_stalled.severity must be 'critical'"),
    ],
)
def test_invalid_config_values_are_rejected_naming_the_key(
    path: tuple[str, ...], value: object, message: str
) -> None:
    """A bad config.yaml value raises ConfigError whose message names the key and what is allowed."""
    config = generate.load_config()
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(generate.ConfigError, match=re.escape(message)):
        generate.render(config)
