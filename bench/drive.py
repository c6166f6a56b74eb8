"""The driving pattern every implementation gets: one producer emits, one consumer fetches.

Standard library only: this module also runs under upstream's interpreter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter_ns

__all__ = ["DriveResult", "FlowHandle", "drive"]


@dataclass(frozen=True, slots=True)
class FlowHandle:
    """A running flow as the driver sees it: bound ``emit``, ``fetch`` and ``stop`` callables."""

    emit: Callable[[object], Awaitable[object]]
    fetch: Callable[[], Awaitable[object]]
    stop: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DriveResult:
    """What one drive measured. Latencies are per message, from just before emit to just after fetch."""

    sent: int
    results: int
    invalid: int
    elapsed_ns: int
    latencies_ns: list[int]
    timed_out: bool


async def drive(
    flow: FlowHandle,
    make: Callable[[int], object],
    key: Callable[[object], int],
    count: int,
    budget_s: float,
) -> DriveResult:
    """Emit ``make(i)`` for ``i`` in ``range(count)`` while fetching ``count`` results concurrently.

    ``key`` maps a fetched result back to its ``i`` (or ``-1`` when the result is not one we sent); a
    result counts only once per ``i``, so duplicates and foreign objects cannot make up for drops.
    If everything has not arrived within ``budget_s``, the drive stops early and says so.
    """
    emitted_at = [0] * count
    latencies = [0] * count
    seen = bytearray(count)
    invalid = 0
    emit, fetch = flow.emit, flow.fetch

    async def produce() -> None:
        for i in range(count):
            item = make(i)
            emitted_at[i] = perf_counter_ns()
            await emit(item)

    async def consume() -> None:
        nonlocal invalid
        for _ in range(count):
            result = await fetch()
            now = perf_counter_ns()
            i = key(result)
            if 0 <= i < count and not seen[i]:
                seen[i] = 1
                latencies[i] = now - emitted_at[i]
            else:
                invalid += 1

    timed_out = False
    start = perf_counter_ns()
    try:
        async with asyncio.timeout(budget_s):
            await asyncio.gather(produce(), consume())
    except TimeoutError:
        timed_out = True
    elapsed = perf_counter_ns() - start
    received = [lat for i, lat in enumerate(latencies) if seen[i]]
    return DriveResult(count, seen.count(1), invalid, elapsed, received, timed_out)
