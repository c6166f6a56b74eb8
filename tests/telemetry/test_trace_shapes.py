"""Trace shapes the runtime draws (telemetry.md sections 4.1, 4.3, 5.1 and 11): subflows nest, a reused trace
id adds a second root to the same OTel trace, baggage stays off spans and metrics, and telemetry adds no task
per message.
"""

from __future__ import annotations

import asyncio
from typing import Any

from capture_helpers import attrs, node, only, parent_of, span_id, trace_of
from flowkit import make_message, run_once
from opentelemetry import baggage
from opentelemetry import context as otel_context

from penguiflow_otel import Context, Message, ModelRegistry, Node, PenguiFlow, create
from penguiflow_otel.propagation import inject
from penguiflow_otel.testing import capture_telemetry


async def test_a_playbook_called_from_a_node_nests_under_that_nodes_attempt() -> None:
    """call_playbook inside a node: the subflow's root 'flow sub' is a child of the calling attempt span."""

    def playbook() -> tuple[PenguiFlow, ModelRegistry | None]:
        return create(node("inner").to(), name="sub"), None

    async def caller(message: Any, ctx: Context) -> Any:
        payload = await ctx.call_playbook(playbook, message)
        return message.model_copy(update={"payload": f"sub said {payload}"})

    with capture_telemetry() as tel:
        result = await run_once(create(Node(caller, name="caller").to(), name="main"), make_message("hi"))

        assert result.payload == "sub said hi"
        assert tel.tree() == [
            (0, "flow main"),
            (1, "node caller"),
            (2, "flow sub"),
            (3, "node inner"),
        ]
        sub_root, calling = only(tel.spans("flow sub")), only(tel.spans("node caller"))
        assert parent_of(sub_root) == span_id(calling)
        assert trace_of(sub_root) == trace_of(calling) == int(result.trace_id, 16)
        assert tel.open_spans() == []


async def test_reusing_an_ended_trace_id_puts_a_second_root_into_the_same_otel_trace() -> None:
    """Two traces with one id, one after the other: two true roots, one OTel trace id."""
    with capture_telemetry() as tel:
        flow = create(node("a").to())
        flow.run()
        first = make_message("one")
        await flow.emit(first)
        await flow.fetch()
        assert flow.statistics().active_traces == 0
        await flow.emit(make_message("two", trace_id=first.trace_id))
        await flow.fetch()
        await flow.stop()

        roots = tel.spans("flow a")
        assert len(roots) == 2
        assert [parent_of(root) for root in roots] == [None, None]
        assert {trace_of(root) for root in roots} == {int(first.trace_id, 16)}
        assert span_id(roots[0]) != span_id(roots[1])
        assert tel.open_spans() == []


async def test_baggage_current_at_emit_reaches_inject_but_never_spans_or_metrics() -> None:
    """Baggage current at flow.emit is forwarded by inject in the node, and absent from spans and labels."""
    carriers: list[dict[str, str]] = []

    async def call_out(message: Any, ctx: Context) -> Any:
        carrier: dict[str, str] = {}
        inject(message, carrier)
        carriers.append(carrier)
        return message

    with capture_telemetry() as tel:
        flow = create(Node(call_out, name="out").to())
        flow.run()
        token = otel_context.attach(baggage.set_baggage("user.id", "u-12345"))
        try:
            await flow.emit(make_message("x"))
        finally:
            otel_context.detach(token)
        await flow.fetch()
        await flow.stop()

        assert "user.id=u-12345" in carriers[0].get("baggage", "")
        for span in tel.spans():
            assert "u-12345" not in repr(attrs(span))
            assert "user.id" not in attrs(span)
        assert "u-12345" not in tel.prometheus_text()
        assert tel.open_spans() == []


async def test_a_traced_flow_runs_every_message_in_its_worker_task() -> None:
    """Under full tracing node code still runs in the one worker task; the task count stays constant."""
    tasks: list[asyncio.Task[Any] | None] = []
    counts: list[int] = []

    async def note(message: Message[Any], ctx: Context) -> Message[Any]:
        tasks.append(asyncio.current_task())
        counts.append(len(asyncio.all_tasks()))
        return message

    with capture_telemetry() as tel:
        flow = create(Node(note, name="note").to())
        flow.run()
        for index in range(5):
            await flow.emit(make_message(index))
            await flow.fetch()
        await flow.stop()

        assert len(tel.spans("node note")) == 5
        assert len({id(task) for task in tasks}) == 1
        assert len(set(counts)) == 1
        assert tel.open_spans() == []
