"""Metrics without traces (a tracer provider that is off, a meter provider that is on): every trace still gets
its ``penguiflow.trace.duration`` with the outcome of section 6, and cancellations are counted."""

from __future__ import annotations

from typing import Any

from flowkit import Gate, make_message, passthrough, promptly
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from penguiflow_otel import Headers, Message, Node, create
from penguiflow_otel.telemetry import names
from penguiflow_otel.telemetry._resolve import Providers, override_providers


def _points(reader: InMemoryMetricReader, metric: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    data = reader.get_metrics_data()
    found: dict[tuple[tuple[str, Any], ...], Any] = {}
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for item in scope.metrics:
                if item.name == metric:
                    for point in item.data.data_points:
                        found[tuple(sorted((point.attributes or {}).items()))] = point
    return found


async def _boom(message: Any, ctx: Any) -> Any:
    raise ValueError("no")


async def test_trace_duration_is_recorded_per_outcome_without_a_tracer() -> None:
    """ok, error and cancelled traces each land in trace.duration under their outcome; one cancellation."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    gate = Gate()
    with override_providers(Providers(None, provider)):
        ok, bad, held = Node(passthrough, name="ok"), Node(_boom, name="bad"), Node(gate.hold, name="held")
        flow = create(ok.to(), bad.to(), held.to())
        flow.run()
        await flow.emit(make_message(), to=ok)
        await flow.fetch()
        await flow.emit(make_message(), to=bad)
        cancelled = make_message()
        await flow.emit(cancelled, to=held)
        await promptly(lambda: flow.statistics().node_inflight.get("held", 0) == 1)
        assert await flow.cancel(cancelled.trace_id)
        await promptly(lambda: flow.statistics().active_traces == 0)
        await flow.stop()

    durations = _points(reader, names.METRIC_TRACE_DURATION.name)
    outcomes = {dict(key)[names.ATTR_OUTCOME]: point.count for key, point in durations.items()}
    assert outcomes == {"ok": 1, "error": 1, "cancelled": 1}
    error_key = next(key for key in durations if dict(key)[names.ATTR_OUTCOME] == "error")
    assert dict(error_key)[names.ATTR_ERROR_TYPE] == "ValueError"
    cancellations = _points(reader, names.METRIC_TRACE_CANCELLATIONS.name)
    assert [point.value for point in cancellations.values()] == [1]


async def test_an_invalid_traceparent_is_counted_without_a_tracer() -> None:
    """propagation.invalid counts a malformed traceparent even when no tracer would use it."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    with override_providers(Providers(None, provider)):
        flow = create(Node(passthrough, name="a").to())
        flow.run()
        await flow.emit(Message(payload=1, headers=Headers(tenant="t", traceparent="not-a-traceparent")))
        await flow.fetch()
        await flow.stop()

    invalid = _points(reader, names.METRIC_PROPAGATION_INVALID.name)
    assert [point.value for point in invalid.values()] == [1]
