"""The message-bus seam: every edge put and Rookery delivery, published before it happens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["BusEnvelope", "MessageBus"]


@dataclass(slots=True)
class BusEnvelope:
    """One published item.

    ``edge`` is ``"<source>-><target>"`` with ``*`` for a missing name; ``payload`` is the object
    itself (no redaction: the bus is a transport); ``headers`` is ``Message.headers.model_dump()``
    and ``meta`` is ``Message.meta``, each ``None`` for a payload-only item.
    """

    edge: str
    source: str | None
    target: str | None
    trace_id: str | None
    payload: Any
    headers: Mapping[str, Any] | None
    meta: Mapping[str, Any] | None


class MessageBus(Protocol):
    """A transport the flow publishes to; failures are logged and swallowed."""

    async def publish(self, envelope: BusEnvelope) -> None:
        """Publish one envelope."""
        ...
