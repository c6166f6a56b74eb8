"""Runtime events: :class:`FlowEvent`."""

from ._events import FlowEvent as FlowEvent

__all__ = ["FlowEvent"]
