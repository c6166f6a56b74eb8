"""The flow runtime: ``PenguiFlow``, contexts, endpoints and edges."""

from ._context import Context
from ._edge import Floe
from ._errors import CycleError, TenantMismatch, TraceCancelled
from ._graph import OPEN_SEA, ROOKERY, Endpoint
from ._playbook import PlaybookFactory, call_playbook
from ._runner import DEFAULT_QUEUE_MAXSIZE, PenguiFlow, create
from ._statistics import FlowStatistics

__all__ = [
    "Context",
    "CycleError",
    "DEFAULT_QUEUE_MAXSIZE",
    "Endpoint",
    "Floe",
    "FlowStatistics",
    "OPEN_SEA",
    "PenguiFlow",
    "PlaybookFactory",
    "ROOKERY",
    "TenantMismatch",
    "TraceCancelled",
    "call_playbook",
    "create",
]

from ._public import publish

publish(__name__, globals(), __all__)
