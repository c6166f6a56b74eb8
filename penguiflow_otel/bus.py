"""Message buses: publish every edge put to an external transport."""

from ._bus import BusEnvelope as BusEnvelope
from ._bus import MessageBus as MessageBus

__all__ = ["BusEnvelope", "MessageBus"]

from ._public import publish

publish(__name__, globals(), __all__)
