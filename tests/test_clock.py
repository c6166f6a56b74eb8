"""ManualClock, the settable clock of penguiflow_otel.testing."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

import penguiflow_otel.testing
from penguiflow_otel.testing import ManualClock


def test_manual_clock_starts_at_the_documented_defaults() -> None:
    """A fresh clock reads 1_700_000_000.0 wall time and 0.0 monotonic time."""
    clock = ManualClock()
    assert (clock.time(), clock.monotonic()) == (1_700_000_000.0, 0.0)


def test_manual_clock_starts_at_the_given_readings() -> None:
    """The constructor's arguments are the first readings, as floats."""
    clock = ManualClock(start_time=10, start_monotonic=3)
    assert (clock.time(), clock.monotonic()) == (10.0, 3.0)
    assert isinstance(clock.time(), float)
    assert isinstance(clock.monotonic(), float)


def test_readings_stay_put_until_the_test_moves_them() -> None:
    """Real time passing does not move a manual clock."""
    clock = ManualClock()
    first = (clock.time(), clock.monotonic())
    time.sleep(0.002)
    assert (clock.time(), clock.monotonic()) == first


def test_advance_moves_wall_and_monotonic_time_together() -> None:
    """advance(s) adds s to both readings."""
    clock = ManualClock(start_time=100.0, start_monotonic=5.0)
    clock.advance(2.5)
    clock.advance(0)
    assert (clock.time(), clock.monotonic()) == (102.5, 7.5)


@pytest.mark.parametrize("seconds", [-0.001, -5, -math.inf])
def test_advance_rejects_a_negative_step(seconds: float) -> None:
    """Monotonic time never goes back, so a negative step raises and changes nothing."""
    clock = ManualClock(start_time=100.0, start_monotonic=5.0)
    with pytest.raises(ValueError, match=r"^ManualClock.advance\(\) needs a non-negative number") as info:
        clock.advance(seconds)
    assert str(info.value) == (
        f"ManualClock.advance() needs a non-negative number of seconds, got {seconds!r}"
    )
    assert (clock.time(), clock.monotonic()) == (100.0, 5.0)


def test_advance_rejects_nan() -> None:
    """A NaN step is refused rather than poisoning both readings."""
    clock = ManualClock()
    with pytest.raises(ValueError, match="got nan"):
        clock.advance(math.nan)
    assert clock.monotonic() == 0.0


def test_set_time_moves_only_the_wall_clock_in_either_direction() -> None:
    """set_time jumps the wall time, even backwards, and leaves monotonic time alone."""
    clock = ManualClock(start_time=100.0, start_monotonic=5.0)
    clock.set_time(50)
    assert (clock.time(), clock.monotonic()) == (50.0, 5.0)
    clock.set_time(1_000.0)
    assert (clock.time(), clock.monotonic()) == (1_000.0, 5.0)


def test_repr_shows_both_readings() -> None:
    """The repr names the class and both readings."""
    assert repr(ManualClock(1.0, 2.0)) == "ManualClock(time=1.0, monotonic=2.0)"


def test_testing_exports_manual_clock_in_a_sorted_all() -> None:
    """penguiflow_otel.testing's __all__ is sorted and lists ManualClock."""
    assert penguiflow_otel.testing.__all__ == sorted(penguiflow_otel.testing.__all__)
    assert "ManualClock" in penguiflow_otel.testing.__all__
    assert penguiflow_otel.testing.ManualClock is ManualClock


def test_importing_testing_does_not_load_the_otel_sdk() -> None:
    """The test doubles import no OpenTelemetry SDK module."""
    code = (
        "import sys, penguiflow_otel.testing\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
