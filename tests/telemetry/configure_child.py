"""Scenarios that call ``telemetry.configure()``, each run in a fresh interpreter by the tests.

The OTel global providers can be set once per process, so each scenario gets its own process:
``python configure_child.py SCENARIO PARAMS_JSON``. It prints one JSON report as its last line.
Only the public API is used.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
import sys
import time
import urllib.request
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from penguiflow_otel import telemetry
from penguiflow_otel.telemetry import names


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelname, record.getMessage()))


def _listen_for_logs() -> _Records:
    records = _Records()
    logger = logging.getLogger("penguiflow_otel.telemetry")
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    return records


def _install_foreign(which: str, exporter: InMemorySpanExporter) -> tuple[object, object]:
    tracer_provider: object = None
    meter_provider: object = None
    if which in ("traces", "both"):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        tracer_provider = provider
    if which in ("metrics", "both"):
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def _emit_spans(span_names: list[str]) -> dict[str, Any]:
    """The first name is the root; the others are its children."""
    if not span_names:
        return {}
    tracer = trace.get_tracer("configure_child")
    with tracer.start_as_current_span(span_names[0]) as root:
        for name in span_names[1:]:
            with tracer.start_as_current_span(name):
                pass
    context = root.get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "root_span_id": f"{context.span_id:016x}"}


def _fetch(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return {"status": response.status, "body": response.read().decode()}


async def _call_asgi() -> dict[str, Any]:
    app = telemetry.metrics_asgi_app()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return {"status": sent[0]["status"], "body": body.decode()}


def _port_of(url: str | None) -> int | None:
    return None if url is None else urlsplit(url).port


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _describe(handle: telemetry.TelemetryHandle) -> dict[str, Any]:
    report: dict[str, Any] = {
        "owns_traces": handle.owns_traces,
        "owns_metrics": handle.owns_metrics,
        "prometheus_url": handle.prometheus_url,
        "tracer_provider": type(handle.tracer_provider).__name__,
        "meter_provider": type(handle.meter_provider).__name__,
        "global_tracer_provider": type(trace.get_tracer_provider()).__name__,
        "handle_tracer_is_global": handle.tracer_provider is trace.get_tracer_provider(),
        "handle_meter_is_global": handle.meter_provider is metrics.get_meter_provider(),
        "self_metrics_env": os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"),
    }
    provider = handle.tracer_provider
    if isinstance(provider, TracerProvider):
        report["sampler"] = provider.sampler.get_description()
        report["resource"] = {key: str(value) for key, value in provider.resource.attributes.items()}
    return report


def _configure_kwargs(params: dict[str, Any], registry: CollectorRegistry) -> dict[str, Any]:
    kwargs = dict(params.get("kwargs", {}))
    if params.get("private_registry"):
        kwargs["prometheus_registry"] = registry
    return kwargs


async def scenario_configure(params: dict[str, Any]) -> dict[str, Any]:
    """Configure, emit spans, look at what was built, shut down; see the tests for the parameters."""
    records = _listen_for_logs()
    foreign_spans = InMemorySpanExporter()
    foreign_tracer, foreign_meter = _install_foreign(params.get("foreign", ""), foreign_spans)
    registry = CollectorRegistry()
    sdk_logger = logging.getLogger("opentelemetry.sdk._shared_internal")  # the batch processor's
    if params.get("sdk_logger_level"):
        sdk_logger.setLevel(params["sdk_logger_level"])
    handle = telemetry.configure(**_configure_kwargs(params, registry))
    report = _describe(handle)
    report["sdk_logger_level"] = logging.getLevelName(sdk_logger.level)
    report["same_tracer_as_foreign"] = foreign_tracer is not None and handle.tracer_provider is foreign_tracer
    report["same_meter_as_foreign"] = foreign_meter is not None and handle.meter_provider is foreign_meter
    if params.get("configure_twice"):
        report["second_call_same"] = telemetry.configure(**_configure_kwargs(params, registry)) is handle
    report.update(_emit_spans(params.get("spans", [])))
    for index in range(params.get("roots", 0)):
        with trace.get_tracer("configure_child").start_as_current_span(f"independent-{index}"):
            pass
    if params.get("counter"):
        metrics.get_meter("configure_child").create_counter(params["counter"]).add(1)
    if params.get("force_flush") and isinstance(handle.tracer_provider, TracerProvider):
        handle.tracer_provider.force_flush()
    # Not with a Prometheus reader: its force_flush() queues one more collection for the next scrape.
    if params.get("flush_metrics") and isinstance(handle.meter_provider, MeterProvider):
        handle.meter_provider.force_flush()
    if params.get("probe_port"):
        report["probe_port_accepts"] = _port_accepts(params["probe_port"])
    if params.get("fetch_metrics") and handle.prometheus_url:
        report["fetched"] = _fetch(handle.prometheus_url)
    if params.get("asgi"):
        report["asgi"] = await _call_asgi()
    report["registry_text"] = generate_latest(registry).decode()
    report["foreign_spans"] = [span.name for span in foreign_spans.get_finished_spans()]
    started = time.perf_counter()
    report["shutdown_result"] = await telemetry.shutdown(timeout=params.get("shutdown_timeout", 5.0))
    report["shutdown_seconds"] = time.perf_counter() - started
    report["second_shutdown_result"] = await telemetry.shutdown(timeout=1.0)
    report["sdk_logger_level_after_shutdown"] = logging.getLevelName(sdk_logger.level)
    port = _port_of(handle.prometheus_url)
    report["metrics_port_accepts_after_shutdown"] = port is not None and _port_accepts(port)
    report["logs"] = records.messages
    return report


def _failed_exports(registry: CollectorRegistry) -> float:
    total = 0.0
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == names.SDK_SPAN_EXPORTED_TOTAL and sample.labels.get("error_type"):
                total += sample.value
    return total


def _queue_full_drops(registry: CollectorRegistry) -> float:
    total = 0.0
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if (
                sample.name == names.SDK_SPAN_PROCESSED_TOTAL
                and sample.labels.get("error_type") == names.SDK_ERROR_TYPE_QUEUE_FULL
            ):
                total += sample.value
    return total


class _LogCalls(logging.Filter):
    """Counts the records a logger builds (put first, it sees them before any other filter drops them)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += 1
        return True


class _GcPauses:
    """Records CPython garbage-collector pauses, so loop lag can be told apart from them.

    A full collection stops every thread; with the SDK and exporters loaded it takes tens of
    milliseconds on a small machine, whoever triggers it. That is the interpreter's cost, not
    telemetry blocking the loop, so the heartbeat subtracts pauses that fell inside its wait.
    """

    def __init__(self) -> None:
        self._started = 0.0
        self.spans: list[tuple[float, float]] = []
        gc.callbacks.append(self._record)

    def _record(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.spans.append((self._started, time.perf_counter()))

    def within(self, start: float, end: float) -> float:
        """Seconds of collection between ``start`` and ``end``."""
        return sum(max(0.0, min(end, stop) - max(start, begin)) for begin, stop in list(self.spans))

    def longest(self) -> float:
        return max((stop - begin for begin, stop in self.spans), default=0.0)

    def stop(self) -> None:
        gc.callbacks.remove(self._record)


async def scenario_unreachable(params: dict[str, Any]) -> dict[str, Any]:
    """Spans to a collector that refuses or never answers: the loop never stalls, shutdown is bounded."""
    registry = CollectorRegistry()
    warning_calls = _LogCalls()  # the batch processor's "Queue full, dropping Span." calls
    logging.getLogger("opentelemetry.sdk._shared_internal").filters.insert(0, warning_calls)
    telemetry.configure(
        traces="otlp",
        otlp_endpoint=params["endpoint"],
        metrics="prometheus",
        prometheus_port=0,
        prometheus_registry=registry,
        service_name="unreachable",
    )
    pauses = _GcPauses()
    max_lag = max_raw_lag = 0.0
    running = True

    async def heartbeat() -> None:
        nonlocal max_lag, max_raw_lag
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.010)
            after = time.perf_counter()
            raw = after - before - 0.010
            max_raw_lag = max(max_raw_lag, raw)
            max_lag = max(max_lag, raw - pauses.within(before, after))

    beat = asyncio.create_task(heartbeat())
    tracer = trace.get_tracer("configure_child")
    for _ in range(params["spans"]):
        with tracer.start_as_current_span("work"):
            pass
        await asyncio.sleep(0)  # one span per step, as a flow yields between messages
    # Read the registry off the loop: a collection is the test's own work, not the runtime's.
    deadline = time.monotonic() + 5
    failed = 0.0
    while failed == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        failed = await asyncio.to_thread(_failed_exports, registry)
    queue_full = await asyncio.to_thread(_queue_full_drops, registry)
    started = time.perf_counter()
    result = await telemetry.shutdown(timeout=params["shutdown_timeout"])
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.1)
    running = False
    await beat
    pauses.stop()
    return {
        "failed_exports": failed,
        "queue_full_drops": queue_full,
        "sdk_log_records": warning_calls.count,
        "shutdown_result": result,
        "shutdown_seconds": elapsed,
        "max_lag": max_lag,
        "max_raw_lag": max_raw_lag,
        "max_gc_pause": pauses.longest(),
    }


SCENARIOS = {"configure": scenario_configure, "unreachable": scenario_unreachable}


def main() -> None:
    scenario, params = sys.argv[1], json.loads(sys.argv[2])
    report = asyncio.run(SCENARIOS[scenario](params))
    report["finished_at"] = time.monotonic()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
