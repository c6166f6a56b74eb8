"""Graph building: endpoints, adjacency normalisation, ingress/egress, successor order, cycle check."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._edge import Floe, Inbox
from ._errors import CycleError
from ._node import Node

__all__ = ["OPEN_SEA", "ROOKERY", "Endpoint", "Graph", "build_graph"]

Adjacency = tuple[Node, Sequence[Node]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A flow boundary: ``OPEN_SEA`` (ingress side) or ``ROOKERY`` (results side)."""

    name: str


OPEN_SEA = Endpoint("OpenSea")
ROOKERY = Endpoint("Rookery")


class Graph:
    """The normalised graph: nodes in declaration order and every edge of the flow.

    A plain slotted class, not a dataclass: ``@dataclass`` compiles its generated methods when the
    module is imported, and nothing compares or prints a ``Graph``.
    """

    __slots__ = ("egress", "inboxes", "incoming", "ingress", "nodes", "outgoing", "successors")

    def __init__(
        self,
        nodes: list[Node],
        successors: dict[Node, list[Node]],
        incoming: dict[Node, list[Floe]],
        outgoing: dict[Node, list[Floe]],
        ingress: list[Floe],
        egress: list[Floe],
        inboxes: dict[Node, Inbox],
    ) -> None:
        self.nodes = nodes
        self.successors = successors
        self.incoming = incoming
        self.outgoing = outgoing
        self.ingress = ingress
        self.egress = egress
        self.inboxes = inboxes

    @property
    def floes(self) -> list[Floe]:
        """Every edge: ingress, node to node, egress, in declaration order."""
        inner = [floe for node in self.nodes for floe in self.outgoing[node]]
        return [*self.ingress, *inner]


def _normalise(adjacencies: Iterable[Adjacency]) -> tuple[list[Node], dict[Node, list[Node]]]:
    order: list[Node] = []
    successors: dict[Node, list[Node]] = {}

    def see(node: Node) -> None:
        if node not in successors:
            successors[node] = []
            order.append(node)

    for node, succs in adjacencies:
        see(node)
        for succ in succs:
            see(succ)
            if succ not in successors[node]:
                successors[node].append(succ)
    return order, successors


def _parents(nodes: list[Node], successors: dict[Node, list[Node]]) -> dict[Node, list[Node]]:
    parents: dict[Node, list[Node]] = {node: [] for node in nodes}
    for node in nodes:
        for succ in successors[node]:
            if succ is node and node.allow_cycle:
                continue
            parents[succ].append(node)
    return parents


def _check_acyclic(nodes: list[Node], successors: dict[Node, list[Node]]) -> None:
    indegree = dict.fromkeys(nodes, 0)
    for node in nodes:
        for succ in successors[node]:
            if not (succ is node and node.allow_cycle):
                indegree[succ] += 1
    ready = [node for node in nodes if indegree[node] == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for succ in successors[node]:
            if succ is node and node.allow_cycle:
                continue
            indegree[succ] -= 1
            if indegree[succ] == 0:
                ready.append(succ)
    if seen != len(nodes):
        raise CycleError("Flow contains a cycle; enable allow_cycles to bypass")


def build_graph(adjacencies: Iterable[Adjacency], *, maxsize: int, allow_cycles: bool) -> Graph:
    """Normalise adjacencies into nodes and edges; raise ``CycleError`` on a forbidden cycle."""
    nodes, successors = _normalise(adjacencies)
    if not allow_cycles:
        _check_acyclic(nodes, successors)
    parents = _parents(nodes, successors)
    incoming: dict[Node, list[Floe]] = {node: [] for node in nodes}
    outgoing: dict[Node, list[Floe]] = {node: [] for node in nodes}
    ingress: list[Floe] = []
    egress: list[Floe] = []
    for node in nodes:
        if not parents[node]:
            floe = Floe(OPEN_SEA, node, maxsize=maxsize)
            ingress.append(floe)
            incoming[node].append(floe)
    for node in nodes:
        for succ in successors[node]:
            floe = Floe(node, succ, maxsize=maxsize)
            outgoing[node].append(floe)
            incoming[succ].append(floe)
        if all(succ is node for succ in successors[node]):
            out = Floe(node, ROOKERY, maxsize=0)
            outgoing[node].append(out)
            egress.append(out)
    inboxes = {node: Inbox(incoming[node]) for node in nodes}
    return Graph(nodes, successors, incoming, outgoing, ingress, egress, inboxes)
