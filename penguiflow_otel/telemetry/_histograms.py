"""Cheap histograms: bucket counts kept in plain ints, handed to the SDK at collection time.

An SDK histogram record costs several microseconds (attribute hashing, locks, aggregation
objects); a hop records two. Here a record is a ``bisect`` and a few integer additions under a
lock. At collection the points are added to what the SDK collected, as ordinary cumulative
histogram points with the catalog's name, unit, description and buckets, in the
``penguiflow_otel`` scope, so exporters see exactly what SDK histograms would give them.

SDK 1.45 has no public metric-producer interface, so this uses a private surface: each reader's
``_collect`` callback (set by the ``MeterProvider``) is wrapped. It is used only behind
:func:`supports_local_histograms`; where that check fails (another SDK, views, a delta reader),
the runtime records through ordinary SDK histograms. A test pins the surface against the locked
SDK version.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from . import names as n

__all__ = ["LocalHistogram", "install_local_histograms", "supports_local_histograms"]

_MAX_ALIASES = 10_000


class _Point:
    __slots__ = ("attrs", "count", "counts", "max", "min", "start", "sum")

    def __init__(self, attrs: Mapping[str, Any], buckets: int) -> None:
        self.attrs = dict(attrs)
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.start = time.time_ns()


class LocalHistogram:
    """One histogram instrument of the catalog, aggregated in this process."""

    def __init__(self, spec: n.MetricSpec) -> None:
        self.spec = spec
        self.bounds = tuple(spec.buckets or ())
        self._points: dict[frozenset[tuple[str, Any]], _Point] = {}
        self._aliases: dict[int, tuple[Mapping[str, Any], _Point]] = {}
        self._lock = threading.Lock()

    def record(self, value: float, attributes: Mapping[str, Any]) -> None:
        """Add one measurement; ``attributes`` is ideally a long-lived, pre-bound mapping."""
        alias = self._aliases.get(id(attributes))
        point = alias[1] if alias is not None and alias[0] is attributes else self._point(attributes)
        index = bisect_left(self.bounds, value)
        with self._lock:
            point.counts[index] += 1
            point.count += 1
            point.sum += value
            if value < point.min:
                point.min = value
            if value > point.max:
                point.max = value

    def _point(self, attributes: Mapping[str, Any]) -> _Point:
        key = frozenset(attributes.items())
        with self._lock:
            point = self._points.get(key)
            if point is None:
                point = self._points[key] = _Point(attributes, len(self.bounds) + 1)
            if len(self._aliases) < _MAX_ALIASES:
                self._aliases[id(attributes)] = (attributes, point)  # holds the mapping, so ids stay unique
        return point

    def metric(self) -> Any:
        """The collected ``Metric`` (cumulative), or ``None`` when nothing was recorded."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Histogram,
            HistogramDataPoint,
            Metric,
        )

        now = time.time_ns()
        with self._lock:
            points = [
                HistogramDataPoint(
                    attributes=dict(point.attrs),
                    start_time_unix_nano=point.start,
                    time_unix_nano=now,
                    count=point.count,
                    sum=point.sum,
                    bucket_counts=list(point.counts),
                    explicit_bounds=list(self.bounds),
                    min=point.min,
                    max=point.max,
                )
                for point in self._points.values()
                if point.count
            ]
        if not points:
            return None
        spec = self.spec
        data = Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE)
        return Metric(name=spec.name, description=spec.description, unit=spec.unit, data=data)


def supports_local_histograms(meter_provider: object) -> bool:
    """Whether this provider's readers can be given locally aggregated histograms (see module doc)."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics._internal.instrument import _Histogram
        from opentelemetry.sdk.metrics.export import AggregationTemporality
    except ImportError:  # pragma: no cover - the SDK ships with the distribution
        return False
    if type(meter_provider) is not MeterProvider:
        return False
    readers = getattr(meter_provider, "_metric_readers", None)
    config = getattr(meter_provider, "_sdk_config", None)
    if not readers or config is None or getattr(config, "views", None):
        return False
    for reader in readers:
        temporality = getattr(reader, "_instrument_class_temporality", {}).get(_Histogram)
        collect = getattr(reader, "_collect", None)
        if temporality is not AggregationTemporality.CUMULATIVE or not callable(collect):
            return False
    return True


def install_local_histograms(meter_provider: Any, histograms: list[LocalHistogram], version: str) -> None:
    """Wrap each reader's collection so it also returns ``histograms`` in the runtime's scope."""
    resource = meter_provider._sdk_config.resource
    for reader in meter_provider._metric_readers:
        reader._collect = _merging(reader._collect, histograms, resource, version)


def _merging(original: Any, histograms: list[LocalHistogram], resource: Any, version: str) -> Any:
    def collect(reader: Any, timeout_millis: float = 10_000) -> Any:
        data = original(reader, timeout_millis=timeout_millis)
        extra = [metric for metric in (h.metric() for h in histograms) if metric is not None]
        if not extra:
            return data
        return _merged(data, extra, resource, version)

    return collect


def _merged(data: Any, extra: list[Any], resource: Any, version: str) -> Any:
    from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    resource_metrics = list(data.resource_metrics) if data is not None else []
    if not resource_metrics:
        resource_metrics = [ResourceMetrics(resource=resource, scope_metrics=[], schema_url="")]
    first = resource_metrics[0]
    scopes = list(first.scope_metrics)
    for index, scope_metrics in enumerate(scopes):
        if scope_metrics.scope.name == n.SCOPE_NAME:
            scopes[index] = ScopeMetrics(
                scope=scope_metrics.scope,
                metrics=[*scope_metrics.metrics, *extra],
                schema_url=scope_metrics.schema_url,
            )
            break
    else:
        scope = InstrumentationScope(n.SCOPE_NAME, version, n.SCHEMA_URL)
        scopes.append(ScopeMetrics(scope=scope, metrics=extra, schema_url=n.SCHEMA_URL))
    resource_metrics[0] = ResourceMetrics(
        resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
    )
    return MetricsData(resource_metrics=resource_metrics)
