"""The OTel providers a telemetry scenario runs under, and upstream's span middleware.

``install(mode)`` builds the SDK providers explicitly (not through ``penguiflow_otel.telemetry.configure``,
so that both runtimes get the same construction) and makes them the OTel globals. The worker calls it
before the flow is built: our runtime picks the globals up at ``flow.run()``. After the measurement,
``Installed.finish()`` shuts the providers down, outside the clock, and reports what they saw.

- ``full``: ``TracerProvider(sampler=ALWAYS_ON)`` with one ``BatchSpanProcessor`` (SDK defaults) over
  ``DiscardingExporter``, and ``MeterProvider(metric_readers=[PrometheusMetricReader(registry=<own>)])``.
- ``sampled_1pct``: the same with ``ParentBased(TraceIdRatioBased(0.01))``.
- ``collector_down``: ``full`` with the SDK's ``OTLPSpanExporter`` (HTTP/protobuf, default timeout and
  retries) pointed at a loopback port nothing listens on.
- ``spans_only``: ``full`` without the meter provider, for upstream's span middleware, which records
  no metrics (upstream's environment has the SDK but not the Prometheus exporter).

In every mode the SDK's per-dropped-span warning is off, as ``configure()`` sets it
(``quiet_queue_full_warnings``).

Standard library only at import time: this module also runs under upstream's interpreter.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["SPAN_EVENTS_END", "Installed", "install", "span_middleware"]

RATIO: Final = 0.01
# The SDK BatchProcessor's logger: "Queue full, dropping Span." once per dropped span.
SDK_PROCESSOR_LOGGER: Final = "opentelemetry.sdk._shared_internal"
METRIC_PREFIX: Final = "penguiflow"  # the runtime's Prometheus families; target_info and others not counted
# Upstream FlowEvents that end the span a `node_start` opened (success, or every way an attempt fails).
SPAN_EVENTS_END: Final = frozenset(
    {"node_success", "node_error", "node_timeout", "node_failed", "node_cancelled", "node_trace_cancelled"}
)


class _Counted:
    """A ``SpanExporter`` wrapper base: counts the spans handed to ``export``; shuts its target down once."""

    def __init__(self, target: Any = None) -> None:
        self.spans = 0
        self._target = target
        self._shut = False

    def export(self, spans: Any) -> Any:
        self.spans += len(spans)
        if self._target is None:
            from opentelemetry.sdk.trace.export import SpanExportResult

            return SpanExportResult.SUCCESS
        return self._target.export(spans)

    def shutdown(self) -> None:
        if not self._shut and self._target is not None:
            self._target.shutdown()
        self._shut = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _exporter(target: Any = None) -> Any:
    """A counting ``SpanExporter``: discards spans without ``target``, else passes them on to it."""
    from opentelemetry.sdk.trace.export import SpanExporter

    class CountingExporter(_Counted, SpanExporter):
        pass

    return CountingExporter(target)


def closed_port() -> int:
    """A loopback TCP port nothing listens on: bound by the OS, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(slots=True)
class Installed:
    """Providers installed as the OTel globals for one measurement."""

    mode: str
    tracer_provider: Any
    exporter: Any
    meter_provider: Any = None
    registry: Any = None
    extras: dict[str, float] = field(default_factory=dict)

    def finish(self, units: int) -> dict[str, float]:
        """Collect the metrics once, shut everything down; ``spans_per_msg`` over ``units`` items sent.

        ``metric_samples`` counts the Prometheus samples of the runtime's own families (named
        ``penguiflow*``); ``spans_exported`` the spans handed to the exporter, including, with the
        collector down, the queue drained at shutdown (what the processor dropped is not counted).

        With the collector down, the exporter is shut down first: that aborts its retry back-off, so the
        processor's final drain fails fast instead of retrying every batch for its 10 s timeout.
        """
        out: dict[str, float] = {}
        if self.registry is not None:
            families = [m for m in self.registry.collect() if m.name.startswith(METRIC_PREFIX)]
            out["metric_samples"] = float(sum(len(metric.samples) for metric in families))
        if self.mode == "collector_down":
            self.exporter.shutdown()
        self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        out["spans_exported"] = float(self.exporter.spans)
        out["spans_per_msg"] = self.exporter.spans / units if units else 0.0
        return out


def install(mode: str) -> Installed:
    """Build the providers of ``mode`` and set them as the OTel globals (see the module docstring).

    Raises:
        ImportError: the OTel SDK (or, except for ``spans_only``, the Prometheus exporter) is missing.
        ValueError: an unknown mode.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    if mode not in ("full", "sampled_1pct", "collector_down", "spans_only"):
        raise ValueError(f"unknown telemetry mode {mode!r}")
    sampler = ParentBased(TraceIdRatioBased(RATIO)) if mode == "sampled_1pct" else ALWAYS_ON
    if mode == "collector_down":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        target = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{closed_port()}/v1/traces")
        exporter = _exporter(target)
    else:
        exporter = _exporter()
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    installed = Installed(mode, tracer_provider, exporter)
    if mode != "spans_only":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import CollectorRegistry

        installed.registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=installed.registry)
        installed.meter_provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(installed.meter_provider)
    trace.set_tracer_provider(tracer_provider)
    quiet_queue_full_warnings()
    return installed


def quiet_queue_full_warnings() -> None:
    """What ``penguiflow_otel.telemetry.configure()`` does where it owns the trace pipeline: the SDK's
    batch processor logger at ERROR, so a dropped span costs no ``logger.warning`` call (about 11 us each
    here). Applied in every mode, upstream's span middleware included, so both runtimes keep the same
    construction; the drops still show in ``spans_per_msg``.
    """
    logging.getLogger(SDK_PROCESSOR_LOGGER).setLevel(logging.ERROR)


def span_middleware() -> Callable[[Any], Awaitable[None]]:
    """Upstream's FlowEvents as OTel spans, the way its users write it: ``flow.add_middleware(...)``.

    A span per node attempt, named after the node, from ``node_start`` to ``node_success`` (or an
    error event, which sets the status to error), with the events' own timestamps and the trace id, node
    and attempt as attributes. Open spans are keyed by ``(trace_id, node, attempt)``. The tracer comes
    from the global provider, taken when the middleware is built.
    """
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    tracer = trace.get_tracer("bench.span_middleware")
    open_spans: dict[tuple[str | None, str | None, int], Any] = {}

    async def middleware(event: Any) -> None:
        kind = event.event_type
        if kind == "node_start":
            key = (event.trace_id, event.node_name, event.attempt)
            open_spans[key] = tracer.start_span(
                event.node_name or "node",
                start_time=int(event.ts * 1e9),
                attributes={
                    "penguiflow.trace_id": event.trace_id or "",
                    "penguiflow.node": event.node_name or "",
                    "penguiflow.attempt": event.attempt,
                },
            )
        elif kind in SPAN_EVENTS_END:
            span = open_spans.pop((event.trace_id, event.node_name, event.attempt), None)
            if span is None:
                return
            if kind != "node_success":
                span.set_status(Status(StatusCode.ERROR, kind))
            span.end(end_time=int(event.ts * 1e9))

    return middleware
