"""``capture_telemetry()``: in-memory spans and metrics for one test (or one user's test).

It builds fresh providers (always-on sampling, the seeded id generator, a synchronous in-memory
span exporter plus an open-span tracker; an in-memory metric reader and a Prometheus reader on a
private registry) and makes flows and planners resolve them through a context variable. The OTel
global providers are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..telemetry._ids import seeded_id_generator
from ..telemetry._resolve import Providers, override_providers

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

__all__ = ["TelemetryCapture", "capture_telemetry"]


class TelemetryCapture:
    """What one ``capture_telemetry()`` block recorded."""

    def __init__(self) -> None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        from prometheus_client import CollectorRegistry

        open_spans: dict[tuple[int, int], ReadableSpan] = {}

        def key(span: ReadableSpan) -> tuple[int, int]:
            ctx = span.context
            return (ctx.trace_id, ctx.span_id) if ctx is not None else (0, id(span))

        class _OpenSpanTracker(SpanProcessor):
            def on_start(self, span: Any, parent_context: Any = None) -> None:
                open_spans[key(span)] = span

            def on_end(self, span: ReadableSpan) -> None:
                open_spans.pop(key(span), None)

        self._open = open_spans
        self._exporter = InMemorySpanExporter()
        self.tracer_provider: TracerProvider = TracerProvider(
            sampler=ALWAYS_ON, id_generator=seeded_id_generator(), shutdown_on_exit=False
        )
        self.tracer_provider.add_span_processor(_OpenSpanTracker())
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        self.registry = CollectorRegistry()
        self._reader = InMemoryMetricReader()
        self._prometheus = PrometheusMetricReader(registry=self.registry)
        self.meter_provider: MeterProvider = MeterProvider(
            metric_readers=[self._reader, self._prometheus], shutdown_on_exit=False
        )

    def spans(self, name_prefix: str | None = None) -> list[ReadableSpan]:
        """Finished spans in end order, optionally only those whose name starts with ``name_prefix``."""
        finished = list(self._exporter.get_finished_spans())
        if name_prefix is None:
            return finished
        return [span for span in finished if span.name.startswith(name_prefix)]

    def open_spans(self) -> list[ReadableSpan]:
        """Spans started and not yet ended (empty when every span ended)."""
        return list(self._open.values())

    def tree(self) -> list[tuple[int, str]]:
        """Finished spans as ``(depth, name)`` in depth-first start order, for readable assertions."""
        spans = sorted(self.spans(), key=lambda span: span.start_time or 0)
        ids = {span.context.span_id for span in spans if span.context is not None}
        children: dict[int | None, list[ReadableSpan]] = {}
        for span in spans:
            parent = span.parent.span_id if span.parent is not None else None
            children.setdefault(parent if parent in ids else None, []).append(span)
        out: list[tuple[int, str]] = []

        def walk(parent: int | None, depth: int) -> None:
            for span in children.get(parent, []):
                out.append((depth, span.name))
                if span.context is not None:
                    walk(span.context.span_id, depth + 1)

        walk(None, 0)
        return out

    def metric(self, name: str) -> list[Any]:
        """The data points of the OTel metric ``name`` (collected now), across scopes."""
        data = self._reader.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    def prometheus_text(self) -> str:
        """The Prometheus exposition text, as ``/metrics`` would serve it."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def series(self, prometheus_name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample named ``prometheus_name``: ``(labels, value)``."""
        from prometheus_client.parser import text_string_to_metric_families

        found: list[tuple[dict[str, str], float]] = []
        for family in text_string_to_metric_families(self.prometheus_text()):
            for sample in family.samples:
                if sample.name == prometheus_name:
                    found.append((dict(sample.labels), float(sample.value)))
        return found

    def shutdown(self) -> None:
        """Release the providers."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@contextmanager
def capture_telemetry() -> Iterator[TelemetryCapture]:
    """Record the spans and metrics of flows and planners run inside the block."""
    capture = TelemetryCapture()
    try:
        with override_providers(Providers(capture.tracer_provider, capture.meter_provider)):
            yield capture
    finally:
        capture.shutdown()
