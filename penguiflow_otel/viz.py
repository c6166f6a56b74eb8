"""Flow diagrams: Mermaid and Graphviz DOT."""

from ._viz import flow_to_dot, flow_to_mermaid

__all__ = ["flow_to_dot", "flow_to_mermaid"]

from ._public import publish

publish(__name__, globals(), __all__)
