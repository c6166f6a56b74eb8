"""SDK, exporter and Prometheus wiring: ``configure()``, ``shutdown()``, ``metrics_asgi_app()``.

The facade imports this module on first use of one of those names, so ``import penguiflow_otel``
never loads the SDK (telemetry.md section 2). OTLP exporters are imported only when chosen (the
gRPC one pulls in ``grpc``). Invariant: everything that can fail (settings, the traces file, the
Prometheus port) fails before any global is installed or any runtime option changes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)

from ._handle import TelemetryHandle
from ._ids import seeded_id_generator
from ._options import set_options
from ._settings import Arguments, Settings, resolve

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

__all__ = ["configure", "metrics_asgi_app", "shutdown"]

_logger = logging.getLogger("penguiflow_otel.telemetry")

SamplerName: TypeAlias = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
AsgiApp: TypeAlias = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]
"""An ASGI application (scope, receive, send)."""

_SELF_METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_SDK_PROCESSOR_LOGGER = "opentelemetry.sdk._shared_internal"
"""The logger of the SDK's ``BatchProcessor``: it warns "Queue full, dropping Span." once per dropped span."""
_INSTANCE_ID = str(uuid.uuid4())
"""``service.instance.id`` of this process, unless the environment or an argument names one."""

_TRACE_ARGS = frozenset({"traces", "traces_file", "sampler", "sampler_arg"})
_METRIC_ARGS = frozenset({"metrics", "prometheus_host", "prometheus_port", "prometheus_registry"})
_SHARED_ARGS = frozenset(
    {"service_name", "service_version", "resource_attributes", "otlp_endpoint", "otlp_protocol"}
)


# configure() ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Installation:
    """What ``configure()`` built, kept for ``shutdown()`` and ``metrics_asgi_app()``."""

    handle: TelemetryHandle
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    server: WSGIServer | None = None
    registry: CollectorRegistry | None = None
    closing: _Closing | None = None
    quieted: logging.Logger | None = None


_LOCK = threading.Lock()
_INSTALLED: _Installation | None = None


def configure(
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    traces: str | Sequence[str] | None = None,
    traces_file: str | os.PathLike[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    prometheus_registry: CollectorRegistry | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: Literal["http/protobuf", "grpc"] | None = None,
    sampler: SamplerName | None = None,
    sampler_arg: float | None = None,
    tenant: Literal["off", "spans", "spans+metrics"] | None = None,
    quiet_nodes: Collection[str] | None = None,
) -> TelemetryHandle:
    """Install the OTel SDK's tracer and meter providers, exporters and ``/metrics`` for this process.

    Every argument defaults to ``None``, "not given": then the standard ``OTEL_*`` environment
    variable applies, else the default (telemetry.md section 3.2). A signal whose global provider the
    application already installed is left alone, and the arguments that only concern it are logged
    as ignored. ``OTEL_SDK_DISABLED=true`` installs nothing. A second call logs a warning and returns
    the first handle. While it owns the traces and the SDK's self-metrics count the batch processor's
    drops, the SDK's per-span "Queue full, dropping Span." warning is off (its logger,
    ``opentelemetry.sdk._shared_internal``, at ERROR until ``shutdown()``, unless the application set
    that logger's level): with the collector down, that call per dropped span is paid on the event loop.

    Args:
        traces: span exporters: ``otlp`` (default), ``console``, ``jsonl`` (needs ``traces_file``) or
            ``none``; a comma-separated string or a sequence.
        metrics: ``prometheus`` (default), ``otlp``, ``console`` or ``none``.
        prometheus_port: ``/metrics`` port on ``prometheus_host`` (default 127.0.0.1:9464); ``0``
            starts no server, for an application that embeds :func:`metrics_asgi_app`.
        prometheus_registry: where the Prometheus reader registers (default ``prometheus_client.REGISTRY``).
        otlp_endpoint: the collector's base URL (``/v1/traces`` is appended for OTLP/HTTP).
        tenant: ``off``, ``spans`` (default) or ``spans+metrics``; applies whoever owns the providers.
        quiet_nodes: node names that get no spans (their metrics stay).

    Raises:
        ValueError: an argument is invalid, ``jsonl`` has no file, or the file cannot be opened.
        OSError: the Prometheus port cannot be bound.
    """
    settings = resolve(
        Arguments(
            service_name=service_name,
            service_version=service_version,
            resource_attributes=resource_attributes,
            traces=traces,
            traces_file=traces_file,
            metrics=metrics,
            prometheus_host=prometheus_host,
            prometheus_port=prometheus_port,
            prometheus_registry=prometheus_registry,
            otlp_endpoint=otlp_endpoint,
            otlp_protocol=otlp_protocol,
            sampler=sampler,
            sampler_arg=sampler_arg,
            tenant=tenant,
            quiet_nodes=quiet_nodes,
        )
    )
    global _INSTALLED
    with _LOCK:
        if _INSTALLED is not None:
            _logger.warning("configure() was already called: returning the first handle, ignoring this call")
            return _INSTALLED.handle
        installation = _install(settings)
        if settings.tenant is not None or settings.quiet_nodes is not None:
            set_options(tenant=settings.tenant, quiet_nodes=settings.quiet_nodes)
        _INSTALLED = installation
        return installation.handle


def _install(settings: Settings) -> _Installation:
    if settings.disabled:
        _logger.info("OTEL_SDK_DISABLED=true: configure() installs no provider")
        return _Installation(TelemetryHandle(None, None, False, False, None))
    foreign_traces = _installed_tracer_provider()
    foreign_metrics = _installed_meter_provider()
    _log_ignored(settings, foreign_traces, foreign_metrics)
    build_traces = foreign_traces is None and bool(settings.traces)
    build_metrics = foreign_metrics is None and bool(settings.metrics)
    resource = _resource(settings) if build_traces or build_metrics else Resource.get_empty()
    installation = _Installation(TelemetryHandle(foreign_traces, foreign_metrics, False, False, None))
    if build_metrics:
        _build_metrics(installation, settings, resource)
    if build_traces:
        try:
            installation.tracer_provider = _build_traces(
                settings, resource, installation.meter_provider or foreign_metrics
            )
        except BaseException:
            _discard(installation)
            raise
    if installation.meter_provider is not None:
        metrics.set_meter_provider(installation.meter_provider)
    if installation.tracer_provider is not None:
        trace.set_tracer_provider(installation.tracer_provider)
        if (installation.meter_provider or foreign_metrics) is not None and not _self_metrics_off():
            installation.quieted = _quiet_queue_full_warnings()
    installation.handle = TelemetryHandle(
        tracer_provider=installation.tracer_provider or foreign_traces,
        meter_provider=installation.meter_provider or foreign_metrics,
        owns_traces=installation.tracer_provider is not None,
        owns_metrics=installation.meter_provider is not None,
        prometheus_url=_url(installation.server),
    )
    _logger.info("telemetry configured: %s", installation.handle)
    return installation


def _installed_tracer_provider() -> trace.TracerProvider | None:
    """The application's global tracer provider, or ``None`` while it is the API's proxy default."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def _installed_meter_provider() -> metrics.MeterProvider | None:
    """The application's global meter provider, or ``None`` while it is the API's proxy default."""
    provider = metrics.get_meter_provider()
    # The proxy class is private to the API; its name is stable across 1.x releases.
    return None if type(provider).__name__ == "_ProxyMeterProvider" else provider


def _log_ignored(
    settings: Settings,
    foreign_traces: trace.TracerProvider | None,
    foreign_metrics: metrics.MeterProvider | None,
) -> None:
    ignored: set[str] = set()
    for kind, provider, own_args in (
        ("TracerProvider", foreign_traces, _TRACE_ARGS),
        ("MeterProvider", foreign_metrics, _METRIC_ARGS),
    ):
        if provider is None:
            continue
        ignored |= settings.given & own_args
        _logger.info(
            "the application already installed a global %s (%s): configure() uses it and builds none",
            kind,
            type(provider).__name__,
        )
    if foreign_traces is not None and foreign_metrics is not None:
        ignored |= settings.given & _SHARED_ARGS
    if ignored:
        _logger.warning("configure() ignored these arguments: %s", ", ".join(sorted(ignored)))


def _resource(settings: Settings) -> Resource:
    # Resource.create applies OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, then the arguments.
    resource = Resource.create(settings.resource_attributes)
    if SERVICE_INSTANCE_ID not in resource.attributes:
        resource = resource.merge(Resource({SERVICE_INSTANCE_ID: _INSTANCE_ID}))
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if name.startswith("unknown_service"):
        _logger.warning(
            "no service name: pass configure(service_name=...) or set OTEL_SERVICE_NAME; using %r", name
        )
    return resource


def _discard(installation: _Installation) -> None:
    """Undo a partial build (nothing was installed globally yet)."""
    if installation.server is not None:
        _stop_server(installation.server)
    if installation.meter_provider is not None:
        installation.meter_provider.shutdown()


# Metrics -------------------------------------------------------------------------------------


def _build_metrics(installation: _Installation, settings: Settings, resource: Resource) -> None:
    readers: list[MetricReader] = []
    try:
        if "prometheus" in settings.metrics:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import REGISTRY

            registry = settings.prometheus_registry or REGISTRY
            if settings.prometheus_port:
                installation.server = _serve(settings.prometheus_host, settings.prometheus_port, registry)
            readers.append(PrometheusMetricReader(registry=registry))
            installation.registry = registry
        if "otlp" in settings.metrics:
            readers.append(PeriodicExportingMetricReader(_otlp_metric_exporter(settings)))
        if "console" in settings.metrics:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    except BaseException:
        for reader in readers:
            with suppress(Exception):
                reader.shutdown()
        _discard(installation)
        raise
    installation.meter_provider = MeterProvider(metric_readers=readers, resource=resource)


def _serve(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def _stop_server(server: WSGIServer) -> None:
    server.shutdown()
    server.server_close()


def _url(server: WSGIServer | None) -> str | None:
    if server is None:
        return None
    host, port = server.server_address[:2]
    host = str(host)
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def _otlp_metric_exporter(settings: Settings) -> MetricExporter:
    if settings.metrics_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=settings.otlp_endpoint)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(endpoint=_signal_url(settings.otlp_endpoint, "metrics"))


def _signal_url(endpoint: str | None, signal: str) -> str | None:
    return None if endpoint is None else f"{endpoint.rstrip('/')}/v1/{signal}"


# Traces --------------------------------------------------------------------------------------


def _build_traces(
    settings: Settings, resource: Resource, self_meter: metrics.MeterProvider | None
) -> TracerProvider:
    exporters: list[SpanExporter] = []
    try:
        with _sdk_self_metrics():
            for name in settings.traces:
                exporters.append(_span_exporter(name, settings, self_meter))
            processors = [
                BatchSpanProcessor(exporter, **_meter_kwargs(BatchSpanProcessor, self_meter))
                for exporter in exporters
            ]
    except BaseException:
        for exporter in exporters:
            with suppress(Exception):
                exporter.shutdown()
        raise
    provider = TracerProvider(
        sampler=_sampler(settings),
        resource=resource,
        id_generator=seeded_id_generator(RandomIdGenerator()),
        **_meter_kwargs(TracerProvider, self_meter),
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def _span_exporter(name: str, settings: Settings, self_meter: metrics.MeterProvider | None) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "jsonl":
        from ._jsonl import JsonLinesSpanExporter

        assert settings.traces_file is not None  # resolve() requires it for jsonl
        try:
            return JsonLinesSpanExporter(settings.traces_file)
        except OSError as exc:
            raise ValueError(
                f"cannot open traces_file {settings.traces_file!r} ({exc}); pass a writable path"
            ) from exc
    if settings.traces_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=settings.otlp_endpoint, **_meter_kwargs(OTLPSpanExporter, self_meter)
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(
        endpoint=_signal_url(settings.otlp_endpoint, "traces"), **_meter_kwargs(HttpSpanExporter, self_meter)
    )


def _sampler(settings: Settings) -> Sampler:
    ratio = settings.sampler_ratio
    samplers: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: DEFAULT_ON,
        "parentbased_always_off": lambda: DEFAULT_OFF,
        "parentbased_traceidratio": lambda: ParentBasedTraceIdRatio(ratio),
    }
    return samplers[settings.sampler]()


def _meter_kwargs(constructor: Callable[..., object], meter: metrics.MeterProvider | None) -> dict[str, Any]:
    """``meter_provider=meter`` when the SDK constructor accepts it (1.45 does; older releases did not)."""
    if meter is None or "meter_provider" not in inspect.signature(constructor).parameters:
        return {}
    return {"meter_provider": meter}


def _self_metrics_off() -> bool:
    """The operator's explicit ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=false``."""
    return os.environ.get(_SELF_METRICS_ENV, "").strip().lower() == "false"


def _quiet_queue_full_warnings() -> logging.Logger | None:
    """Set the SDK batch processor's logger to ERROR and return it; ``None`` if the app set its level.

    With its queue full (collector down: the OTLP exporter's retries hold the processor's thread for
    about 7 s per batch; or that thread starved of the GIL), ``BatchProcessor.emit`` calls
    ``logger.warning`` for every span it drops, on the thread that ends the span: the event loop's.
    The SDK's ``DuplicateFilter`` discards nearly all of those records, but only after each was built
    (a ``LogRecord``, a frame walk): about 11 us per span on a 2-core VM, a third of what starting
    and ending the span costs. At ERROR the call returns at the level check. Only done where the
    drops are counted instead (``otel_sdk_processor_span_processed_total{error_type="queue_full"}``),
    which the caller checks. The logger's other records are an INFO and an ERROR (a failed export),
    which stays.
    """
    logger = logging.getLogger(_SDK_PROCESSOR_LOGGER)
    if logger.level != logging.NOTSET:
        return None
    logger.setLevel(logging.ERROR)
    return logger


def _restore_queue_full_warnings(logger: logging.Logger) -> None:
    """Undo ``_quiet_queue_full_warnings``, unless the application changed the level since."""
    if logger.level == logging.ERROR:
        logger.setLevel(logging.NOTSET)


@contextmanager
def _sdk_self_metrics() -> Iterator[None]:
    """Turn the SDK's own metrics on while processors and exporters are built.

    SDK 1.45 reads the variable only in those constructors; an operator's explicit ``false`` wins.
    """
    previous = os.environ.get(_SELF_METRICS_ENV)
    if _self_metrics_off():
        yield
        return
    os.environ[_SELF_METRICS_ENV] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_SELF_METRICS_ENV, None)
        else:
            os.environ[_SELF_METRICS_ENV] = previous


# shutdown() ----------------------------------------------------------------------------------


class _Closing:
    """Shuts the owned providers down once, on a daemon thread; any number of loops may wait for it.

    Not ``asyncio.to_thread``: on 3.11 ``asyncio.run`` joins the default executor without a timeout,
    so a hung collector would hold up interpreter exit.
    """

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        thread = threading.Thread(
            target=self._run, args=(steps,), name="penguiflow-otel-shutdown", daemon=True
        )
        thread.start()

    def _run(self, steps: list[Callable[[], None]]) -> None:
        # Providers shut down side by side, so one hung exporter does not hold up the others.
        threads = [threading.Thread(target=_guarded, args=(step,), daemon=True) for step in steps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with self._lock:
            self._done = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with suppress(RuntimeError):  # that loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_set_done, future)

    async def wait(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._done:
                return True
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True


def _guarded(step: Callable[[], None]) -> None:
    try:
        step()
    except Exception:
        _logger.exception("telemetry shutdown step failed")


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def shutdown(timeout: float = 5.0) -> bool:
    """Flush and shut down what ``configure()`` built, off the event loop; stop ``/metrics``.

    Providers the application installed are left alone. Idempotent. Returns ``False`` when
    ``timeout`` seconds pass first; the shutdown then finishes in the background on a daemon
    thread, which does not hold up interpreter exit.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0; got {timeout!r}")
    with _LOCK:
        installation = _INSTALLED
        if installation is None:
            return True
        if installation.closing is None:
            installation.closing = _Closing(_shutdown_steps(installation))
        closing = installation.closing
    return await closing.wait(timeout)


def _shutdown_steps(installation: _Installation) -> list[Callable[[], None]]:
    steps: list[Callable[[], None]] = []
    if installation.server is not None:
        steps.append(functools.partial(_stop_server, installation.server))
    if installation.tracer_provider is not None:
        steps.append(functools.partial(_shutdown_traces, installation.tracer_provider, installation.quieted))
    if installation.meter_provider is not None:
        steps.append(installation.meter_provider.shutdown)
    return steps


def _shutdown_traces(provider: TracerProvider, quieted: logging.Logger | None) -> None:
    try:
        provider.shutdown()
    finally:
        if quieted is not None:
            _restore_queue_full_warnings(quieted)


# metrics_asgi_app() --------------------------------------------------------------------------


def metrics_asgi_app() -> AsgiApp:
    """An ASGI app serving ``/metrics`` from ``configure()``'s registry (else the default registry).

    Embed it in an ASGI server and pass ``configure(prometheus_port=0)`` so no second server starts.
    """
    from prometheus_client import REGISTRY, make_asgi_app

    installation = _INSTALLED
    registry = installation.registry if installation is not None else None
    return cast(AsgiApp, make_asgi_app(registry or REGISTRY))


for _public in (configure, shutdown, metrics_asgi_app):
    _public.__module__ = "penguiflow_otel.telemetry"
