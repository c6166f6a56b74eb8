"""Nodes and their policies."""

from ._node import Node, NodePolicy

__all__ = ["Node", "NodePolicy"]
