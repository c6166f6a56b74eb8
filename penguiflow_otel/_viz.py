"""Placeholder replaced by the viz implementation."""

from typing import Any

__all__ = ["flow_to_dot", "flow_to_mermaid"]
flow_to_dot: Any = None
flow_to_mermaid: Any = None
