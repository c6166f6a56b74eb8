"""The telemetry catalog, and the Prometheus names the locked exporter really gives each instrument."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import penguiflow_otel
from penguiflow_otel.telemetry import names
from penguiflow_otel.telemetry.names import MetricSpec

PROMETHEUS_TYPES = {
    "histogram": "histogram",
    "counter": "counter",
    "up_down_counter": "gauge",
    "observable_up_down_counter": "gauge",
}
"""The Prometheus type each instrument kind is exported as (cumulative up-down counters are gauges)."""

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
"""The ``Accept`` header a Prometheus 2.x scrape sends by default: it prefers OpenMetrics."""

NAMED_BUCKETS = {
    "TRACE_S": names.TRACE_S,
    "NODE_S": names.NODE_S,
    "QUEUE_S": names.QUEUE_S,
    "GENAI_S": names.GENAI_S,
    "GENAI_TOKENS": names.GENAI_TOKENS,
    "INVOKE_AGENT_S": names.INVOKE_AGENT_S,
    "PLANNER_STEPS": names.PLANNER_STEPS,
}


def _scope(spec: MetricSpec) -> str:
    return names.SCOPE_NAME if spec in names.RUNTIME_METRICS else names.PLANNER_SCOPE_NAME


def _example_value(key: str) -> AttributeValue:
    return 443 if key == names.ATTR_SERVER_PORT else f"v-{key}"


def _record(meter: Meter, spec: MetricSpec, points: Iterable[Mapping[str, AttributeValue]]) -> None:
    """Create ``spec``'s instrument on ``meter`` and record one value per attribute set."""
    rows = list(points)
    if spec.instrument == "histogram":
        assert spec.buckets is not None
        histogram = meter.create_histogram(
            spec.name,
            unit=spec.unit,
            description=spec.description,
            explicit_bucket_boundaries_advisory=list(spec.buckets),
        )
        for attributes in rows:
            histogram.record(1.0, attributes)
    elif spec.instrument == "counter":
        counter = meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
        for attributes in rows:
            counter.add(1, attributes)
    elif spec.instrument == "up_down_counter":
        up_down = meter.create_up_down_counter(spec.name, unit=spec.unit, description=spec.description)
        for attributes in rows:
            up_down.add(1, attributes)
    else:

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(1, attributes) for attributes in rows]

        meter.create_observable_up_down_counter(
            spec.name, callbacks=[observe], unit=spec.unit, description=spec.description
        )


@contextmanager
def _exporting(spec: MetricSpec) -> Iterator[tuple[Meter, CollectorRegistry]]:
    """A meter of ``spec``'s scope whose provider exports to a private Prometheus registry."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        meter = provider.get_meter(_scope(spec), penguiflow_otel.__version__, schema_url=names.SCHEMA_URL)
        yield meter, registry
    finally:
        provider.shutdown()


def _exposition(spec: MetricSpec, points: Iterable[Mapping[str, AttributeValue]]) -> str:
    """The classic text exposition after recording ``points`` on ``spec``'s instrument."""
    with _exporting(spec) as (meter, registry):
        _record(meter, spec, points)
        return generate_latest(registry).decode()


def _all_attributes(spec: MetricSpec) -> dict[str, AttributeValue]:
    return {key: _example_value(key) for key in spec.attribute_keys}


def _samples(text: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        if family.name != names.TARGET_INFO
        for sample in family.samples
    ]


def _declared_families(text: str) -> list[tuple[str, str]]:
    """``(name, type)`` of every ``# TYPE`` line except the resource's (``target`` in OpenMetrics)."""
    resource = {names.TARGET_INFO, names.TARGET_INFO.removesuffix("_info")}
    return [
        (name, kind)
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE)
        if name not in resource
    ]


@pytest.mark.parametrize("spec", names.METRICS, ids=lambda spec: spec.name)
def test_instrument_exports_the_catalog_family_samples_and_labels(spec: MetricSpec) -> None:
    """Recorded once with all its attributes, an instrument exports exactly the catalog's Prometheus names."""
    attributes = _all_attributes(spec)
    text = _exposition(spec, [attributes])

    assert _declared_families(text) == [(spec.prometheus, PROMETHEUS_TYPES[spec.instrument])]
    assert f"# HELP {spec.prometheus} {spec.description}\n" in text
    samples = _samples(text)
    assert len(set(spec.samples)) == len(spec.samples)
    assert {sample.name for sample in samples} == set(spec.samples)
    scope_labels = {
        "otel_scope_name": _scope(spec),
        "otel_scope_version": penguiflow_otel.__version__,
        "otel_scope_schema_url": names.SCHEMA_URL,
    }
    assert sorted(scope_labels) == sorted(names.SCOPE_LABELS)
    expected_labels = {key.replace(".", "_"): str(value) for key, value in attributes.items()} | scope_labels
    for sample in samples:
        assert {k: v for k, v in sample.labels.items() if k != "le"} == expected_labels


@pytest.mark.parametrize(
    "spec", [spec for spec in names.METRICS if spec.buckets is not None], ids=lambda spec: spec.name
)
def test_histogram_le_strings_are_the_str_of_each_float_boundary(spec: MetricSpec) -> None:
    """Every ``le`` a histogram exports is ``str(boundary)`` of its catalog bucket, then ``+Inf``."""
    assert spec.buckets is not None
    text = _exposition(spec, [_all_attributes(spec)])
    le = [sample.labels["le"] for sample in _samples(text) if sample.name.endswith("_bucket")]
    assert le == [str(boundary) for boundary in spec.buckets] + ["+Inf"]


@pytest.mark.parametrize("spec", names.METRICS, ids=lambda spec: spec.name)
def test_openmetrics_exposition_has_the_same_samples_and_drops_total_from_counter_families(
    spec: MetricSpec,
) -> None:
    """A scrape negotiating OpenMetrics sees the same sample names; only counter families lose ``_total``."""
    encoder, content_type = choose_encoder(PROMETHEUS_ACCEPT)
    assert content_type.startswith("application/openmetrics-text")
    with _exporting(spec) as (meter, registry):
        _record(meter, spec, [_all_attributes(spec)])
        text = encoder(registry).decode()
    family = spec.prometheus.removesuffix("_total") if spec.instrument == "counter" else spec.prometheus
    assert _declared_families(text) == [(family, PROMETHEUS_TYPES[spec.instrument])]
    sample_names = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, flags=re.MULTILINE))
    assert sample_names - {names.TARGET_INFO} == set(spec.samples)


def test_points_without_error_type_export_an_empty_error_type_label() -> None:
    """When one point of a family has ``error.type``, the others export ``error_type=""``."""
    spec = names.METRIC_NODE_DURATION
    ok = {names.ATTR_FLOW_NAME: "f", names.ATTR_NODE_NAME: "n", names.ATTR_OUTCOME: names.OUTCOME_OK}
    failed = ok | {names.ATTR_OUTCOME: names.OUTCOME_ERROR, names.ATTR_ERROR_TYPE: "ValueError"}
    text = _exposition(spec, [ok, failed])
    counts = {
        sample.labels["penguiflow_outcome"]: sample.labels["error_type"]
        for sample in _samples(text)
        if sample.name.endswith("_count")
    }
    assert counts == {"ok": "", "error": "ValueError"}


def test_a_family_with_no_failing_point_has_no_error_type_label() -> None:
    """Without any ``error.type`` in a family the label is absent, which PromQL reads as ``""``."""
    spec = names.METRIC_NODE_DURATION
    ok = {names.ATTR_FLOW_NAME: "f", names.ATTR_NODE_NAME: "n", names.ATTR_OUTCOME: names.OUTCOME_OK}
    text = _exposition(spec, [ok])
    assert all("error_type" not in sample.labels for sample in _samples(text))


@pytest.mark.parametrize("bucket_name", sorted(NAMED_BUCKETS))
def test_bucket_lists_are_increasing_floats(bucket_name: str) -> None:
    """Every bucket list is a tuple of strictly increasing floats, so ``le`` strings read ``1.0``."""
    buckets = NAMED_BUCKETS[bucket_name]
    assert isinstance(buckets, tuple)
    assert all(type(boundary) is float for boundary in buckets)
    assert list(buckets) == sorted(set(buckets))


def test_only_histograms_have_buckets_and_each_uses_a_named_list() -> None:
    """Histograms, and nothing else, declare buckets, always one of the catalog's named lists."""
    for spec in names.METRICS:
        if spec.instrument == "histogram":
            assert any(spec.buckets is buckets for buckets in NAMED_BUCKETS.values()), spec.name
        else:
            assert spec.buckets is None, spec.name


def test_genai_buckets_follow_the_semantic_convention_series() -> None:
    """GenAI durations double from 0.01 s to 81.92 s; token counts are the powers of 4 up to 4**13."""
    doubling = tuple(0.01 * 2**k for k in range(14))
    powers_of_four = tuple(float(4**k) for k in range(14))
    assert doubling == names.GENAI_S
    assert powers_of_four == names.GENAI_TOKENS


def test_metric_and_prometheus_names_are_unique_and_scopes_partition_the_catalog() -> None:
    """No two instruments share an OTel or Prometheus name, and each belongs to exactly one scope."""
    assert names.METRICS == names.RUNTIME_METRICS + names.PLANNER_METRICS
    assert len({spec.name for spec in names.METRICS}) == len(names.METRICS)
    assert len({spec.prometheus for spec in names.METRICS}) == len(names.METRICS)
    samples = [sample for spec in names.METRICS for sample in spec.samples]
    assert len(set(samples)) == len(samples)


def test_every_metric_attribute_is_a_catalog_attribute_key() -> None:
    """Metric attributes use only keys declared as ``ATTR_*`` constants, each at most once per metric."""
    declared = {value for name, value in vars(names).items() if name.startswith("ATTR_")}
    for spec in names.METRICS:
        assert len(set(spec.attribute_keys)) == len(spec.attribute_keys), spec.name
        assert set(spec.attribute_keys) <= declared, spec.name


def _module_tree() -> ast.Module:
    return ast.parse(inspect.getsource(names))


def test_every_catalog_constant_is_final_and_documented() -> None:
    """Each module-level name is annotated ``Final`` and followed by its docstring."""
    body = _module_tree().body
    for statement, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(statement, ast.Assign):
            pytest.fail(f"unannotated module constant at line {statement.lineno}")
        if not isinstance(statement, ast.AnnAssign):
            continue
        assert isinstance(statement.target, ast.Name)
        name = statement.target.id
        assert "Final" in ast.unparse(statement.annotation) or "TypeAlias" in ast.unparse(
            statement.annotation
        ), name
        assert isinstance(following, ast.Expr), name
        assert isinstance(following.value, ast.Constant), name
        assert isinstance(following.value.value, str), name


def test_catalog_imports_only_the_standard_library() -> None:
    """The catalog imports no OpenTelemetry module, so importing it costs nothing."""
    imported: set[str] = set()
    for node in ast.walk(_module_tree()):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert imported <= {"__future__", "dataclasses", "typing"}
