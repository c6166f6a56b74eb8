"""Test doubles for code built on penguiflow_otel."""

from ._clock import ManualClock as ManualClock

__all__ = ["ManualClock"]
