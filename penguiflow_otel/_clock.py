"""The clock seam: wall time for deadlines, monotonic time for backoff and timeouts.

The runtime and the planner read the time only through a :class:`Clock`, so tests can swap in
:class:`penguiflow_otel.testing.ManualClock`. Waits still happen on the running event loop.
"""

from __future__ import annotations

import time
from typing import Final, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """A source of time."""

    def time(self) -> float:
        """Wall time in epoch seconds, compared with ``deadline_s``."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for backoff and timeouts; only differences are meaningful."""
        ...


class SystemClock:
    """The default clock: :func:`time.time` and :func:`time.monotonic`."""

    __slots__ = ()

    def time(self) -> float:
        """Wall time in epoch seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Final[Clock] = SystemClock()
"""The shared system clock, the default wherever a clock is optional."""
