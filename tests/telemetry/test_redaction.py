"""Redaction on spans (telemetry.md sections 5.1 and 5.2, runtime F15).

``penguiflow.message.payload`` / ``penguiflow.message.meta`` appear on attempt spans only when the flow has
a redactor: its return value as JSON (else ``repr``), truncated to 16 384 characters; ``None`` omits a field.
"""

from __future__ import annotations

import json
from typing import Any

from capture_helpers import attrs, node, only
from flowkit import make_message, run_once

from penguiflow_otel import Headers, Message, create
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import capture_telemetry

_LIMIT = 16_384


class Opaque:
    """A value json cannot encode; its repr is what the span shows."""

    def __repr__(self) -> str:
        return "Opaque(<card>)"


async def test_without_a_redactor_spans_hold_neither_payload_nor_meta() -> None:
    """A flow with no redactor puts no payload or meta attribute on any span."""
    with capture_telemetry() as tel:
        message = Message(payload={"card": "4111"}, headers=Headers(tenant="t"), meta={"user": "ann"})
        await run_once(create(node("a").to()), message)

        for span in tel.spans():
            assert names.ATTR_MESSAGE_PAYLOAD not in attrs(span)
            assert names.ATTR_MESSAGE_META not in attrs(span)
            assert "4111" not in repr(attrs(span))
        assert tel.open_spans() == []


async def test_a_redactors_values_are_recorded_as_json_on_each_attempt_span() -> None:
    """The redactor sees ('payload', payload) and ('meta', meta); its results land on the span as JSON."""
    calls: list[tuple[str, Any]] = []

    def redactor(kind: str, value: Any) -> Any:
        calls.append((kind, value))
        if kind == "payload":
            return {"card": "****", "amount": value["amount"]}
        return {"keys": sorted(value)}

    with capture_telemetry() as tel:
        message = Message(
            payload={"card": "4111", "amount": 12}, headers=Headers(tenant="t"), meta={"user": "ann"}
        )
        await run_once(create(node("pay").to(), redactor=redactor), message)

        span = only(tel.spans("node pay"))
        assert json.loads(attrs(span)[names.ATTR_MESSAGE_PAYLOAD]) == {"card": "****", "amount": 12}
        assert json.loads(attrs(span)[names.ATTR_MESSAGE_META]) == {"keys": ["user"]}
        assert ("payload", {"card": "4111", "amount": 12}) in calls
        assert ("meta", {"user": "ann"}) in calls
        root = only(tel.spans("flow "))
        assert names.ATTR_MESSAGE_PAYLOAD not in attrs(root)
        assert "4111" not in repr([attrs(span) for span in tel.spans()])
        assert tel.open_spans() == []


async def test_a_redactor_returning_none_omits_that_field() -> None:
    """None for meta leaves only the payload attribute."""
    with capture_telemetry() as tel:
        message = make_message("plain", meta={"secret": "x"})
        redactor = {"payload": "kept", "meta": None}.get
        await run_once(create(node("a").to(), redactor=lambda kind, value: redactor(kind)), message)

        span = only(tel.spans("node a"))
        assert attrs(span)[names.ATTR_MESSAGE_PAYLOAD] == '"kept"'
        assert names.ATTR_MESSAGE_META not in attrs(span)
        assert tel.open_spans() == []


async def test_a_value_json_cannot_encode_is_recorded_as_its_repr() -> None:
    """A non-JSON redactor result is recorded with repr()."""
    with capture_telemetry() as tel:
        await run_once(create(node("a").to(), redactor=lambda kind, value: Opaque()), make_message("x"))

        span = only(tel.spans("node a"))
        assert attrs(span)[names.ATTR_MESSAGE_PAYLOAD] == "Opaque(<card>)"
        assert attrs(span)[names.ATTR_MESSAGE_META] == "Opaque(<card>)"
        assert tel.open_spans() == []


async def test_a_long_redacted_value_is_truncated_to_16384_characters() -> None:
    """The recorded text is cut to 16 384 characters."""
    with capture_telemetry() as tel:
        long_text = "y" * (_LIMIT * 2)
        await run_once(create(node("a").to(), redactor=lambda kind, value: long_text), make_message("x"))

        recorded = attrs(only(tel.spans("node a")))[names.ATTR_MESSAGE_PAYLOAD]
        assert len(recorded) == _LIMIT
        assert recorded == json.dumps(long_text)[:_LIMIT]
        assert tel.open_spans() == []


async def test_a_payload_only_item_is_redacted_as_its_own_payload() -> None:
    """For an item that is not a Message the redactor gets the item itself as the payload, and no meta."""
    kinds: list[str] = []

    def redactor(kind: str, value: Any) -> Any:
        kinds.append(kind)
        return {"seen": value["n"]}

    with capture_telemetry() as tel:
        await run_once(create(node("a").to(), redactor=redactor), {"n": 7})

        span = only(tel.spans("node a"))
        assert json.loads(attrs(span)[names.ATTR_MESSAGE_PAYLOAD]) == {"seen": 7}
        assert names.ATTR_MESSAGE_META not in attrs(span)
        assert set(kinds) == {"payload"}
        assert tel.open_spans() == []
