"""Runtime events: :class:`FlowEvent`."""

from ._events import FlowEvent as FlowEvent

__all__ = ["FlowEvent"]

from ._public import publish

publish(__name__, globals(), __all__)
