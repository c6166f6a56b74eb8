"""The typed tool catalog: ``@tool``, ``NodeSpec``, ``build_catalog`` and their checks (planner.md §2)."""

from ._public import publish
from .planner._catalog import RESERVED_ACTIONS, NodeSpec, SideEffects, ToolPolicy, build_catalog, tool
from .planner._errors import CatalogError

__all__ = [
    "CatalogError",
    "NodeSpec",
    "RESERVED_ACTIONS",
    "SideEffects",
    "ToolPolicy",
    "build_catalog",
    "tool",
]

publish(__name__, globals(), __all__)
