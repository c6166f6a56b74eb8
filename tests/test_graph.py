"""Graph building (runtime.md sections 2, 4, 5 and 15): defaults, adjacency, cycles, edge order.

Edges are read through ``statistics()`` (``edge_size`` / ``edge_capacity``, keyed ``"{source}->{target}"``).
"""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import make_message, passthrough, run_once

from penguiflow_otel import (
    DEFAULT_QUEUE_MAXSIZE,
    Context,
    CycleError,
    Headers,
    Message,
    Node,
    PenguiFlow,
    create,
)

_CYCLE = "Flow contains a cycle; enable allow_cycles to bypass"


def named(name: str) -> Node:
    """A passthrough node called ``name``."""
    return Node(passthrough, name=name)


# queue_maxsize -----------------------------------------------------------------------------------


def test_default_queue_maxsize_is_64_and_every_queue_edge_gets_it() -> None:
    """DEFAULT_QUEUE_MAXSIZE is 64, the default capacity of ingress and node edges; egress edges report 0."""
    a, b = named("a"), named("b")
    flow = create(a.to(b), b.to())

    assert DEFAULT_QUEUE_MAXSIZE == 64
    assert flow.statistics().edge_capacity == {"ingress->a": 64, "a->b": 64, "b->egress": 0}


# adjacency ---------------------------------------------------------------------------------------


def test_repeated_adjacency_entries_for_a_node_merge_into_one_edge_per_pair() -> None:
    """Declaring a node's successors in several entries merges them, with one edge per pair in order."""
    a, b, c = named("a"), named("b"), named("c")
    flow = create(a.to(b), a.to(c, b), b.to(), a.to(b))

    assert list(flow.statistics().edge_capacity) == [
        "ingress->a",
        "a->b",
        "a->c",
        "b->egress",
        "c->egress",
    ]


def test_a_node_seen_only_as_a_successor_has_no_successors_and_is_egress() -> None:
    """A node named only inside another's ``to(...)`` gets no outgoing node edge, only its egress edge."""
    a, b = named("a"), named("b")
    flow = create(a.to(b))

    assert list(flow.statistics().edge_capacity) == ["ingress->a", "a->b", "b->egress"]


async def test_two_nodes_may_share_a_name() -> None:
    """Node names are not required to be unique: a flow of two nodes called 'same' runs."""
    first, second = named("same"), named("same")
    flow = create(first.to(second), second.to())
    message = make_message("through both")

    assert await run_once(flow, message) is message
    assert flow.name == "same"


# cycles ------------------------------------------------------------------------------------------


def test_cycle_error_is_a_runtime_error() -> None:
    """CycleError subclasses RuntimeError, so code catching RuntimeError keeps working."""
    assert issubclass(CycleError, RuntimeError)


def test_a_cycle_without_allow_cycles_raises_cycle_error_with_the_exact_message() -> None:
    """create(a.to(b), b.to(a)) raises CycleError('Flow contains a cycle; enable allow_cycles to bypass')."""
    a, b = named("a"), named("b")
    with pytest.raises(CycleError) as caught:
        create(a.to(b), b.to(a))
    assert str(caught.value) == _CYCLE

    with pytest.raises(RuntimeError, match=r"^Flow contains a cycle"):
        PenguiFlow(a.to(b), b.to(a))


def test_allow_cycles_accepts_the_same_cycle() -> None:
    """With allow_cycles=True the same two-node cycle builds."""
    a, b = named("a"), named("b")
    flow = create(a.to(b), b.to(a), allow_cycles=True)

    assert set(flow.statistics().edge_capacity) == {"a->b", "b->a"}


# API surface -------------------------------------------------------------------------------------


def test_the_flow_has_no_emit_to_no_stream_method_and_no_metrics_exporter() -> None:
    """PenguiFlow offers no emit_to, no stream() and no core metrics exporter (telemetry does that)."""
    flow = create(named("a").to())
    for missing in ("emit_to", "stream", "metrics_exporter", "export_metrics"):
        assert not hasattr(flow, missing), missing


async def test_priority_and_topic_never_reorder_messages() -> None:
    """Messages of differing priority and topic are handled in emission order (no priority queues)."""
    seen: list[int] = []

    async def record(message: Any, ctx: Context) -> Any:
        seen.append(message.headers.priority)
        return message

    node = Node(record, name="node")
    flow = create(node.to())
    priorities = [0, 9, -3, 5, 9, 1]
    for index, priority in enumerate(priorities):
        headers = Headers(tenant="t", topic=f"topic-{index % 2}", priority=priority)
        await flow.emit(Message(payload=index, headers=headers))
    flow.run()
    results = [await flow.fetch() for _ in priorities]
    await flow.stop()

    assert seen == priorities
    assert [result.payload for result in results] == list(range(len(priorities)))
