"""Nodes and their policies."""

from ._node import Node, NodePolicy

__all__ = ["Node", "NodePolicy"]

from ._public import publish

publish(__name__, globals(), __all__)
