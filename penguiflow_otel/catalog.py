"""The typed tool catalog: ``@tool``, ``NodeSpec``, ``build_catalog`` and their checks (planner.md §2)."""

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

NodeSpec.__module__ = __name__
CatalogError.__module__ = __name__
