"""The controller loop: how a ``WM`` (working memory) result is routed (runtime.md section 12).

Rules, in order: a passed deadline, an exhausted token budget or an exhausted hop budget turns
the result into a ``FinalAnswer`` delivered to the Rookery; with no budgets (stream-updates
mode) a deep copy goes to the Rookery first; then the message is re-emitted to the node itself,
which needs a self-edge (without one routing fails with ``KeyError``, F4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._message import WM, FinalAnswer, Message

if TYPE_CHECKING:
    from ._runner import PenguiFlow
    from ._traces import TraceRecord
    from ._worker_state import NodeRuntime, WorkerState

__all__ = ["route_wm"]


async def route_wm(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    incoming: object,
    record: TraceRecord | None,
    result: Message[Any],
    payload: WM,
    handle: object,
) -> float:
    """Route a WM result; return seconds blocked."""
    from ._worker_state import egress_floe

    egress = egress_floe(rt)
    node = rt.node

    async def final(text: str) -> float:
        final_msg = result.model_copy(update={"payload": FinalAnswer(text=text)})
        return await flow._deliver(egress, node, final_msg, record, handle, ws)

    if result.deadline_s is not None and flow._clock.time() > result.deadline_s:
        return await final("Deadline exceeded")
    if payload.budget_tokens is not None and payload.tokens_used >= payload.budget_tokens:
        return await final("Token budget exhausted")
    incoming_hops = (
        incoming.payload.hops if isinstance(incoming, Message) and isinstance(incoming.payload, WM) else None
    )
    if incoming_hops is not None and payload.hops <= incoming_hops:
        next_hops = incoming_hops + 1
    else:
        next_hops = payload.hops
    if payload.budget_hops is not None and next_hops >= payload.budget_hops:
        return await final("Hop budget exhausted")
    prepared = result
    if next_hops != payload.hops:
        prepared = result.model_copy(update={"payload": payload.model_copy(update={"hops": next_hops})})
    blocked = 0.0
    if payload.budget_hops is None and payload.budget_tokens is None:
        blocked += await flow._deliver(egress, node, prepared.model_copy(deep=True), record, handle, ws)
    if rt.self_floe is None:
        raise KeyError(f"Unknown target {node.name} for {node.name}")
    blocked += await flow._send(rt.self_floe, prepared, record, handle, ws)
    return blocked
