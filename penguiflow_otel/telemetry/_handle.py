"""``TelemetryHandle``: what ``configure()`` set up. Standard library only, so the facade stays light."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["TelemetryHandle"]


@dataclass(frozen=True, slots=True)
class TelemetryHandle:
    """The providers in force after ``configure()``, and which of them it built.

    Attributes:
        tracer_provider: the provider spans go to: the one ``configure()`` built, the one the
            application had already installed, or ``None`` when traces are off.
        meter_provider: the same for metrics.
        owns_traces: ``configure()`` built the tracer provider (``shutdown()`` flushes it).
        owns_metrics: ``configure()`` built the meter provider.
        prometheus_url: the ``/metrics`` URL ``configure()`` serves, or ``None`` when it serves none
            (``prometheus_port=0``, no ``prometheus`` exporter, or metrics not owned).
    """

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    owns_traces: bool
    owns_metrics: bool
    prometheus_url: str | None


# The public home is the ``penguiflow_otel.telemetry`` facade, which loads this module on first use.
TelemetryHandle.__module__ = "penguiflow_otel.telemetry"
