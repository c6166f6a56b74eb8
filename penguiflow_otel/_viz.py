"""Flow diagrams: a flow's graph rendered as Mermaid or Graphviz DOT text.

Both renderers read only the flow's public ``floes`` view. A box appears in the order its first
edge is declared (ingress edges come first), so the text is stable for a given flow and can be
compared verbatim in tests and docs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from ._graph import Endpoint
from ._node import Node

if TYPE_CHECKING:
    from ._runner import PenguiFlow

__all__ = ["flow_to_dot", "flow_to_mermaid"]

EdgeLabel: TypeAlias = Literal["loop", "ingress", "egress"]

_UNSAFE_ID_CHARS: Final = re.compile(r"[^0-9A-Za-z_]")
_ENDPOINT_COLOUR: Final = "#e0f2fe"
_LOOP_COLOUR: Final = "#fef3c7"
_MERMAID_CLASS_STYLES: Final = {
    "controller_loop": f"fill:{_LOOP_COLOUR},stroke:#b45309,stroke-width:1px",
    "endpoint": f"fill:{_ENDPOINT_COLOUR},stroke:#0369a1,stroke-width:1px",
}


# The three records below are plain slotted classes rather than dataclasses: ``@dataclass`` compiles
# its generated methods at import time (roughly half a millisecond per class), and these never need them.


class _Box:
    """One drawn vertex: a node or an endpoint."""

    __slots__ = ("endpoint", "identifier", "label", "loop")

    def __init__(self, identifier: str, label: str, endpoint: bool, loop: bool) -> None:
        self.identifier = identifier
        self.label = label
        self.endpoint = endpoint
        self.loop = loop

    @property
    def classes(self) -> list[str]:
        """Mermaid class names of this box, in a fixed order."""
        names: list[str] = []
        if self.endpoint:
            names.append("endpoint")
        if self.loop:
            names.append("controller_loop")
        return names


class _Arrow:
    """One drawn edge between two box identifiers."""

    __slots__ = ("label", "source", "target")

    def __init__(self, source: str, target: str, label: EdgeLabel | None) -> None:
        self.source = source
        self.target = target
        self.label = label


class _Diagram:
    """Boxes in first-seen order and arrows in declaration order."""

    __slots__ = ("arrows", "boxes")

    def __init__(self, boxes: tuple[_Box, ...], arrows: tuple[_Arrow, ...]) -> None:
        self.boxes = boxes
        self.arrows = arrows


def flow_to_mermaid(flow: PenguiFlow, *, direction: str = "TD") -> str:
    """Render the flow's graph as a Mermaid flowchart.

    Args:
        flow: The flow to draw.
        direction: The Mermaid direction, such as ``"TD"`` or ``"LR"``.
    """
    diagram = _collect(flow)
    lines = [f"graph {direction}"]
    lines.extend(f'    {box.identifier}["{_escape_mermaid(box.label)}"]' for box in diagram.boxes)
    used = sorted({name for box in diagram.boxes for name in box.classes})
    lines.extend(f"    classDef {name} {_MERMAID_CLASS_STYLES[name]}" for name in used)
    lines.extend(
        f"    class {box.identifier} {' '.join(box.classes)}" for box in diagram.boxes if box.classes
    )
    for arrow in diagram.arrows:
        label = f"|{arrow.label}|" if arrow.label else ""
        lines.append(f"    {arrow.source} -->{label} {arrow.target}")
    return "\n".join(lines)


def flow_to_dot(flow: PenguiFlow, *, rankdir: str = "TB") -> str:
    """Render the flow's graph as a Graphviz DOT digraph.

    Args:
        flow: The flow to draw.
        rankdir: The Graphviz rank direction, such as ``"TB"`` or ``"LR"``.
    """
    diagram = _collect(flow)
    lines = ["digraph PenguiFlow {", f"    rankdir={rankdir}", "    node [shape=box, style=rounded]"]
    lines.extend(f"    {box.identifier} [{_dot_attributes(box)}]" for box in diagram.boxes)
    for arrow in diagram.arrows:
        label = f' [label="{arrow.label}"]' if arrow.label else ""
        lines.append(f"    {arrow.source} -> {arrow.target}{label}")
    lines.append("}")
    return "\n".join(lines)


def _dot_attributes(box: _Box) -> str:
    attributes = [f'label="{_escape_dot(box.label)}"']
    if box.endpoint:
        attributes += ["shape=oval", 'style="filled"', f'fillcolor="{_ENDPOINT_COLOUR}"']
    elif box.loop:
        attributes += ['style="rounded,filled"', f'fillcolor="{_LOOP_COLOUR}"']
    return ", ".join(attributes)


def _collect(flow: PenguiFlow) -> _Diagram:
    boxes: dict[Node | Endpoint, _Box] = {}
    arrows: list[_Arrow] = []
    taken: set[str] = set()

    def box_for(vertex: Node | Endpoint) -> _Box:
        box = boxes.get(vertex)
        if box is None:
            label = _label(vertex)
            identifier = _unique_id(label, taken)
            taken.add(identifier)
            is_loop = isinstance(vertex, Node) and vertex.allow_cycle
            box = _Box(identifier, label, isinstance(vertex, Endpoint), is_loop)
            boxes[vertex] = box
        return box

    for floe in flow.floes:
        source, target = box_for(floe.source), box_for(floe.target)
        if floe.source == floe.target:
            # A self-edge marks its node as a controller loop even without allow_cycle.
            source.loop = True
        arrows.append(_Arrow(source.identifier, target.identifier, _edge_label(floe.source, floe.target)))
    return _Diagram(tuple(boxes.values()), tuple(arrows))


def _edge_label(source: Node | Endpoint, target: Node | Endpoint) -> EdgeLabel | None:
    if source == target:
        return "loop"
    if isinstance(source, Endpoint):
        return "ingress"
    if isinstance(target, Endpoint):
        return "egress"
    return None


def _label(vertex: Node | Endpoint) -> str:
    if isinstance(vertex, Endpoint):
        return vertex.name
    return vertex.name or vertex.node_id


def _unique_id(label: str, taken: set[str]) -> str:
    base = _UNSAFE_ID_CHARS.sub("_", label) or "node"
    candidate, index = base, 1
    while candidate in taken:
        index += 1
        candidate = f"{base}_{index}"
    return candidate


def _escape_mermaid(label: str) -> str:
    return label.replace('"', '\\"')


def _escape_dot(label: str) -> str:
    # DOT strings treat a backslash as an escape, so it is doubled before quotes are escaped.
    return label.replace("\\", "\\\\").replace('"', '\\"')
