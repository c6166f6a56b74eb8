"""Pins of the private SDK surfaces telemetry uses behind capability checks (telemetry.md sections 1.7, 4.2
and 11): ``Tracer.id_generator`` for seeded trace ids and the readers' collection hook for locally
aggregated histograms. If an SDK upgrade removes either, these fail here before users lose a feature.

Cases that need an application-installed global provider run ``globals_child.py`` in a fresh interpreter.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from flowkit import make_message, passthrough, run_once
from globals_child import (
    HISTOGRAMS,
    HistogramRecords,
    histogram_families,
    run_in_child,
    sdk_histogram_exposition,
)
from loopback import clean_env
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

from penguiflow_otel import Node, create
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import capture_telemetry

_LOCKED_SDK = "1.45.2"
_W3C_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class FixedIds(IdGenerator):
    """Always the same trace id."""

    def generate_span_id(self) -> int:
        return 0x1234

    def generate_trace_id(self) -> int:
        return 0xABC

    def is_trace_id_random(self) -> bool:
        return False


def test_the_locked_sdk_is_the_version_the_pins_were_written_for() -> None:
    """uv.lock installs opentelemetry-sdk 1.45.2, the version these pins describe."""
    assert importlib.metadata.version("opentelemetry-sdk") == _LOCKED_SDK


# Tracer.id_generator -----------------------------------------------------------------------------


def test_sdk_tracers_have_an_id_generator_attribute_that_roots_use() -> None:
    """An SDK Tracer exposes id_generator; replacing it on one tracer changes that tracer's root ids only."""
    provider = TracerProvider()
    ours, theirs = provider.get_tracer("ours"), provider.get_tracer("theirs")
    assert isinstance(ours, Tracer)
    assert isinstance(theirs, Tracer)
    assert isinstance(ours.id_generator, RandomIdGenerator)
    assert ours is not theirs

    ours.id_generator = FixedIds()
    root = ours.start_span("root")
    other = theirs.start_span("other")
    root.end()
    other.end()

    assert root.get_span_context().trace_id == 0xABC
    assert other.get_span_context().trace_id != 0xABC
    assert isinstance(theirs.id_generator, RandomIdGenerator)
    assert isinstance(provider.id_generator, RandomIdGenerator)


@pytest.mark.parametrize(
    ("trace_id", "otel_trace_id", "mapped"),
    [(_W3C_ID, _W3C_ID, False), ("order-42", "244518d4ab60002f3544d8a2ed90c418", True)],
)
def test_an_application_installed_provider_gets_the_flow_trace_id_on_roots(
    trace_id: str, otel_trace_id: str, mapped: bool
) -> None:
    """With an app's SDK provider, roots carry the message's trace id; other tracers are untouched."""
    report = run_in_child("foreign_provider", {"trace_id": trace_id}, clean_env())

    flow_spans = [span for span in report["spans"] if span["name"] != "theirs"]
    assert {span["trace_id"] for span in flow_spans} == {otel_trace_id}
    root = next(span for span in flow_spans if span["name"] == "flow a")
    assert root["parent"] is None
    assert (names.ATTR_TRACE_ID in root["attributes"]) is mapped
    theirs = next(span for span in report["spans"] if span["name"] == "theirs")
    assert theirs["trace_id"] != otel_trace_id
    assert report["provider_generator"] == "RandomIdGenerator"
    assert report["other_tracer_generator"] == "RandomIdGenerator"
    assert report["warnings"] == []


def test_a_non_random_id_generator_falls_back_to_provider_ids_with_one_warning() -> None:
    """A non-random generator keeps its ids; roots carry penguiflow.trace_id; one warning."""
    trace_ids = [_W3C_ID, "0af7651916cd43dd8448eb211c80319c"]
    report = run_in_child("custom_generator", {"trace_ids": trace_ids}, clean_env())

    roots = [span for span in report["spans"] if span["name"] == "flow a"]
    assert [root["attributes"][names.ATTR_TRACE_ID] for root in roots] == trace_ids
    assert all(root["trace_id"] not in trace_ids for root in roots)
    assert len(report["warnings"]) == 1
    assert "penguiflow.trace_id" in report["warnings"][0]


# Local histograms --------------------------------------------------------------------------------


def test_the_meter_provider_surfaces_of_the_histogram_hand_off_exist() -> None:
    """The private SDK names the hand-off checks for exist on the locked SDK."""
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    assert list(provider._metric_readers) == [reader]
    assert list(provider._sdk_config.views) == []
    assert provider._sdk_config.resource is not None
    assert reader._instrument_class_temporality[_Histogram] is AggregationTemporality.CUMULATIVE
    assert callable(reader._collect)
    provider.shutdown()


async def test_runtime_histograms_are_aggregated_locally_and_export_as_sdk_histograms_would() -> None:
    """In capture_telemetry() no runtime histogram uses SDK record(); the exposition matches the SDK's."""
    with capture_telemetry() as tel, HistogramRecords() as records:
        await run_once(create(Node(passthrough, name="a").to()), make_message("x"))
        text = tel.prometheus_text()
        points = {spec.name: tel.metric(spec.name) for spec in HISTOGRAMS}

    assert records.of_runtime_histograms() == 0
    families = histogram_families(text)
    assert set(families) == {
        names.METRIC_TRACE_DURATION.prometheus,
        names.METRIC_NODE_DURATION.prometheus,
        names.METRIC_QUEUE_WAIT_DURATION.prometheus,
    }
    assert families == histogram_families(sdk_histogram_exposition(points))


@pytest.mark.parametrize("view", [False, True])
def test_a_configured_view_falls_back_to_sdk_histograms_with_the_same_exposition(view: bool) -> None:
    """An app provider without views uses the local hand-off; with a view, SDK histograms record instead."""
    report: dict[str, Any] = run_in_child("histograms_with_a_view", {"view": view}, clean_env())

    assert (report["sdk_records"] > 0) is view
    assert names.METRIC_NODE_DURATION.prometheus in report["families"]
    assert report["families"] == report["reference"]
