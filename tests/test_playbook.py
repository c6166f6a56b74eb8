"""call_playbook: running a subflow for one message, with timeouts and mirrored cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flowkit import EventRecorder, make_message, wait_forever

from penguiflow_otel import (
    Context,
    Message,
    ModelRegistry,
    Node,
    PenguiFlow,
    TraceCancelled,
    call_playbook,
    create,
)


class Playbook:
    """A playbook factory remembering every subflow it builds."""

    def __init__(self, fn: Any, registry: ModelRegistry | None = None) -> None:
        self.fn = fn
        self.registry = registry
        self.built: list[PenguiFlow] = []

    def __call__(self) -> tuple[PenguiFlow, ModelRegistry | None]:
        flow = create(Node(self.fn, name="sub").to())
        self.built.append(flow)
        return flow, self.registry

    @property
    def subflow(self) -> PenguiFlow:
        """The one subflow built."""
        (flow,) = self.built
        return flow


async def doubles(message: Any, ctx: Context) -> Any:
    """Double the payload."""
    return message.model_copy(update={"payload": message.payload * 2})


class HangingWork:
    """A subflow node body that waits until cancelled, marking when it started and when it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def body(self, message: Any, ctx: Context) -> Any:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def holds(message: Any, ctx: Context) -> Any:
    """Never return on its own, keeping the parent trace active."""
    await asyncio.Event().wait()


async def test_call_playbook_returns_the_result_payload_and_stops_the_subflow() -> None:
    """The first result's payload comes back and the subflow is stopped afterwards."""
    playbook = Playbook(doubles)
    assert await call_playbook(playbook, make_message(21)) == 42
    assert playbook.subflow.statistics().running is False


async def test_call_playbook_returns_a_raw_result_as_is() -> None:
    """A result that is not a Message is returned unchanged."""

    async def raw(message: Any, ctx: Context) -> Any:
        return {"answer": message.payload}

    playbook = Playbook(raw)
    assert await call_playbook(playbook, make_message(7), timeout=2) == {"answer": 7}
    assert playbook.subflow.statistics().running is False


async def test_call_playbook_runs_the_subflow_with_its_registry() -> None:
    """The registry the factory returns validates the subflow: a dict result becomes a Message."""

    async def as_dict(message: Any, ctx: Context) -> Any:
        return {"payload": message.payload + 1, "headers": {"tenant": "t"}, "trace_id": message.trace_id}

    registry = ModelRegistry()
    registry.register("sub", Message, Message)
    playbook = Playbook(as_dict, registry)
    assert await call_playbook(playbook, make_message(1), timeout=2) == 2
    assert playbook.subflow.registry is registry
    assert playbook.subflow.statistics().running is False


async def test_call_playbook_timeout_raises_timeout_error_and_stops_the_subflow() -> None:
    """A subflow that never answers within ``timeout`` raises TimeoutError; the subflow is stopped."""
    playbook = Playbook(wait_forever)
    with pytest.raises(TimeoutError):
        await call_playbook(playbook, make_message(2), timeout=0.05)
    assert playbook.subflow.statistics().running is False


async def test_parent_trace_cancel_interrupts_a_playbook_called_from_a_node(recorder: EventRecorder) -> None:
    """Cancelling the parent trace cancels the subflow's work for it and stops the subflow."""
    work = HangingWork()

    playbook = Playbook(work.body)

    async def delegates(message: Any, ctx: Context) -> Any:
        return await ctx.call_playbook(playbook, message)

    parent = create(Node(delegates, name="parent").to(), middlewares=[recorder])
    parent.run()
    message = make_message(2)
    await parent.emit(message)
    async with asyncio.timeout(2):
        await work.started.wait()
    assert await parent.cancel(message.trace_id) is True
    async with asyncio.timeout(2):
        await work.cancelled.wait()
    await recorder.wait_for("trace_cancel_finish")
    assert playbook.subflow.statistics().running is False
    assert [e.event_type for e in recorder.events] == [
        "node_start",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_finish",
    ]
    await parent.stop()


async def test_parent_cancel_is_mirrored_into_the_subflow_by_the_watcher() -> None:
    """With runtime= given, the parent's cancel event cancels the subflow trace even for an outside caller."""
    work = HangingWork()
    parent = create(Node(holds, name="holder").to())
    parent.run()
    message = make_message(2)
    await parent.emit(message)  # keeps the parent trace active
    playbook = Playbook(work.body)
    call = asyncio.create_task(call_playbook(playbook, message, runtime=parent))
    async with asyncio.timeout(2):
        await work.started.wait()
    assert await parent.cancel(message.trace_id) is True
    async with asyncio.timeout(2):
        await work.cancelled.wait()
    assert not call.done()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert playbook.subflow.statistics().running is False
    await parent.stop()


async def test_call_playbook_for_an_already_cancelled_trace_raises_trace_cancelled(
    recorder: EventRecorder,
) -> None:
    """A parent trace already marked cancelled refuses the playbook, and the subflow is still stopped."""
    playbook = Playbook(doubles)
    parent = create(Node(holds).to(), middlewares=[recorder])
    parent.run()
    message = make_message(2)
    await parent.emit(message)
    await recorder.wait_for("node_start")
    assert await parent.cancel(message.trace_id) is True
    await recorder.wait_for("trace_cancel_finish")
    with pytest.raises(TraceCancelled) as caught:
        await call_playbook(playbook, message, runtime=parent)
    assert caught.value.trace_id == message.trace_id
    assert playbook.subflow.statistics().running is False
    await parent.stop()


async def test_caller_cancellation_cancels_the_subflow_trace_and_stops_it() -> None:
    """Cancelling the task awaiting call_playbook cancels the subflow's work and stops the subflow."""
    work = HangingWork()

    playbook = Playbook(work.body)
    call = asyncio.create_task(call_playbook(playbook, make_message(2)))
    async with asyncio.timeout(2):
        await work.started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert work.cancelled.is_set()
    assert playbook.subflow.statistics().running is False
