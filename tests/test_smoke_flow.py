"""A three-node chain delivers every message, in order, and leaves no per-trace state."""

from __future__ import annotations

from flowkit import passthrough

from penguiflow_otel import Headers, Message, Node, create


async def test_three_node_chain_delivers_every_message_in_order() -> None:
    """Messages emitted into a chain come out of the Rookery in emission order."""
    a, b, c = Node(passthrough, name="a"), Node(passthrough, name="b"), Node(passthrough, name="c")
    flow = create(a.to(b), b.to(c), c.to())
    flow.run()
    sent = [Message(payload=i, headers=Headers(tenant="t")) for i in range(200)]
    for message in sent:
        await flow.emit(message)
    got = [await flow.fetch() for _ in sent]
    assert [m.payload for m in got] == list(range(200))
    stats = flow.statistics()
    assert stats.active_traces == 0
    assert all(size == 0 for size in stats.trace_tables.values())
    assert await flow.stop() == 0
