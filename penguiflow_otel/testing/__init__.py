"""Test doubles for code built on penguiflow_otel."""

from ._capture import TelemetryCapture, capture_telemetry
from ._clock import ManualClock

__all__ = ["ManualClock", "TelemetryCapture", "capture_telemetry"]
