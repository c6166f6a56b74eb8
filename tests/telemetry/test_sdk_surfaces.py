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


# Unsampled roots decided without the SDK ---------------------------------------------------------


def _ratio_tracer(rate: float) -> Tracer:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from penguiflow_otel.telemetry._ids import seeded_id_generator

    sampler = ParentBased(TraceIdRatioBased(rate))
    provider = TracerProvider(sampler=sampler, id_generator=seeded_id_generator())
    tracer = provider.get_tracer("pins")
    assert isinstance(tracer, Tracer)
    return tracer


def test_unsampled_roots_built_here_match_the_sdk_root_for_the_same_trace_id() -> None:
    """For 400 trace ids under a 30 % ratio: same decision, trace id, flags and trace state as the SDK."""
    import random

    from opentelemetry import context as otel_context

    from penguiflow_otel.telemetry._ids import TRACE_ID_SEED
    from penguiflow_otel.telemetry._sampling import unsampled_roots

    tracer = _ratio_tracer(0.3)
    roots = unsampled_roots(tracer)
    assert roots is not None
    rng = random.Random(7)
    dropped = 0
    for index in range(400):
        trace_id, is_random = rng.getrandbits(128) or 1, index % 2 == 0
        token = TRACE_ID_SEED.set((trace_id, is_random))
        try:
            sdk = tracer.start_span("root", context=otel_context.Context())
        finally:
            TRACE_ID_SEED.reset(token)
        ours = roots.unsampled(trace_id, is_random)
        assert (ours is None) is sdk.is_recording()
        if ours is None:
            continue
        dropped += 1
        mine, theirs = ours.get_span_context(), sdk.get_span_context()
        assert not ours.is_recording()
        assert (mine.trace_id, mine.trace_flags, mine.trace_state, mine.is_remote) == (
            theirs.trace_id,
            theirs.trace_flags,
            theirs.trace_state,
            theirs.is_remote,
        )
        assert mine.span_id != 0
    assert 200 < dropped < 360  # about 70 % of 400


@pytest.mark.parametrize("sampler_name", ["always_on", "custom"])
def test_samplers_whose_root_decision_is_not_a_trace_id_ratio_go_through_the_sdk(sampler_name: str) -> None:
    """ALWAYS_ON and any sampler we do not know keep the SDK's start_span for every root."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult

    from penguiflow_otel.telemetry._sampling import unsampled_roots

    class Custom(Sampler):
        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            return SamplingResult(Decision.DROP)

        def get_description(self) -> str:
            return "custom"

    sampler = ALWAYS_ON if sampler_name == "always_on" else Custom()
    tracer = TracerProvider(sampler=sampler).get_tracer("pins")
    assert unsampled_roots(tracer) is None


async def test_a_flow_under_an_unsampled_ratio_root_still_forwards_its_trace_id_unsampled() -> None:
    """An unsampled root built without the SDK: no spans, and user code injects the trace id with flag 00."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from penguiflow_otel.propagation import inject
    from penguiflow_otel.telemetry._resolve import Providers, override_providers

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[dict[str, str]] = []

    async def peek(msg: Any, ctx: Any) -> Any:
        carrier: dict[str, str] = {}
        inject(msg, carrier)
        seen.append(carrier)
        return msg

    with override_providers(Providers(provider, None)):
        await run_once(create(Node(peek, name="a").to()), make_message(trace_id=_W3C_ID))
    provider.shutdown()

    assert exporter.get_finished_spans() == ()
    assert len(seen) == 1
    version, trace_id, span_id, flags = seen[0]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", _W3C_ID, "00")
    assert int(span_id, 16) != 0
