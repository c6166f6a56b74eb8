"""The state-store seam: persisted runtime events and remote bindings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ._events import FlowEvent

__all__ = ["RemoteBinding", "StateStore", "StoredEvent"]


@dataclass(slots=True)
class StoredEvent:
    """A runtime event as handed to a :class:`StateStore`.

    ``seq`` orders the events of one flow instance; it is monotonic per flow and never reset.
    """

    trace_id: str | None
    ts: float
    kind: str
    node_name: str | None
    node_id: str | None
    payload: Mapping[str, Any]
    seq: int = 0

    @classmethod
    def from_flow_event(cls, event: FlowEvent, *, seq: int = 0) -> StoredEvent:
        """Store ``event`` with ``kind=event.event_type`` and ``payload=event.to_payload()``."""
        return cls(
            trace_id=event.trace_id,
            ts=event.ts,
            kind=event.event_type,
            node_name=event.node_name,
            node_id=event.node_id,
            payload=event.to_payload(),
            seq=seq,
        )


@dataclass(slots=True)
class RemoteBinding:
    """Ties a local trace to a task run by a remote agent."""

    trace_id: str
    context_id: str | None
    task_id: str
    agent_url: str


@runtime_checkable
class StateStore(Protocol):
    """Durable storage for runtime events; implement it structurally or subclass it.

    The flow awaits saves one at a time, in ``seq`` order; a raising store is logged, never fatal.
    """

    async def save_event(self, event: StoredEvent) -> None:
        """Persist one event. Retries can save an event twice, so this should be idempotent."""
        raise NotImplementedError

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """The events saved for ``trace_id``."""
        raise NotImplementedError

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Persist the binding between a trace and a remote task."""
        raise NotImplementedError
