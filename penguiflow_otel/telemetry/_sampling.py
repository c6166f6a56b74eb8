"""Unsampled roots without the SDK: the root decision of a trace-id ratio sampler, taken here.

Under 1 % sampling, 99 traces in 100 start a root that records nothing; through ``Tracer.start_span``
that costs a context lookup, a sampler call, a ``SamplingResult`` and the SDK's own bookkeeping, a
large share of an unsampled message's telemetry. When the tracer's *root* decision depends on the
trace id alone (``TraceIdRatioBased``, alone or as the root of ``ParentBased``, or ``ALWAYS_OFF``),
the hooks take that decision here for roots with no parent and build the ``NonRecordingSpan``
themselves, with exactly what the SDK would give it: the imposed trace id, a span id from the
tracer's generator, flags ``DEFAULT`` (plus the random-trace-id flag when the id was minted) and an
empty trace state. Sampled roots, roots with a parent and every other sampler go through the SDK.

This reads SDK 1.45 private attributes (``ParentBased._root``, ``Tracer._is_enabled``,
``Tracer._tracer_metrics``): :func:`root_ratio_bound` checks each and answers ``None`` (use the SDK)
where one is missing; a test compares the spans built here with the SDK's for the locked version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["UnsampledRoots", "unsampled_roots"]


class UnsampledRoots:
    """Decides roots under a trace-id ratio and builds the unsampled ones (see the module docstring)."""

    __slots__ = (
        "_bound",
        "_context",
        "_default",
        "_enabled",
        "_random",
        "_span",
        "_span_ids",
        "_started",
        "limit",
    )

    def __init__(self, tracer: Any, bound: int, limit: int) -> None:
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        self._enabled = tracer._is_enabled
        self._span, self._context = NonRecordingSpan, SpanContext
        self._bound = bound
        self.limit = limit
        self._span_ids = tracer.id_generator.generate_span_id
        self._default = TraceFlags(TraceFlags.DEFAULT)
        self._random = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
        metrics = tracer._tracer_metrics
        # With the SDK's own metrics on, a dropped root still counts as a started span there.
        self._started = (
            None
            if type(metrics).__name__ == "NoOpTracerMetrics"
            else (lambda: metrics.start_span(None, Decision.DROP))
        )

    def unsampled(self, trace_id: int, is_random: bool) -> Span | None:
        """The non-recording root for ``trace_id`` if the sampler drops it; ``None``: start it in the SDK."""
        if trace_id & self.limit < self._bound or not self._enabled():
            return None
        if self._started is not None:
            self._started()
        flags = self._random if is_random else self._default
        return self._span(self._context(trace_id, self._span_ids(), False, flags))


def unsampled_roots(tracer: Tracer | None) -> UnsampledRoots | None:
    """The fast root decision for ``tracer``, or ``None`` when its sampler or SDK does not allow one."""
    if tracer is None:
        return None
    try:
        from opentelemetry.sdk.trace import Tracer as SdkTracer
        from opentelemetry.sdk.trace.sampling import (
            Decision,
            ParentBased,
            ParentBasedTraceIdRatio,
            StaticSampler,
            TraceIdRatioBased,
        )
    except ImportError:  # pragma: no cover - the SDK ships with the telemetry extra
        return None
    if type(tracer) is not SdkTracer:
        return None
    needed = ("sampler", "id_generator", "_is_enabled", "_tracer_metrics")
    if not all(hasattr(tracer, name) for name in needed):
        return None
    sampler: Any = tracer.sampler
    parent_based = type(sampler) in (ParentBased, ParentBasedTraceIdRatio)
    root = getattr(sampler, "_root", None) if parent_based else sampler
    if type(root) is TraceIdRatioBased:
        return UnsampledRoots(tracer, root.bound, TraceIdRatioBased.TRACE_ID_LIMIT)
    if type(root) is StaticSampler and root.should_sample(None, 1, "").decision is Decision.DROP:
        return UnsampledRoots(tracer, 0, TraceIdRatioBased.TRACE_ID_LIMIT)
    return None
