"""Shared test configuration and fixtures.

Async tests run with the event loop in debug mode (``asyncio_debug = true`` in pyproject.toml);
the soak test switches it off itself because it measures a long run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flowkit import EventRecorder
from loopback import Servers


@pytest.fixture
def recorder() -> EventRecorder:
    """A fresh recording middleware: every FlowEvent it is handed, with waiters per event type."""
    return EventRecorder()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Executables started by the test in ``tmp_path``, all stopped at teardown (SIGTERM, 5 s, SIGKILL)."""
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
