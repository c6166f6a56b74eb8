"""Debugging helpers: :func:`format_flow_event`."""

from ._events import format_flow_event as format_flow_event

__all__ = ["format_flow_event"]

from ._public import publish

publish(__name__, globals(), __all__)
