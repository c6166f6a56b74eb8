"""pytest plugin offering :func:`~penguiflow_otel.testing.capture_telemetry` as the ``telemetry`` fixture.

Opt in from a ``conftest.py`` (telemetry.md section 13)::

    pytest_plugins = ["penguiflow_otel.testing.pytest_plugin"]

Only this module imports pytest; ``penguiflow_otel.testing`` itself does not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._capture import TelemetryCapture, capture_telemetry

__all__ = ["telemetry"]


@pytest.fixture
def telemetry() -> Iterator[TelemetryCapture]:
    """Spans and metrics of the flows and planners the test runs (a ``capture_telemetry()`` block)."""
    with capture_telemetry() as capture:
        yield capture
