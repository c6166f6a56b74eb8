"""A clock moved by hand, for deadline and backoff arithmetic in tests."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """A settable :class:`~penguiflow_otel._clock.Clock`; time moves only when a test moves it.

    It changes what the runtime reads as "now"; it does not speed up ``asyncio.sleep`` or loop
    timers (no virtual-time event loop).

    Args:
        start_time: The initial wall time, in epoch seconds.
        start_monotonic: The initial monotonic reading.
    """

    __slots__ = ("_monotonic", "_time")

    def __init__(self, start_time: float = 1_700_000_000.0, start_monotonic: float = 0.0) -> None:
        self._time = float(start_time)
        self._monotonic = float(start_monotonic)

    def time(self) -> float:
        """The current wall time, in epoch seconds."""
        return self._time

    def monotonic(self) -> float:
        """The current monotonic reading."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds``.

        Raises:
            ValueError: ``seconds`` is negative or NaN; monotonic time never goes back.
        """
        if not seconds >= 0:
            raise ValueError(f"ManualClock.advance() needs a non-negative number of seconds, got {seconds!r}")
        self._time += seconds
        self._monotonic += seconds

    def set_time(self, epoch: float) -> None:
        """Set the wall time to ``epoch`` (in either direction); the monotonic reading is unchanged."""
        self._time = float(epoch)

    def __repr__(self) -> str:
        return f"ManualClock(time={self._time!r}, monotonic={self._monotonic!r})"
