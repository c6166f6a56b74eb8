"""Helpers for tests that drive flows: messages, node bodies, loop stepping, a recording middleware,
a held gate and a list-backed state store.

``from flowkit import ...`` works in every test folder: pytest puts ``tests/`` on ``sys.path`` when it
loads ``tests/conftest.py``, which also hands out an :class:`EventRecorder` as the ``recorder`` fixture.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from penguiflow_otel import (
    Context,
    FlowEvent,
    FlowStatistics,
    Headers,
    Message,
    PenguiFlow,
    RemoteBinding,
    StoredEvent,
)

T = TypeVar("T")


def make_message(payload: object = "x", *, tenant: str = "t", **fields: Any) -> Message[Any]:
    """A message for ``tenant`` with a fresh trace id, unless ``fields`` name one."""
    return Message(payload=payload, headers=Headers(tenant=tenant), **fields)


async def passthrough(message: Any, ctx: Context) -> Any:
    """Return the input unchanged."""
    return message


async def wait_forever(message: Any, ctx: Context) -> Any:
    """A node body that never returns on its own (only a cancel or a timeout ends it)."""
    await asyncio.Event().wait()
    return message


async def async_source(*items: T) -> AsyncIterator[T]:
    """An async iterator yielding ``items``, in order."""
    for item in items:
        yield item


async def settle(rounds: int = 30) -> None:
    """Yield to the loop until every ready task has had many chances to run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def promptly(condition: Callable[[], bool], rounds: int = 200) -> None:
    """Wait until ``condition`` holds, failing after ``rounds`` loop steps (wall-clock time never helps)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition did not hold within a few loop steps")


async def fetch(flow: PenguiFlow) -> Any:
    """One result, within two seconds."""
    async with asyncio.timeout(2):
        return await flow.fetch()


async def run_once(flow: PenguiFlow, message: object) -> Any:
    """Run ``flow``, emit ``message``, fetch one result and stop the flow; return that result."""
    flow.run()
    await flow.emit(message)
    result = await flow.fetch()
    await flow.stop()
    return result


def assert_empty(stats: FlowStatistics) -> None:
    """No pending work, no queued, held or parked item, no buffered result, no per-trace table."""
    assert stats.active_traces == 0
    assert stats.pending == 0
    assert stats.buffered_results == 0
    assert stats.parked_join_items == 0
    assert all(size == 0 for size in stats.edge_size.values()), stats.edge_size
    assert all(count == 0 for count in stats.node_inflight.values()), stats.node_inflight
    assert all(size == 0 for size in stats.trace_tables.values()), stats.trace_tables


class EventRecorder:
    """A middleware keeping every FlowEvent (and the perf_counter time it arrived), with waiters.

    ``seen(event_type)`` (or ``seen(event_type, node_name)``) is an asyncio.Event set once such an
    event has been recorded; ``wait_for`` awaits it within ``wait_timeout`` seconds.
    """

    def __init__(self, wait_timeout: float = 2.0) -> None:
        self.events: list[FlowEvent] = []
        self.arrived: list[float] = []
        self.wait_timeout = wait_timeout
        self._seen: dict[tuple[str, str | None], asyncio.Event] = {}

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)
        self.arrived.append(time.perf_counter())
        self.seen(event.event_type).set()
        self.seen(event.event_type, event.node_name).set()

    def seen(self, event_type: str, node_name: str | None = None) -> asyncio.Event:
        """The asyncio.Event set once an event of this type (from ``node_name``, if given) is recorded."""
        return self._seen.setdefault((event_type, node_name), asyncio.Event())

    async def wait_for(self, event_type: str, node_name: str | None = None) -> None:
        """Return once an event of ``event_type`` (from ``node_name``, if given) has been recorded."""
        async with asyncio.timeout(self.wait_timeout):
            await self.seen(event_type, node_name).wait()

    def of(self, event_type: str) -> list[FlowEvent]:
        """The recorded events of one type."""
        return [event for event in self.events if event.event_type == event_type]

    def first(self, event_type: str, trace_id: str | None = None) -> FlowEvent:
        """The first recorded event of a type (of trace ``trace_id``, if given)."""
        return next(
            event
            for event in self.events
            if event.event_type == event_type and (trace_id is None or event.trace_id == trace_id)
        )

    def kinds(self, trace_id: str) -> list[str]:
        """The event types recorded for one trace, in order."""
        return [event.event_type for event in self.events if event.trace_id == trace_id]

    def stream(self) -> list[tuple[str, int]]:
        """``(event_type, attempt)`` of every recorded event, in order."""
        return [(event.event_type, event.attempt) for event in self.events]

    def sequence(self, trace_id: str) -> list[tuple[str, int]]:
        """``(event_type, attempt)`` of one trace's events, in order."""
        return [(event.event_type, event.attempt) for event in self.events if event.trace_id == trace_id]

    def steps(self) -> list[tuple[str, str | None, int]]:
        """``(event_type, node_name, attempt)`` of every recorded event, in order."""
        return [(event.event_type, event.node_name, event.attempt) for event in self.events]


class Gate:
    """A node body that holds each message until the test releases it, one at a time."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.seen: list[object] = []
        self._permits: asyncio.Queue[None] = asyncio.Queue()

    def release(self, count: int = 1) -> None:
        """Let ``count`` held (or future) invocations finish."""
        for _ in range(count):
            self._permits.put_nowait(None)

    async def hold(self, message: Any, ctx: Context) -> Any:
        """Record the payload, signal ``started``, then wait for a release before returning the input."""
        self.seen.append(message.payload)
        self.started.set()
        await self._permits.get()
        return message


class ListStore:
    """A structural state store keeping saved events and remote bindings in lists."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.bindings: list[RemoteBinding] = []

    async def save_event(self, event: StoredEvent) -> None:
        self.events.append(event)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        return [event for event in self.events if event.trace_id == trace_id]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        self.bindings.append(binding)
