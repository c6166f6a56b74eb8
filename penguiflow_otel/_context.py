"""``Context``: a node's (or endpoint's) handle on its incoming and outgoing edges."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from ._edge import Floe
from ._graph import Endpoint
from ._message import Message, StreamChunk
from ._node import Node

if TYPE_CHECKING:
    from ._playbook import PlaybookFactory
    from ._runner import PenguiFlow

__all__ = ["Context", "Target"]

Target: TypeAlias = "Node | Endpoint | Sequence[Node | Endpoint] | None"

_DETACHED = "Context is not attached to a running flow"


class Context:
    """Per-node handle for emitting outputs and, unusually, fetching inputs directly."""

    __slots__ = ("_buffer", "_incoming", "_outgoing", "_owner", "_runtime", "_stream_seq")

    def __init__(self, owner: Node | Endpoint, runtime: PenguiFlow | None = None) -> None:
        self._owner = owner
        self._runtime = runtime
        self._incoming: dict[Node | Endpoint, Floe] = {}
        self._outgoing: dict[Node | Endpoint, Floe] = {}
        self._buffer: deque[Any] = deque()
        self._stream_seq: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Context(owner={self._owner!r})"

    @property
    def owner(self) -> Node | Endpoint:
        """The node or endpoint this context belongs to."""
        return self._owner

    @property
    def runtime(self) -> PenguiFlow | None:
        """The flow this context is attached to, if any."""
        return self._runtime

    def _attach(self, incoming: list[Floe], outgoing: list[Floe]) -> None:
        self._incoming = {floe.source: floe for floe in incoming}
        self._outgoing = {floe.target: floe for floe in outgoing}

    def _resolve(self, targets: Target, mapping: dict[Node | Endpoint, Floe]) -> list[Floe]:
        if targets is None:
            return list(mapping.values())
        if isinstance(targets, Node | Endpoint):
            targets = [targets]
        resolved: list[Floe] = []
        for target in targets:
            floe = mapping.get(target)
            if floe is None:
                owner = self._owner.name
                raise KeyError(f"Unknown target {getattr(target, 'name', target)} for {owner}")
            resolved.append(floe)
        return resolved

    def _running(self) -> PenguiFlow:
        if self._runtime is None:
            raise RuntimeError(_DETACHED)
        return self._runtime

    # Emitting --------------------------------------------------------------------------------

    async def emit(self, msg: Any, to: Target = None) -> None:
        """Send ``msg`` to each target edge (default: every outgoing edge), awaiting room."""
        runtime = self._running()
        for floe in self._resolve(to, self._outgoing):
            if not runtime._send_now_from_context(floe, msg):
                await runtime._send_from_context(floe, msg)

    def emit_nowait(self, msg: Any, to: Target = None) -> None:
        """Send without waiting; ``asyncio.QueueFull`` when a target edge is full."""
        runtime = self._running()
        for floe in self._resolve(to, self._outgoing):
            runtime._send_nowait(floe, msg, from_worker=True)

    async def emit_chunk(
        self,
        *,
        parent: Message[Any],
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Target = None,
    ) -> StreamChunk:
        """Emit a ``StreamChunk`` message that inherits ``parent``'s envelope (runtime.md section 16)."""
        runtime = self._running()
        sid = stream_id or parent.trace_id
        first = sid not in self._stream_seq
        next_seq = self._stream_seq.get(sid, -1) + 1 if seq is None else seq
        self._stream_seq[sid] = next_seq
        chunk = StreamChunk(stream_id=sid, seq=next_seq, text=text, done=done, meta=dict(meta or {}))
        # Every field comes from already-validated objects, so the envelope skips re-validation.
        message: Message[StreamChunk] = Message.model_construct(
            payload=chunk,
            headers=parent.headers,
            trace_id=parent.trace_id,
            ts=time.time(),
            deadline_s=parent.deadline_s,
            meta=dict(parent.meta),
        )
        if not first and runtime._chunk_capacity_full(sid):
            await runtime._await_chunk_capacity(sid)
        runtime._chunk_emitted(self._owner, chunk)
        await self.emit(message, to=to)
        if done:
            self._stream_seq.pop(sid, None)
        return chunk

    # Fetching --------------------------------------------------------------------------------

    def fetch_nowait(self, from_: Target = None) -> Any:
        """The next buffered or queued input; ``asyncio.QueueEmpty`` when there is none."""
        if self._buffer:
            return self._buffer.popleft()
        runtime = self._running()
        for floe in self._resolve(from_, self._incoming):
            item = runtime._take_from_floe(floe)
            if item is not _EMPTY:
                return item
        raise asyncio.QueueEmpty("no messages available")

    async def fetch(self, from_: Target = None) -> Any:
        """Wait for the next input from the given sources (default: every incoming edge)."""
        if self._buffer:
            return self._buffer.popleft()
        if not self._incoming:
            raise RuntimeError("context has no incoming floes to fetch from")
        floes = self._resolve(from_, self._incoming)
        runtime = self._running()
        while True:
            for floe in floes:
                item = runtime._take_from_floe(floe)
                if item is not _EMPTY:
                    return item
            await runtime._wait_for_input(self._owner)

    async def fetch_any(self, from_: Target = None) -> Any:
        """The first item from any of the sources."""
        return await self.fetch(from_)

    # Introspection ---------------------------------------------------------------------------

    def outgoing_count(self) -> int:
        """Number of outgoing edges."""
        return len(self._outgoing)

    def queue_depth_in(self) -> int:
        """Items queued on the incoming edges."""
        return sum(floe.qsize() for floe in self._incoming.values())

    def queue_depth_out(self) -> int:
        """Items queued on the outgoing edges."""
        return sum(floe.qsize() for floe in self._outgoing.values())

    async def call_playbook(
        self, playbook: PlaybookFactory, parent_msg: Message[Any], *, timeout: float | None = None
    ) -> Any:
        """Run a subflow for ``parent_msg`` with cancellation mirrored from this flow."""
        from ._playbook import call_playbook

        return await call_playbook(playbook, parent_msg, timeout=timeout, runtime=self._runtime)


class _Empty:
    __slots__ = ()


_EMPTY: Any = _Empty()
