"""Test doubles for code built on penguiflow_otel."""

from ._capture import TelemetryCapture, capture_telemetry
from ._clock import ManualClock
from ._scripted import ScriptedCall, ScriptedLLM, ScriptExhaustedError

__all__ = [
    "ManualClock",
    "ScriptExhaustedError",
    "ScriptedCall",
    "ScriptedLLM",
    "TelemetryCapture",
    "capture_telemetry",
]

from .._public import publish

publish(__name__, globals(), __all__)
