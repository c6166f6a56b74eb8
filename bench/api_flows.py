"""Benchmark graphs built with the PenguiFlow public API, for ``penguiflow_otel`` and ``penguiflow`` alike.

The module under test is passed in, so both implementations run exactly this code. Standard library
only at import time: this module also runs under upstream's interpreter.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from .drive import CANCELLED, CHUNKS_PER_TRACE, FlowHandle
from .otel_setup import span_middleware

__all__ = ["FANOUT", "GRAPHS", "REQUIRED_NAMES", "passthrough"]

# The public names the API graphs use; an implementation lacking one is reported unavailable.
REQUIRED_NAMES = ("Headers", "Message", "Node", "NodePolicy", "create", "join_k")

FANOUT = 4  # branches in the fan-out graph, and the k of its join_k


async def passthrough(msg: Any, ctx: Any) -> Any:
    """The node body of every benchmark graph: hand the message on unchanged."""
    return msg


def _handle(api: ModuleType, flow: Any) -> FlowHandle:
    """Bind a running flow's operations; ``fetch_traced`` maps ``TraceCancelled`` to ``CANCELLED``.

    Both implementations define ``TraceCancelled`` in their ``core`` module (upstream does not export it
    from the package), so it is taken from there for both.
    """
    trace_cancelled = import_module(f"{api.__name__}.core").TraceCancelled

    async def emit_traced(item: object, trace_id: str) -> object:
        return await flow.emit(item, trace_id=trace_id)

    async def fetch_traced(trace_id: str) -> object:
        try:
            return await flow.fetch(trace_id=trace_id)
        except trace_cancelled:
            return CANCELLED

    return FlowHandle(
        emit=flow.emit,
        fetch=flow.fetch,
        stop=flow.stop,
        emit_traced=emit_traced,
        fetch_traced=fetch_traced,
        cancel=flow.cancel,
    )


def _node(api: ModuleType, func: Callable[..., Any], name: str) -> Any:
    return api.Node(func, name=name, policy=api.NodePolicy())


def chain3(api: ModuleType) -> FlowHandle:
    """a -> b -> c, default policy and queue size; c's results go to egress. Starts the flow."""
    a, b, c = (_node(api, passthrough, name) for name in "abc")
    flow = api.create(a.to(b), b.to(c))
    flow.run()
    return _handle(api, flow)


def chain3_span_middleware(api: ModuleType) -> FlowHandle:
    """``chain3`` with ``otel_setup.span_middleware()`` added before ``run()``: a span per node attempt.

    Upstream's way of getting OTel spans today (it has no tracing of its own); the OTel SDK must be
    installed and its global provider set first. Starts the flow.
    """
    a, b, c = (_node(api, passthrough, name) for name in "abc")
    flow = api.create(a.to(b), b.to(c))
    flow.add_middleware(span_middleware())
    flow.run()
    return _handle(api, flow)


def fanout4_join(api: ModuleType) -> FlowHandle:
    """a -> b0..b3 -> join_k("join", 4) -> egress. ``a`` returns the message, so each branch gets it.

    ``join_k`` collects the four copies of a trace and emits one message whose payload is the list of
    their payloads. Default policy and queue size everywhere. Starts the flow.
    """
    a = _node(api, passthrough, "a")
    branches = [_node(api, passthrough, f"b{i}") for i in range(FANOUT)]
    join = api.join_k("join", FANOUT)
    flow = api.create(a.to(*branches), *(b.to(join) for b in branches), join.to())
    flow.run()
    return _handle(api, flow)


async def stream_tokens(msg: Any, ctx: Any) -> None:
    """Stream ``CHUNKS_PER_TRACE`` chunks for ``msg`` with ``ctx.emit_chunk``; the last one is ``done``."""
    last = CHUNKS_PER_TRACE - 1
    for seq in range(CHUNKS_PER_TRACE):
        await ctx.emit_chunk(parent=msg, text="tok", done=seq == last)


def stream1(api: ModuleType) -> FlowHandle:
    """One node that streams every message it gets; its chunks go to egress. Starts the flow."""
    streamer = _node(api, stream_tokens, "streamer")
    flow = api.create(streamer.to())
    flow.run()
    return _handle(api, flow)


GRAPHS: dict[str, Callable[[ModuleType], FlowHandle]] = {
    "chain3": chain3,
    "chain3_traced": chain3,  # the API graph has trace-scoped operations already
    "chain3_span_middleware": chain3_span_middleware,
    "fanout4_join": fanout4_join,
    "stream1": stream1,
}
