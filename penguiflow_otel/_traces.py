"""Per-trace records: pending and inflight counts, tenant binding, claims, cancellation marks.

Invariant: a record lives while its trace is active (pending > 0), while a trace-scoped fetch
waits on it, or while its roundtrip lock is held or awaited. Nothing else is kept per trace,
except a bounded ring of recently cancelled ids (with the tenant they were bound to).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._results import ResultEntry

__all__ = ["CANCEL_RING_SIZE", "CancelRing", "TraceRecord"]

CANCEL_RING_SIZE = 1024


class TraceRecord:
    """Everything the runtime keeps about one active flow trace."""

    __slots__ = (
        "cancel_event",
        "cancelled",
        "chunk_waiters",
        "claimed",
        "fetch_waiters",
        "handle",
        "inflight",
        "lock",
        "lock_waiters",
        "pending",
        "result_putters",
        "results",
        "tenant",
        "trace_id",
        "wm_hops",
    )

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.pending = 0
        self.inflight = 0
        self.tenant: str | None = None
        self.claimed = False
        self.cancelled = False
        self.handle: object = None
        self.results: deque[ResultEntry] | None = None
        self.result_putters: deque[asyncio.Future[None]] | None = None
        self.fetch_waiters: deque[asyncio.Future[ResultEntry | None]] | None = None
        self.lock: asyncio.Lock | None = None
        self.lock_waiters = 0
        self.cancel_event: asyncio.Event | None = None
        self.wm_hops: int | None = None
        self.chunk_waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        return f"TraceRecord({self.trace_id!r}, pending={self.pending}, inflight={self.inflight})"

    @property
    def active(self) -> bool:
        """A trace is active while it has pending items."""
        return self.pending > 0

    def is_releasable(self) -> bool:
        """Whether nothing holds this record any more (inactive, no waiter, lock free)."""
        return (
            self.pending == 0
            and not self.fetch_waiters
            and self.lock_waiters == 0
            and (self.lock is None or not self.lock.locked())
        )


class CancelRing:
    """The bounded memory of recently cancelled trace ids (F1), with their tenants."""

    __slots__ = ("_ids", "maxsize")

    def __init__(self, maxsize: int = CANCEL_RING_SIZE) -> None:
        self.maxsize = maxsize
        self._ids: OrderedDict[str, str | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._ids

    def add(self, trace_id: str, tenant: str | None) -> None:
        """Mark ``trace_id`` cancelled, evicting the oldest mark past the bound."""
        self._ids[trace_id] = tenant
        self._ids.move_to_end(trace_id)
        while len(self._ids) > self.maxsize:
            self._ids.popitem(last=False)

    def tenant(self, trace_id: str) -> str | None:
        """The tenant remembered with a mark."""
        return self._ids.get(trace_id)

    def discard(self, trace_id: str) -> None:
        """Forget a mark: a new message started a new trace with this id."""
        self._ids.pop(trace_id, None)
