"""BusEnvelope and the MessageBus protocol (penguiflow_otel.bus)."""

from __future__ import annotations

import dataclasses

from penguiflow_otel.bus import BusEnvelope, MessageBus


def test_envelope_fields_keep_their_order() -> None:
    """The envelope's fields are positional in the documented order."""
    names = [field.name for field in dataclasses.fields(BusEnvelope)]
    assert names == ["edge", "source", "target", "trace_id", "payload", "headers", "meta"]


def test_envelope_is_slotted_and_keeps_the_payload_object() -> None:
    """The envelope carries no __dict__ and holds the payload itself, not a copy."""
    payload = {"q": 1}
    envelope = BusEnvelope("a->*", "a", None, None, payload, None, None)
    assert envelope.payload is payload
    assert not hasattr(envelope, "__dict__")


async def test_a_class_with_async_publish_is_a_message_bus() -> None:
    """Any object with ``async publish(envelope)`` type-checks and works as a MessageBus."""
    published: list[BusEnvelope] = []

    class Recorder:
        async def publish(self, envelope: BusEnvelope) -> None:
            published.append(envelope)

    bus: MessageBus = Recorder()
    envelope = BusEnvelope("a->b", "a", "b", "t1", "x", {"tenant": "t"}, {})
    await bus.publish(envelope)
    assert published == [envelope]
