"""The Rookery: per-trace result buffers, the untraced buffer, and hand-off to waiting fetches.

Invariants: a claimed trace's results live only in its own buffer; untraced results and those of
unclaimed traces are also listed, in delivery order, in ``plain`` (what plain ``fetch()`` serves).
A waiting fetch is handed its result by the delivery itself, so waiters are served first come,
first served. A handed-off result stays counted (pending, ``unfetched``) until the fetch returns.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection
from typing import TYPE_CHECKING

from ._edge import wake_first
from ._traces import TraceRecord

if TYPE_CHECKING:
    from ._edge import Floe
    from ._node import Node

__all__ = ["PlainWaiter", "ResultEntry", "ResultStore"]


class ResultEntry:
    """One result: the item, its trace record (or None), the delivering node and edge, the stamp."""

    __slots__ = ("floe", "item", "record", "source", "stamp")

    def __init__(
        self, item: object, record: TraceRecord | None, source: Node | None, floe: Floe | None, stamp: object
    ) -> None:
        self.item = item
        self.record = record
        self.source = source
        self.floe = floe
        self.stamp = stamp


class PlainWaiter:
    """A plain ``fetch()`` waiting for a result, optionally limited to some egress nodes."""

    __slots__ = ("future", "sources")

    def __init__(self, future: asyncio.Future[ResultEntry], sources: Collection[Node] | None) -> None:
        self.future = future
        self.sources = sources

    def accepts(self, entry: ResultEntry) -> bool:
        """Whether this waiter's ``from_`` filter admits ``entry``."""
        return self.sources is None or entry.source in self.sources


def _wake_first(waiters: deque[asyncio.Future[None]] | None) -> None:
    if waiters:
        wake_first(waiters)


def _hand_to_trace_waiter(record: TraceRecord, entry: ResultEntry) -> bool:
    waiters = record.fetch_waiters
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(entry)
            return True
    return False


class ResultStore:
    """Result buffers with bounded capacity and direct hand-off to waiting fetches."""

    def __init__(self, trace_capacity: int, untraced_capacity: int) -> None:
        self.trace_capacity = trace_capacity
        self.untraced_capacity = untraced_capacity
        self.plain: deque[ResultEntry] = deque()
        self.untraced = 0
        self.untraced_putters: deque[asyncio.Future[None]] = deque()
        self.plain_waiters: deque[PlainWaiter] = deque()
        self.buffered_traces: set[TraceRecord] = set()

    # Delivery --------------------------------------------------------------------------------

    def try_deliver(self, entry: ResultEntry) -> tuple[bool, bool]:
        """Deliver ``entry`` if a waiter takes it or there is room: ``(delivered, woke_a_fetch)``."""
        record = entry.record
        if record is not None and record.claimed:
            if _hand_to_trace_waiter(record, entry):
                return True, True
            return self._buffer_traced(record, entry, plain=False), False
        if self._hand_to_plain_waiter(entry):
            return True, True
        if record is None:
            if 0 < self.untraced_capacity <= self.untraced:
                return False, False
            self.untraced += 1
            self.plain.append(entry)
            return True, False
        return self._buffer_traced(record, entry, plain=True), False

    def _hand_to_plain_waiter(self, entry: ResultEntry) -> bool:
        for waiter in self.plain_waiters:
            if not waiter.future.done() and waiter.accepts(entry):
                self.plain_waiters.remove(waiter)
                waiter.future.set_result(entry)
                return True
        return False

    def _buffer_traced(self, record: TraceRecord, entry: ResultEntry, *, plain: bool) -> bool:
        results = record.results
        if results is None:
            results = record.results = deque()
        if 0 < self.trace_capacity <= len(results):
            return False
        results.append(entry)
        self.buffered_traces.add(record)
        if plain:
            self.plain.append(entry)
        return True

    async def wait_for_room(self, record: TraceRecord | None) -> None:
        """Wait until the buffer ``entry`` targets may have room."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if record is None:
            putters = self.untraced_putters
        else:
            if record.result_putters is None:
                record.result_putters = deque()
            putters = record.result_putters
        putters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                _wake_first(putters)
            raise

    # Taking ----------------------------------------------------------------------------------

    def take_plain(self, sources: Collection[Node] | None) -> ResultEntry | None:
        """Remove and return the oldest plain-visible result admitted by ``sources``."""
        plain = self.plain
        if not plain:
            return None
        if sources is None:
            entry = plain.popleft()
        else:
            for entry in plain:
                if entry.source in sources:
                    break
            else:
                return None
            plain.remove(entry)
        self._unbuffer(entry)
        return entry

    def take_traced(self, record: TraceRecord) -> ResultEntry | None:
        """Remove and return the oldest result of a claimed trace."""
        results = record.results
        if not results:
            return None
        entry = results.popleft()
        if not results:
            record.results = None
            self.buffered_traces.discard(record)
        _wake_first(record.result_putters)
        return entry

    def _unbuffer(self, entry: ResultEntry) -> None:
        record = entry.record
        if record is None:
            self.untraced -= 1
            _wake_first(self.untraced_putters)
            return
        results = record.results
        if results:
            if results[0] is entry:
                results.popleft()
            else:
                results.remove(entry)
            if not results:
                record.results = None
                self.buffered_traces.discard(record)
        _wake_first(record.result_putters)

    def put_back(self, entry: ResultEntry) -> None:
        """Return a handed-off result whose fetch was cancelled to the front of its buffer."""
        record = entry.record
        if record is not None and record.claimed:
            if not _hand_to_trace_waiter(record, entry):
                if record.results is None:
                    record.results = deque()
                record.results.appendleft(entry)
                self.buffered_traces.add(record)
            return
        if self._hand_to_plain_waiter(entry):
            return
        self.plain.appendleft(entry)
        if record is None:
            self.untraced += 1
        else:
            if record.results is None:
                record.results = deque()
            record.results.appendleft(entry)
            self.buffered_traces.add(record)

    def claim(self, record: TraceRecord) -> None:
        """Make ``record``'s results visible only to trace-scoped fetches."""
        if record.claimed:
            return
        record.claimed = True
        if record.results:
            self.plain = deque(entry for entry in self.plain if entry.record is not record)

    # Purging ---------------------------------------------------------------------------------

    def purge_trace(self, record: TraceRecord) -> list[ResultEntry]:
        """Remove every buffered result of ``record`` and wake its blocked deliverers."""
        results = record.results
        if not results:
            return []
        removed = list(results)
        record.results = None
        self.buffered_traces.discard(record)
        if not record.claimed:
            self.plain = deque(entry for entry in self.plain if entry.record is not record)
        putters = record.result_putters
        while putters:
            _wake_first(putters)
        return removed

    def clear(self) -> list[ResultEntry]:
        """Remove every buffered result (``stop()``); plain fetches keep waiting."""
        removed = [entry for entry in self.plain if entry.record is None]
        for record in list(self.buffered_traces):
            removed.extend(record.results or ())
            record.results = None
        self.buffered_traces.clear()
        self.plain.clear()
        self.untraced = 0
        while self.untraced_putters:
            self.untraced_putters.popleft().cancel()
        return removed

    def buffered_count(self) -> int:
        """How many results wait in buffers."""
        return self.untraced + sum(len(record.results or ()) for record in self.buffered_traces)
