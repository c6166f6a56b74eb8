"""The runtime's exceptions and stable error codes."""

from ._errors import CycleError, FlowError, FlowErrorCode, TenantMismatch, TraceCancelled

__all__ = ["CycleError", "FlowError", "FlowErrorCode", "TenantMismatch", "TraceCancelled"]

from ._public import publish

publish(__name__, globals(), __all__)
