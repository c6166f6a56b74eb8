"""Which OpenTelemetry providers flows and planners use.

Order: the ``capture_telemetry()`` override (a context variable, so a test's providers never leak
into another test and the OTel globals are never touched), then the OTel global providers when an
application (or ``configure()``) installed real ones. With neither, callers run no-op telemetry.
Only ``opentelemetry-api`` is imported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["Providers", "override_providers", "resolve_providers"]


class Providers(NamedTuple):
    """The tracer and meter providers in force; ``None`` for a signal that is off."""

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None


_OVERRIDE: ContextVar[Providers | None] = ContextVar("penguiflow_otel_providers", default=None)
_NOOP_METER_PROVIDERS = frozenset({"_ProxyMeterProvider", "NoOpMeterProvider"})


@contextmanager
def override_providers(providers: Providers) -> Iterator[None]:
    """Make ``providers`` the ones resolved in this context (used by ``capture_telemetry``)."""
    token = _OVERRIDE.set(providers)
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def resolve_providers() -> Providers:
    """The override if set, else the real global providers, else ``(None, None)``."""
    override = _OVERRIDE.get()
    if override is not None:
        return override
    from opentelemetry import metrics, trace

    tracer_provider: TracerProvider | None = trace.get_tracer_provider()
    if isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        tracer_provider = None
    meter_provider: MeterProvider | None = metrics.get_meter_provider()
    if type(meter_provider).__name__ in _NOOP_METER_PROVIDERS:
        meter_provider = None
    return Providers(tracer_provider, meter_provider)
