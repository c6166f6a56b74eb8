"""The driving patterns every implementation gets, one per kind of scenario.

- ``drive``: one producer emits, one consumer fetches (the chain and fan-out scenarios).
- ``drive_cancel``: many concurrent trace-scoped round trips, half of them cancelled mid-flight.
- ``drive_stream``: one client at a time emits a trace and reads its stream of chunks.
- ``drive_memory``: ``drive`` in ten back-to-back segments with RSS sampled throughout.
- ``drive_runs``: one client awaits whole runs in turn (the planner scenario).

Each returns a ``DriveResult`` whose ``sent``/``results``/``invalid`` let the parent check that nothing
was dropped, duplicated or invented. Standard library only: this module also runs under upstream's
interpreter.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Final

__all__ = [
    "CANCELLED",
    "CHUNKS_PER_TRACE",
    "DriveResult",
    "FlowHandle",
    "RunHandle",
    "drive",
    "drive_cancel",
    "drive_memory",
    "drive_runs",
    "drive_stream",
    "rss_mb",
]

# The streaming graphs emit this many chunks per trace; the stream driver expects exactly this many.
CHUNKS_PER_TRACE: Final = 100
# Upstream's documented way to observe a cancelled trace: wait on its fetch for a while and see nothing.
CONFIRM_CANCEL_S: Final = 0.2


class _Cancelled:
    """The value a handle's ``fetch_traced`` returns for a trace the runtime reports as cancelled."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CANCELLED"


CANCELLED: Final = _Cancelled()


async def _unsupported(*_args: object) -> Any:
    raise NotImplementedError("this graph has no trace-scoped operations")


@dataclass(frozen=True, slots=True)
class FlowHandle:
    """A running flow as the drivers see it.

    Attributes:
        emit: Send one item to the ingress.
        fetch: The next result from the egress, whatever its trace.
        stop: Stop the flow and its tasks.
        emit_traced: ``emit_traced(item, trace_id)`` starts a trace-scoped round trip.
        fetch_traced: ``fetch_traced(trace_id)`` awaits that trace's result, or returns ``CANCELLED`` when
            the runtime reports the trace cancelled.
        cancel: ``cancel(trace_id)``; ``True`` when the trace was still active and is now cancelled.
    """

    emit: Callable[[object], Awaitable[object]]
    fetch: Callable[[], Awaitable[object]]
    stop: Callable[[], Awaitable[object]]
    emit_traced: Callable[[object, str], Awaitable[object]] = _unsupported
    fetch_traced: Callable[[str], Awaitable[object]] = _unsupported
    cancel: Callable[[str], Awaitable[bool]] = _unsupported


@dataclass(frozen=True, slots=True)
class RunHandle:
    """Something driven by whole runs (a planner) rather than through a flow's ingress and egress.

    Attributes:
        run: ``run(i)`` performs unit ``i`` and returns its result.
        key: Maps a result back to its ``i`` after checking it (``-1`` when it is wrong).
        stop: Release what the runs hold.
    """

    run: Callable[[int], Awaitable[object]]
    key: Callable[[object], int]
    stop: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DriveResult:
    """What one drive measured.

    ``sent`` is what the driver must get back, ``results`` how many of those it did get back (each at most
    once), ``invalid`` everything else it saw (duplicates, foreign or wrong results, broken contracts).
    ``latencies_ns`` is per delivered unit; what it measures depends on the driver. ``extras`` holds
    driver-specific numbers (counts, RSS), ``series`` longer lists that go to JSON only, and ``measured``
    the units the clock covers when that is not all of ``results`` (a warm-up inside the drive).
    """

    sent: int
    results: int
    invalid: int
    elapsed_ns: int
    latencies_ns: list[int]
    timed_out: bool
    extras: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    measured: int | None = None

    @property
    def timed_units(self) -> int:
        """How many units ``elapsed_ns`` covers: ``results`` unless the driver timed only part of them."""
        return self.results if self.measured is None else self.measured


def rss_mb() -> float | None:
    """This process's resident set size now, in MiB (Linux ``/proc``); ``None`` elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


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


async def drive_cancel(
    flow: FlowHandle,
    make: Callable[[int], object],
    key: Callable[[object], int],
    count: int,
    budget_s: float,
    *,
    concurrency: int,
    silent_cancel: bool,
) -> DriveResult:
    """``count`` trace-scoped round trips, ``concurrency`` at a time; every odd one is cancelled mid-flight.

    Each trace is one task: build ``make(i)`` (an envelope with a fresh ``trace_id``), ``emit_traced`` it.
    An even ``i`` then awaits ``fetch_traced``. An odd ``i`` yields to the loop once (the message is now
    queued in, or passing through, the graph) and calls ``cancel``: when that returns ``True`` the task
    ends there; when it returns ``False`` (the trace had already finished) the task fetches the result like
    an even one. A batch of ``concurrency`` tasks runs at once; the clock covers only these phases.

    Then, outside the clock, every acknowledged cancel is confirmed: ``fetch_traced`` must report the
    trace cancelled and must not return a result. Our runtime raises ``TraceCancelled`` at once and the
    floor resolves the fetch as cancelled. Upstream's ``fetch(trace_id=...)`` of a cancelled trace never
    returns (its documented behaviour: cancelling produces no result), so with ``silent_cancel`` the
    confirmation follows upstream's cancellation guide instead: ``asyncio.wait_for(fetch(trace_id=t),
    0.2)`` and a timeout means "no result, cancelled". Without ``silent_cancel`` a timeout there is an
    error: a fetch that hangs. A result at that point is an error for everyone.

    ``results`` counts traces that ended correctly, once each: delivered with the right payload, or
    cancelled and confirmed. ``latencies_ns`` is emit to result, for delivered traces only.
    """
    seen = bytearray(count)
    latencies: list[int] = []
    invalid = delivered = cancelled = refused = 0
    acked: list[tuple[int, str]] = []
    emit, fetch, cancel = flow.emit_traced, flow.fetch_traced, flow.cancel

    def settle(i: int, result: object, started: int) -> None:
        nonlocal invalid, delivered
        if result is not CANCELLED and key(result) == i and not seen[i]:
            seen[i] = 1
            delivered += 1
            latencies.append(perf_counter_ns() - started)
        else:
            invalid += 1

    async def trace(i: int) -> None:
        nonlocal refused
        item = make(i)
        trace_id: str = getattr(item, "trace_id")  # noqa: B009 - every envelope has one
        started = perf_counter_ns()
        await emit(item, trace_id)
        if i % 2:
            await asyncio.sleep(0)
            if await cancel(trace_id):
                acked.append((i, trace_id))
                return
            refused += 1
        settle(i, await fetch(trace_id), started)

    async def confirm(i: int, trace_id: str) -> None:
        nonlocal invalid, cancelled
        try:
            result = await asyncio.wait_for(fetch(trace_id), CONFIRM_CANCEL_S)
        except TimeoutError:
            result = CANCELLED if silent_cancel else None
        if result is CANCELLED and not seen[i]:
            seen[i] = 1
            cancelled += 1
        else:
            invalid += 1

    timed_out = False
    elapsed = 0
    try:
        async with asyncio.timeout(budget_s):
            for first in range(0, count, concurrency):
                batch = range(first, min(count, first + concurrency))
                start = perf_counter_ns()
                await asyncio.gather(*(trace(i) for i in batch))
                elapsed += perf_counter_ns() - start
                await asyncio.gather(*(confirm(i, t) for i, t in acked))
                acked.clear()
    except TimeoutError:
        timed_out = True
    extras = {"delivered": float(delivered), "cancelled": float(cancelled), "cancel_refused": float(refused)}
    return DriveResult(count, seen.count(1), invalid, elapsed, latencies, timed_out, extras)


async def drive_stream(
    flow: FlowHandle,
    make: Callable[[int], object],
    count: int,
    budget_s: float,
    chunks: int = CHUNKS_PER_TRACE,
) -> DriveResult:
    """One client, ``count`` traces in turn: emit ``make(i)``, then fetch its ``chunks`` stream chunks.

    Each fetched item must be a message of that trace whose payload has ``seq`` equal to its position
    and ``done`` set on the last chunk only; anything else counts as invalid. ``sent`` and ``results``
    count chunks. ``latencies_ns`` is time to first chunk (just before emit to just after the first
    chunk is fetched); ``extras["stream_p50_ms"]`` is the median time to the last chunk.
    """
    first_chunk: list[int] = []
    whole: list[int] = []
    good = invalid = 0
    emit, fetch = flow.emit, flow.fetch
    timed_out = False
    start = perf_counter_ns()
    try:
        async with asyncio.timeout(budget_s):
            for i in range(count):
                item = make(i)
                trace_id = getattr(item, "trace_id")  # noqa: B009 - every envelope has one
                started = perf_counter_ns()
                await emit(item)
                for seq in range(chunks):
                    msg = await fetch()
                    now = perf_counter_ns()
                    chunk = getattr(msg, "payload", None)
                    if (
                        getattr(msg, "trace_id", None) == trace_id
                        and getattr(chunk, "seq", None) == seq
                        and getattr(chunk, "done", None) is (seq == chunks - 1)
                    ):
                        good += 1
                    else:
                        invalid += 1
                    if seq == 0:
                        first_chunk.append(now - started)
                whole.append(perf_counter_ns() - started)
    except TimeoutError:
        timed_out = True
    elapsed = perf_counter_ns() - start
    whole.sort()
    extras = {"stream_p50_ms": whole[len(whole) // 2] / 1e6} if whole else {}
    return DriveResult(count * chunks, good, invalid, elapsed, first_chunk, timed_out, extras)


async def drive_memory(
    flow: FlowHandle,
    make: Callable[[int], object],
    key: Callable[[object], int],
    count: int,
    budget_s: float,
    *,
    segments: int = 10,
    interval_s: float = 0.05,
) -> DriveResult:
    """``drive`` ``count`` messages in ``segments`` (at least 2) back-to-back parts through one running flow.

    The first part is the warm-up. RSS is read after each part (``series["marks"]``: messages done, MiB)
    and every ``interval_s`` by a sampler task (``series["timeline"]``: seconds, MiB). Splitting the run
    keeps the driver's own bookkeeping (latency lists) the same size throughout, so it cannot pass for
    growth. Throughput counts the parts after the warm-up; no latencies are kept.
    """
    base = count // segments
    sizes = [base] * (segments - 1) + [count - base * (segments - 1)]
    marks: list[list[float]] = []
    timeline: list[list[float]] = []
    t0 = perf_counter_ns()

    async def sample() -> None:
        while True:
            now_rss = rss_mb()
            if now_rss is not None:
                timeline.append([(perf_counter_ns() - t0) / 1e9, now_rss])
            await asyncio.sleep(interval_s)

    sampler = asyncio.create_task(sample())
    sent = results = invalid = done = 0
    elapsed = 0
    timed_out = False
    warm_end_s = 0.0
    try:
        for part, size in enumerate(sizes):
            remaining = budget_s - (perf_counter_ns() - t0) / 1e9
            run = await drive(flow, make, key, size, max(remaining, 0.001))
            sent += run.sent
            results += run.results
            invalid += run.invalid
            done += size
            if part:
                elapsed += run.elapsed_ns
            timed_out = run.timed_out
            del run
            now_rss = rss_mb()
            if now_rss is not None:
                marks.append([float(done), now_rss])
            if part == 0:
                warm_end_s = (perf_counter_ns() - t0) / 1e9
            if timed_out:
                break
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    extras: dict[str, float] = {}
    if len(marks) >= 2:
        after = [rss for t, rss in timeline if t >= warm_end_s] or [marks[-1][1]]
        extras = {
            "rss_base_mb": marks[0][1],
            "rss_end_mb": marks[-1][1],
            "rss_growth_mb": marks[-1][1] - marks[0][1],
            "rss_peak_mb": max(max(after), marks[-1][1]),
        }
    measured = max(0, results - sizes[0])
    series = {"marks": marks, "timeline": timeline}
    return DriveResult(sent, results, invalid, elapsed, [], timed_out, extras, series, measured)


async def drive_runs(handle: RunHandle, count: int, budget_s: float) -> DriveResult:
    """``count`` runs one after the other: ``result = await handle.run(i)``, then ``handle.key(result)``.

    A run counts once, when its key is its ``i``; anything else is invalid. ``latencies_ns`` is each
    delivered run's duration (its check excluded); the clock covers the whole loop.
    """
    seen = bytearray(count)
    latencies: list[int] = []
    invalid = 0
    run, key = handle.run, handle.key
    timed_out = False
    start = perf_counter_ns()
    try:
        async with asyncio.timeout(budget_s):
            for i in range(count):
                started = perf_counter_ns()
                result = await run(i)
                took = perf_counter_ns() - started
                if key(result) == i and not seen[i]:
                    seen[i] = 1
                    latencies.append(took)
                else:
                    invalid += 1
    except TimeoutError:
        timed_out = True
    elapsed = perf_counter_ns() - start
    return DriveResult(count, seen.count(1), invalid, elapsed, latencies, timed_out)
