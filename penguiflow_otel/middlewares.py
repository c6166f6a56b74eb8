"""Middlewares: async observers of runtime events."""

from ._events import FlowEvent as FlowEvent
from ._middlewares import LatencyCallback as LatencyCallback
from ._middlewares import Middleware as Middleware
from ._middlewares import log_flow_events as log_flow_events

__all__ = ["FlowEvent", "LatencyCallback", "Middleware", "log_flow_events"]

from ._public import publish

publish(__name__, globals(), __all__)
