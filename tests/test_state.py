"""StoredEvent, RemoteBinding and the StateStore protocol (penguiflow_otel.state)."""

from __future__ import annotations

import dataclasses

import pytest
from flowkit import ListStore

from penguiflow_otel.metrics import FlowEvent
from penguiflow_otel.state import RemoteBinding, StateStore, StoredEvent


def make_event() -> FlowEvent:
    """A node_failed event with extra data."""
    return FlowEvent(
        event_type="node_failed",
        ts=5.0,
        node_name="worker",
        node_id="worker-id",
        trace_id="t1",
        attempt=1,
        latency_ms=3.0,
        queue_depth_in=0,
        queue_depth_out=0,
        outgoing_edges=1,
        queue_maxsize=64,
        trace_pending=1,
        trace_inflight=1,
        trace_cancelled=False,
        extra={"exception": "boom"},
    )


def test_stored_event_fields_keep_their_order_and_seq_defaults_to_zero() -> None:
    """The fields are positional in the documented order, seq last with default 0."""
    names = [field.name for field in dataclasses.fields(StoredEvent)]
    assert names == ["trace_id", "ts", "kind", "node_name", "node_id", "payload", "seq"]
    assert StoredEvent("t", 1.0, "node_start", "n", "id", {}).seq == 0


def test_stored_event_is_slotted() -> None:
    """A StoredEvent carries no __dict__."""
    assert not hasattr(StoredEvent("t", 1.0, "node_start", None, None, {}), "__dict__")


def test_from_flow_event_copies_identity_kind_and_payload() -> None:
    """kind is the event type and payload is to_payload()."""
    event = make_event()
    stored = StoredEvent.from_flow_event(event)
    assert stored == StoredEvent(
        trace_id="t1",
        ts=5.0,
        kind="node_failed",
        node_name="worker",
        node_id="worker-id",
        payload=event.to_payload(),
        seq=0,
    )


def test_from_flow_event_takes_the_sequence_number() -> None:
    """seq is keyword-only and stored as given."""
    assert StoredEvent.from_flow_event(make_event(), seq=42).seq == 42


def test_remote_binding_holds_its_four_fields() -> None:
    """RemoteBinding takes trace_id, context_id, task_id and agent_url in that order."""
    binding = RemoteBinding("t1", None, "task-9", "https://agent.example")
    assert dataclasses.astuple(binding) == ("t1", None, "task-9", "https://agent.example")
    assert [field.name for field in dataclasses.fields(RemoteBinding)] == [
        "trace_id",
        "context_id",
        "task_id",
        "agent_url",
    ]
    assert not hasattr(binding, "__dict__")


async def test_a_structural_store_is_a_state_store() -> None:
    """A class with the three async methods passes isinstance and round-trips events."""
    store = ListStore()
    assert isinstance(store, StateStore)
    typed: StateStore = store
    stored = StoredEvent.from_flow_event(make_event(), seq=1)
    await typed.save_event(stored)
    assert list(await typed.load_history("t1")) == [stored]


def test_an_object_missing_a_method_is_not_a_state_store() -> None:
    """The runtime check needs all three methods."""

    class SaveOnly:
        async def save_event(self, event: StoredEvent) -> None:
            return None

    assert not isinstance(SaveOnly(), StateStore)


async def test_a_subclass_that_skips_a_method_raises_not_implemented() -> None:
    """Subclassing is allowed, and a method left out raises NotImplementedError."""

    class Partial(StateStore):
        async def save_event(self, event: StoredEvent) -> None:
            return None

    # mypy flags the missing methods as abstract; at run time the class still instantiates.
    store = Partial()  # type: ignore[abstract]
    await store.save_event(StoredEvent.from_flow_event(make_event()))
    with pytest.raises(NotImplementedError):
        await store.load_history("t1")
    with pytest.raises(NotImplementedError):
        await store.save_remote_binding(RemoteBinding("t1", None, "task", "url"))
