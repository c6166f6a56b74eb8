"""Scenarios that install OTel globals or process-wide options, each run in a fresh interpreter.

``python globals_child.py SCENARIO PARAMS_JSON`` prints one JSON report as its last line. The OTel global
providers can be set once per process and the runtime options (``tenant``, ``quiet_nodes``) are
process-wide, so the tests in ``test_options.py``, ``test_cardinality.py`` and ``test_sdk_surfaces.py`` run
these in a child process. Only the public API (and the OTel SDK) is used.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from penguiflow_otel import Context, Headers, Message, Node, PenguiFlow, create, telemetry
from penguiflow_otel.propagation import inject
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import capture_telemetry

Report = dict[str, Any]


class Warnings(logging.Handler):
    """Keeps the messages logged on ``penguiflow_otel.telemetry`` at WARNING and above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class CountingIdGenerator(IdGenerator):
    """A non-random generator (as X-Ray's time-based one is): ids 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        self.last += 1
        return self.last

    def is_trace_id_random(self) -> bool:
        return False


def span_report(span: ReadableSpan) -> dict[str, Any]:
    """Name, ids (hex), parent and attributes of one finished span."""
    assert span.context is not None
    return {
        "name": span.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "sampled": span.context.trace_flags.sampled,
        "attributes": {key: str(value) for key, value in (span.attributes or {}).items()},
    }


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[dict[str, Any]]]:
    """Every data point per metric name: attributes and a value (a sum, or a histogram's count)."""
    found: dict[str, list[dict[str, Any]]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data is not None else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    number = getattr(point, "value", None)
                    found.setdefault(metric.name, []).append(
                        {
                            "attributes": {key: str(item) for key, item in (point.attributes or {}).items()},
                            "value": number if number is not None else getattr(point, "count", None),
                        }
                    )
    return found


def install_globals(sampler: str | None = None, generator: IdGenerator | None = None) -> tuple[Any, Any]:
    """Install SDK providers as the OTel globals, as an application would; return exporter and reader."""
    exporter = InMemorySpanExporter()
    options: dict[str, Any] = {}
    if sampler == "ratio0":
        options["sampler"] = ParentBased(TraceIdRatioBased(0.0))
    if generator is not None:
        options["id_generator"] = generator
    provider = TracerProvider(**options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader


async def passthrough(message: Any, ctx: Context) -> Any:
    """Return the input."""
    return message


def chain(*names: str, body: Callable[..., Any] = passthrough) -> PenguiFlow:
    """Nodes ``names`` in a chain; the last one runs ``body``."""
    nodes = [Node(passthrough, name=name) for name in names[:-1]] + [Node(body, name=names[-1])]
    adjacencies = [a.to(b) for a, b in itertools.pairwise(nodes)]
    return create(*adjacencies, nodes[-1].to())


async def run_messages(flow: PenguiFlow, messages: list[Any]) -> list[Any]:
    """Run ``flow``, emit each message, fetch as many results, stop."""
    flow.run()
    for message in messages:
        await flow.emit(message)
    results = [await flow.fetch() for _ in messages]
    await flow.stop()
    return results


def message(
    trace_id: str | None = None, tenant: str = "acme", traceparent: str | None = None
) -> Message[Any]:
    """A message for ``tenant``, with the given trace id and traceparent when set."""
    fields: dict[str, Any] = {} if trace_id is None else {"trace_id": trace_id}
    return Message(payload="p", headers=Headers(tenant=tenant, traceparent=traceparent), **fields)


# Histograms ----------------------------------------------------------------------------------------

HISTOGRAMS = (
    names.METRIC_TRACE_DURATION,
    names.METRIC_NODE_DURATION,
    names.METRIC_QUEUE_WAIT_DURATION,
    names.METRIC_QUEUE_BLOCKED_DURATION,
)


def sdk_histogram_exposition(points: dict[str, list[Any]]) -> str:
    """The exposition of SDK histograms recording, per catalog histogram, each point's sum once.

    Only points of count 1 can be replayed exactly (their one value is their sum).
    """
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, generate_latest

    from penguiflow_otel import __version__

    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry)], shutdown_on_exit=False
    )
    meter = provider.get_meter(names.SCOPE_NAME, __version__, schema_url=names.SCHEMA_URL)
    for spec in HISTOGRAMS:
        histogram = meter.create_histogram(
            spec.name,
            unit=spec.unit,
            description=spec.description,
            explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
        )
        for point in points.get(spec.name, []):
            assert point.count == 1, (spec.name, point.count)
            histogram.record(point.sum, dict(point.attributes))
    text = generate_latest(registry).decode()
    provider.shutdown()
    return text


def histogram_families(text: str) -> dict[str, list[str]]:
    """The exposition lines of each catalog histogram family present in ``text``."""
    families: dict[str, list[str]] = {}
    for line in text.splitlines():
        for spec in HISTOGRAMS:
            family = spec.prometheus
            if line.startswith((f"# HELP {family} ", f"# TYPE {family} ", f"{family}_")):
                families.setdefault(family, []).append(line)
    return families


class HistogramRecords:
    """Counts calls of the SDK's histogram ``record`` per instrument name (a spy on a private SDK class)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics._internal.instrument import _Histogram

        self.counts: dict[str, int] = {}
        self._cls = _Histogram
        self._original = _Histogram.record
        counts = self.counts
        original = self._original

        def record(instrument: Any, amount: Any, attributes: Any = None, context: Any = None) -> None:
            counts[instrument.name] = counts.get(instrument.name, 0) + 1
            original(instrument, amount, attributes, context)

        self._spy = record

    def __enter__(self) -> HistogramRecords:
        self._cls.record = self._spy  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cls.record = self._original  # type: ignore[method-assign]

    def of_runtime_histograms(self) -> int:
        """Calls recorded for the runtime's catalog histograms."""
        return sum(self.counts.get(spec.name, 0) for spec in HISTOGRAMS)


# Scenarios -----------------------------------------------------------------------------------------


async def foreign_provider(params: dict[str, Any]) -> Report:
    """An application-installed provider, optionally ``configure(**configure)`` after it; a 3-node chain."""
    exporter, reader = install_globals()
    handle = None
    if "configure" in params:
        handle = telemetry.configure(**params["configure"])
    flow = chain("a", "relay", "c")
    await run_messages(flow, [message(trace_id=params["trace_id"], tenant="acme")])
    other = trace.get_tracer("someone.else")
    with other.start_as_current_span("theirs"):
        pass
    provider = trace.get_tracer_provider()
    return {
        "spans": [span_report(span) for span in exporter.get_finished_spans()],
        "metrics": metric_points(reader),
        "handle_owns": None if handle is None else [handle.owns_traces, handle.owns_metrics],
        "provider_generator": type(getattr(provider, "id_generator", None)).__name__,
        "other_tracer_generator": type(getattr(other, "id_generator", None)).__name__,
    }


async def custom_generator(params: dict[str, Any]) -> Report:
    """A provider whose generator is not random: two flows run, trace ids are the provider's."""
    exporter, _ = install_globals(generator=CountingIdGenerator())
    for trace_id in params["trace_ids"]:
        await run_messages(chain("a"), [message(trace_id=trace_id)])
    return {"spans": [span_report(span) for span in exporter.get_finished_spans()]}


async def capture_beats_globals(params: dict[str, Any]) -> Report:
    """Global providers installed; one flow inside capture_telemetry(), one outside."""
    exporter, reader = install_globals()
    before = (trace.get_tracer_provider(), metrics.get_meter_provider())
    with capture_telemetry() as tel:
        await run_messages(chain("inside"), [message()])
        captured = [span.name for span in tel.spans()]
        captured_metrics = sorted(
            {
                point.attributes.get("penguiflow.node.name", "")
                for point in tel.metric("penguiflow.node.duration")
            }
        )
    globals_kept = (trace.get_tracer_provider(), metrics.get_meter_provider()) == before
    global_during = [span.name for span in exporter.get_finished_spans()]
    global_metrics_during = metric_points(reader)
    await run_messages(chain("outside"), [message()])
    return {
        "captured": captured,
        "captured_node_metrics": captured_metrics,
        "global_during_capture": global_during,
        "global_metrics_during_capture": sorted(global_metrics_during),
        "global_after": [span.name for span in exporter.get_finished_spans()],
        "globals_kept": globals_kept,
    }


async def sampling(params: dict[str, Any]) -> Report:
    """A provider with the given sampler; a node injects its outbound trace context."""
    exporter, _ = install_globals(sampler=params.get("sampler"))
    carriers: list[dict[str, str]] = []

    async def call_out(item: Any, ctx: Context) -> Any:
        carrier: dict[str, str] = {}
        inject(item, carrier)
        carriers.append(carrier)
        return item

    sent = message(traceparent=params.get("traceparent"))
    await run_messages(chain("a", "b", body=call_out), [sent])
    return {
        "trace_id": sent.trace_id,
        "spans": [span_report(span) for span in exporter.get_finished_spans()],
        "carriers": carriers,
    }


async def tenant_in_capture(params: dict[str, Any]) -> Report:
    """No configure(): a flow inside capture_telemetry(), for the environment's tenant mode."""
    with capture_telemetry() as tel:
        flow = chain("a")
        await run_messages(flow, [message(tenant="acme")])
        return {
            "spans": [span_report(span) for span in tel.spans()],
            "trace_duration": [
                {key: str(item) for key, item in point.attributes.items()}
                for point in tel.metric("penguiflow.trace.duration")
            ],
        }


async def cardinality(params: dict[str, Any]) -> Report:
    """Unique trace ids, many tenants, unique exception messages and many exception classes."""
    classes = [type(f"Failure{index:03d}", (Exception,), {}) for index in range(params["classes"])]

    async def sometimes_fail(item: Any, ctx: Context) -> Any:
        index = int(item.payload)
        if index % 2:
            raise classes[(index // 2) % len(classes)](f"failure {index} for {item.trace_id}")
        return item

    logging.getLogger("penguiflow_otel.core").setLevel(logging.CRITICAL)  # 1 000 failures, no log lines

    trace_ids = [f"order-{index:05d}-{index * 7919:08x}" for index in range(params["traces"])]
    with capture_telemetry() as tel:
        flow = create(Node(sometimes_fail, name="work").to(), emit_errors_to_rookery=True)
        flow.run()
        for index, trace_id in enumerate(trace_ids):
            await flow.emit(
                Message(
                    payload=index,
                    headers=Headers(tenant=f"tenant-{index % params['tenants']:03d}"),
                    trace_id=trace_id,
                )
            )
            await flow.fetch()
        await flow.stop()
        return {"trace_ids": trace_ids, "prometheus": tel.prometheus_text(), "open": len(tel.open_spans())}


async def configure_inspect(params: dict[str, Any]) -> Report:
    """configure() owning both signals; report the built processors, generator and default registry."""
    from prometheus_client import REGISTRY, generate_latest

    handle = telemetry.configure(**params["configure"])
    await run_messages(chain("a"), [message()])
    provider: Any = handle.tracer_provider
    processors = provider._active_span_processor._span_processors
    generator = provider.id_generator
    batch = [getattr(processor, "_batch_processor", None) for processor in processors]
    exposition = generate_latest(REGISTRY).decode()
    await telemetry.shutdown(timeout=5)
    return {
        "processors": [type(processor).__name__ for processor in processors],
        "max_queue_sizes": [getattr(item, "_max_queue_size", None) for item in batch],
        "generator": type(generator).__name__,
        "inner_generator": type(getattr(generator, "inner", None)).__name__,
        "global_registry_has_node_duration": "penguiflow_node_duration_seconds_count" in exposition,
    }


def run_in_child(scenario: str, params: dict[str, Any], env: dict[str, str], timeout: float = 60) -> Report:
    """Run one scenario in a fresh interpreter with ``env``; return its JSON report."""
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__, scenario, json.dumps(params)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    report: Report = json.loads(done.stdout.strip().splitlines()[-1])
    return report


async def histograms_with_a_view(params: dict[str, Any]) -> Report:
    """A global meter provider, with a View for an unrelated instrument when ``view`` is set."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics.view import View
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    memory = InMemoryMetricReader()
    views = [View(instrument_name="somebody.elses.metric")] if params["view"] else []
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry), memory], views=views)
    metrics.set_meter_provider(provider)
    with HistogramRecords() as records:
        await run_messages(chain("a"), [message()])
    points: dict[str, list[Any]] = {}
    data = memory.get_metrics_data()
    for resource_metrics in data.resource_metrics if data is not None else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return {
        "sdk_records": records.of_runtime_histograms(),
        "families": histogram_families(generate_latest(registry).decode()),
        "reference": histogram_families(sdk_histogram_exposition(points)),
    }


async def bsp_queue_full(params: dict[str, Any]) -> Report:
    """configure() exporting over OTLP to an unreachable collector with a tiny BSP queue."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    telemetry.configure(
        traces="otlp",
        otlp_endpoint=params["endpoint"],
        metrics=["prometheus"],
        prometheus_port=0,
        service_name="drops",
    )
    await run_messages(chain("a", "b"), [message() for _ in range(params["messages"])])
    samples = [
        {"labels": dict(sample.labels), "value": sample.value}
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for sample in family.samples
        if sample.name == "otel_sdk_processor_span_processed_total"
    ]
    shutdown = await telemetry.shutdown(timeout=1)
    return {"processed": samples, "shutdown": shutdown}


SCENARIOS = {
    "bsp_queue_full": bsp_queue_full,
    "histograms_with_a_view": histograms_with_a_view,
    "foreign_provider": foreign_provider,
    "custom_generator": custom_generator,
    "capture_beats_globals": capture_beats_globals,
    "sampling": sampling,
    "tenant_in_capture": tenant_in_capture,
    "cardinality": cardinality,
    "configure_inspect": configure_inspect,
}


def main() -> None:
    scenario, params = sys.argv[1], json.loads(sys.argv[2])
    warnings = Warnings()
    logging.getLogger("penguiflow_otel.telemetry").addHandler(warnings)
    report = asyncio.run(SCENARIOS[scenario](params))
    report["warnings"] = warnings.messages
    print(json.dumps(report))


if __name__ == "__main__":
    main()
