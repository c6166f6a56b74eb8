"""Playbooks: run a subflow for one message, with the parent trace's cancellation mirrored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from ._errors import TraceCancelled
from ._message import Message

if TYPE_CHECKING:
    from ._registry import ModelRegistry
    from ._runner import PenguiFlow

__all__ = ["PlaybookFactory", "call_playbook"]

PlaybookFactory: TypeAlias = "Callable[[], tuple[PenguiFlow, ModelRegistry | None]]"


async def call_playbook(
    playbook: PlaybookFactory,
    parent_msg: Message[Any],
    timeout: float | None = None,
    *,
    runtime: PenguiFlow | None = None,
) -> Any:
    """Build and run the subflow, emit ``parent_msg``, return the first result's payload."""
    flow, registry = playbook()
    flow.run(registry=registry)
    trace_id = getattr(parent_msg, "trace_id", None)
    watcher: asyncio.Task[None] | None = None
    try:
        if runtime is not None and trace_id is not None:
            parent_event = runtime.ensure_trace_event(trace_id)
            if parent_event.is_set():
                raise TraceCancelled(trace_id)
            watcher = asyncio.get_running_loop().create_task(_mirror_cancel(parent_event, flow, trace_id))
        try:
            result = await asyncio.wait_for(_roundtrip(flow, parent_msg), timeout)
        except (TraceCancelled, asyncio.CancelledError):
            if trace_id is not None and flow._running:
                with contextlib.suppress(Exception):
                    await flow.cancel(trace_id)
            raise
        return result.payload if isinstance(result, Message) else result
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await asyncio.shield(flow.stop())


async def _roundtrip(flow: PenguiFlow, parent_msg: Message[Any]) -> Any:
    await flow.emit(parent_msg)
    return await flow.fetch()


async def _mirror_cancel(event: asyncio.Event, flow: PenguiFlow, trace_id: str) -> None:
    await event.wait()
    if flow._running:
        await flow.cancel(trace_id)
