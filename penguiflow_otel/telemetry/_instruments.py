"""The runtime's metric instruments, created once per meter provider from the catalog.

Observable instruments get one callback each, reading the copy-on-write tuple of running flows
that ``flow_started`` / ``flow_stopped`` replace (SDK 1.45 cannot add or remove callbacks after
creation). Callbacks run on the collection thread: they read plain ints and lengths, never touch
the event loop and never raise. Only ``opentelemetry-api`` is imported.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, MeterProvider, Observation

from . import names as n
from ._histograms import LocalHistogram, install_local_histograms, supports_local_histograms

if TYPE_CHECKING:
    from .._runner import PenguiFlow

__all__ = ["Recorder", "RuntimeInstruments", "instruments_for"]

_logger = logging.getLogger("penguiflow_otel.telemetry")
Attrs = dict[str, Any]


class Recorder(Protocol):
    """What the hooks need of a histogram: an SDK one, or a local one (``_histograms.py``)."""

    def record(self, value: float, attributes: Mapping[str, Any]) -> None: ...


class RuntimeInstruments:
    """Every runtime instrument of one meter provider, plus the flows its gauges read."""

    def __init__(self, meter: Meter, local: list[LocalHistogram] | None = None) -> None:
        self.flows: tuple[PenguiFlow, ...] = ()
        self._lock = threading.Lock()
        specs = (
            n.METRIC_TRACE_DURATION,
            n.METRIC_NODE_DURATION,
            n.METRIC_QUEUE_WAIT_DURATION,
            n.METRIC_QUEUE_BLOCKED_DURATION,
        )
        histograms: list[Recorder]
        if local is not None:
            histograms = [LocalHistogram(spec) for spec in specs]
            local.extend(histograms)  # type: ignore[arg-type]
        else:
            histograms = [_histogram(meter, spec) for spec in specs]
        self.local_histograms = local is not None
        self.trace_duration, self.node_duration, self.queue_wait, self.queue_blocked = histograms
        self.trace_cancellations = _counter(meter, n.METRIC_TRACE_CANCELLATIONS)
        self.node_retries = _counter(meter, n.METRIC_NODE_RETRIES)
        self.node_failures = _counter(meter, n.METRIC_NODE_FAILURES)
        self.message_dropped = _counter(meter, n.METRIC_MESSAGE_DROPPED)
        self.stream_chunks = _counter(meter, n.METRIC_STREAM_CHUNKS)
        self.propagation_invalid = _counter(meter, n.METRIC_PROPAGATION_INVALID)
        self.consumer_failures = _counter(meter, n.METRIC_CONSUMER_FAILURES)
        self.telemetry_errors = _counter(meter, n.METRIC_TELEMETRY_ERRORS)
        self._error_types: set[str] = set()
        self._tenants: set[str] = set()
        for spec, read in (
            (n.METRIC_TRACE_ACTIVE, self._trace_active),
            (n.METRIC_NODE_ACTIVE, self._node_active),
            (n.METRIC_NODE_ACTIVE_LIMIT, self._node_active_limit),
            (n.METRIC_QUEUE_SIZE, self._queue_size),
            (n.METRIC_QUEUE_CAPACITY, self._queue_capacity),
        ):
            meter.create_observable_up_down_counter(
                spec.name, callbacks=[self._guarded(read)], unit=spec.unit, description=spec.description
            )

    # Running flows ---------------------------------------------------------------------------

    def add_flow(self, flow: PenguiFlow) -> None:
        """A flow started: its gauges appear."""
        with self._lock:
            if flow not in self.flows:
                self.flows = (*self.flows, flow)

    def remove_flow(self, flow: PenguiFlow) -> None:
        """A flow stopped: its series disappear."""
        with self._lock:
            self.flows = tuple(f for f in self.flows if f is not flow)

    # Cardinality -----------------------------------------------------------------------------

    def error_type(self, value: str) -> str:
        """``value``, or ``_OTHER`` past the cap of distinct error types (counted as an overflow)."""
        if value in self._error_types:
            return value
        if len(self._error_types) < n.ERROR_TYPE_CAP:
            self._error_types.add(value)
            return value
        self.telemetry_errors.add(1, {n.ATTR_ERROR_TYPE: n.ERROR_TYPE_CARDINALITY_OVERFLOW})
        return n.OTHER

    def tenant(self, value: str) -> str:
        """``value``, or ``_OTHER`` past the cap of distinct tenants on metrics (counted as an overflow)."""
        if value in self._tenants:
            return value
        if len(self._tenants) < n.TENANT_CAP:
            self._tenants.add(value)
            return value
        self.telemetry_errors.add(1, {n.ATTR_ERROR_TYPE: n.ERROR_TYPE_CARDINALITY_OVERFLOW})
        return n.OTHER

    def instrumentation_error(self) -> None:
        """Count a failure inside the telemetry code itself."""
        self.telemetry_errors.add(1, {n.ATTR_ERROR_TYPE: n.ERROR_TYPE_INSTRUMENTATION_ERROR})

    # Observable callbacks --------------------------------------------------------------------

    def _guarded(
        self, read: Callable[[], Iterator[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return list(read())
            except Exception:
                _logger.debug("metric callback failed", exc_info=True)
                self.instrumentation_error()
                return []

        return callback

    @staticmethod
    def _summed(
        values: Iterable[tuple[tuple[str, ...], int]], keys: tuple[str, ...]
    ) -> Iterator[Observation]:
        totals: dict[tuple[str, ...], int] = {}
        for key, value in values:
            totals[key] = totals.get(key, 0) + value
        for key, value in totals.items():
            yield Observation(value, dict(zip(keys, key, strict=True)))

    def _trace_active(self) -> Iterator[Observation]:
        values = (((flow.name,), flow._active_traces) for flow in self.flows)
        return self._summed(values, (n.ATTR_FLOW_NAME,))

    def _node_active(self) -> Iterator[Observation]:
        values = (
            ((flow.name, str(rt.node.name)), rt.inflight)
            for flow in self.flows
            for rt in flow._node_rt.values()
        )
        return self._summed(values, (n.ATTR_FLOW_NAME, n.ATTR_NODE_NAME))

    def _node_active_limit(self) -> Iterator[Observation]:
        values = (
            ((flow.name, str(rt.node.name)), rt.node.policy.concurrency)
            for flow in self.flows
            for rt in flow._node_rt.values()
        )
        return self._summed(values, (n.ATTR_FLOW_NAME, n.ATTR_NODE_NAME))

    def _queue_size(self) -> Iterator[Observation]:
        values = (((flow.name, floe.name), floe.qsize()) for flow in self.flows for floe in flow._floes)
        return self._summed(values, (n.ATTR_FLOW_NAME, n.ATTR_QUEUE_NAME))

    def _queue_capacity(self) -> Iterator[Observation]:
        values = (
            ((flow.name, floe.name), floe.maxsize)
            for flow in self.flows
            for floe in flow._floes
            if floe.maxsize > 0 and floe._inbox is not None
        )
        return self._summed(values, (n.ATTR_FLOW_NAME, n.ATTR_QUEUE_NAME))


def _histogram(meter: Meter, spec: n.MetricSpec) -> Histogram:
    return meter.create_histogram(
        spec.name,
        unit=spec.unit,
        description=spec.description,
        explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
    )


def _counter(meter: Meter, spec: n.MetricSpec) -> Counter:
    return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)


_BY_PROVIDER: weakref.WeakKeyDictionary[MeterProvider, RuntimeInstruments] = weakref.WeakKeyDictionary()
_BY_PROVIDER_LOCK = threading.Lock()


def instruments_for(meter_provider: MeterProvider) -> RuntimeInstruments:
    """The runtime instruments of ``meter_provider``, created on first use."""
    found = _BY_PROVIDER.get(meter_provider)
    if found is not None:
        return found
    with _BY_PROVIDER_LOCK:
        found = _BY_PROVIDER.get(meter_provider)
        if found is None:
            from .._version import __version__

            meter = meter_provider.get_meter(n.SCOPE_NAME, __version__, schema_url=n.SCHEMA_URL)
            local: list[LocalHistogram] | None = [] if supports_local_histograms(meter_provider) else None
            found = _BY_PROVIDER[meter_provider] = RuntimeInstruments(meter, local)
            if local is not None:
                install_local_histograms(meter_provider, local, __version__)
        return found
