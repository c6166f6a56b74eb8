"""A three-node chain delivers every message, in order, and leaves no per-trace state."""

from __future__ import annotations

from penguiflow_otel import Headers, Message, Node, create


async def _passthrough(message: Message, ctx: object) -> Message:
    return message


async def test_three_node_chain_delivers_every_message_in_order() -> None:
    """Messages emitted into a chain come out of the Rookery in emission order."""
    a, b, c = Node(_passthrough, name="a"), Node(_passthrough, name="b"), Node(_passthrough, name="c")
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
