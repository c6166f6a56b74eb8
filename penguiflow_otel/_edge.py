"""One edge of a flow (a ``Floe``) with its bounded FIFO, and a node's inbox over its edges.

Queue entries are ``(item, trace_record, stamp)`` tuples: the trace record saves a lookup per hop
and the stamp is the telemetry hooks' opaque enqueue stamp. ``qsize()`` and ``maxsize`` are plain
ints, safe to read from another thread (the metrics scrape thread).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ._graph import Endpoint
    from ._node import Node
    from ._traces import TraceRecord

__all__ = ["Entry", "Floe", "Inbox", "wake_first"]

Entry: TypeAlias = "tuple[object, TraceRecord | None, object]"


def wake_first(waiters: deque[asyncio.Future[None]]) -> None:
    """Resolve the first waiter that is still waiting."""
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)
            return


class Floe:
    """A directed edge from ``source`` to ``target`` with a FIFO bounded by ``maxsize``.

    ``maxsize <= 0`` means unbounded. A node->Rookery edge owns no FIFO: its ``maxsize`` is 0 and
    ``qsize()`` counts the source node's unfetched results.
    """

    __slots__ = ("_inbox", "_items", "_putters", "maxsize", "name", "source", "target", "unfetched")

    def __init__(self, source: Node | Endpoint, target: Node | Endpoint, *, maxsize: int) -> None:
        self.source = source
        self.target = target
        self.maxsize = maxsize
        self.name = f"{_label(source)}->{_label(target)}"
        self.unfetched = 0
        self._items: deque[Entry] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._inbox: Inbox | None = None

    def __repr__(self) -> str:
        return f"Floe({self.name!r}, maxsize={self.maxsize})"

    def qsize(self) -> int:
        """Items queued on this edge (for an egress edge: its unfetched results)."""
        return len(self._items) if self._inbox is not None else self.unfetched

    def full(self) -> bool:
        """Whether a put would have to wait for room."""
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, entry: Entry) -> bool:
        """Append ``entry`` if there is room and wake one waiting worker; ``False`` when full."""
        items = self._items
        if 0 < self.maxsize <= len(items):
            return False
        items.append(entry)
        inbox = self._inbox
        if inbox is not None and inbox.getters:
            wake_first(inbox.getters)
        return True

    async def wait_for_room(self, first: bool) -> None:
        """Wait until a slot may be free; an earlier waiter keeps its place in line."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            self._putters.append(fut)
        else:
            self._putters.appendleft(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.wake_putter()  # the slot we were woken for goes to the next waiter
            raise

    def wake_putter(self) -> None:
        """Wake the first producer waiting for room, if any."""
        if self._putters:
            wake_first(self._putters)

    def remove_where(self, keep: object) -> list[Entry]:
        """Remove and return every queued entry whose trace record is ``keep``; wake producers."""
        items = self._items
        removed = [entry for entry in items if entry[1] is keep]
        if removed:
            self._items = deque(entry for entry in items if entry[1] is not keep)
            for _ in removed:
                self.wake_putter()
        return removed

    def clear(self) -> list[Entry]:
        """Remove and return every queued entry (``stop()``); producers still waiting for room fail."""
        removed = list(self._items)
        self._items.clear()
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():  # a caller outside the flow, not cancelled by anyone: tell it why
                fut.set_exception(RuntimeError("PenguiFlow is not running"))
        return removed


class Inbox:
    """The incoming edges of one node, which its workers race for items."""

    __slots__ = ("_next", "floes", "getters")

    def __init__(self, floes: list[Floe]) -> None:
        self.floes = floes
        self.getters: deque[asyncio.Future[None]] = deque()
        self._next = 0
        for floe in floes:
            floe._inbox = self

    def pop(self) -> tuple[Floe, Entry] | None:
        """Take the next item from any incoming edge, rotating the edge checked first."""
        floes = self.floes
        count = len(floes)
        if count == 1:
            floe = floes[0]
            items = floe._items
            if not items:
                return None
            entry = items.popleft()
            if floe._putters:
                wake_first(floe._putters)
            return floe, entry
        start = self._next
        for offset in range(count):
            floe = floes[(start + offset) % count]
            items = floe._items
            if items:
                self._next = (start + offset + 1) % count
                entry = items.popleft()
                if floe._putters:
                    wake_first(floe._putters)
                return floe, entry
        return None

    async def get(self) -> tuple[Floe, Entry]:
        """Wait for the next item from any incoming edge."""
        loop = asyncio.get_running_loop()
        while True:
            got = self.pop()
            if got is not None:
                return got
            fut: asyncio.Future[None] = loop.create_future()
            self.getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    wake_first(self.getters)  # pass the wake-up on to another worker
                raise

    def pending_items(self) -> int:
        """Items queued on all incoming edges."""
        return sum(len(floe._items) for floe in self.floes)


_ENDPOINT_LABELS = {"OpenSea": "ingress", "Rookery": "egress"}


def _label(end: Node | Endpoint) -> str:
    """Queue-name part for one end: node name, or ``ingress`` / ``egress`` for the endpoints."""
    from ._graph import Endpoint

    if isinstance(end, Endpoint):
        return _ENDPOINT_LABELS.get(end.name, end.name)
    return str(end.name)
