"""State stores: persisted runtime events."""

from ._state import RemoteBinding as RemoteBinding
from ._state import StateStore as StateStore
from ._state import StoredEvent as StoredEvent

__all__ = ["RemoteBinding", "StateStore", "StoredEvent"]

from ._public import publish

publish(__name__, globals(), __all__)
