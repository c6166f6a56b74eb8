"""Status updates: envelopes, streaming chunks and a final answer fetched by trace.

Run with `uv run python examples/roadmap_status_updates/flow.py`: the chunks print as they arrive,
then the final answer.
"""

from __future__ import annotations

import asyncio

from penguiflow_otel import Context, FinalAnswer, Headers, Message, Node, StreamChunk, create

STEPS = ("reading the roadmap", "checking milestones", "drafting the summary")


async def plan(message: Message, ctx: Context) -> Message:
    """Stream a status chunk per step, then hand the work on."""
    for text in STEPS:
        await ctx.emit_chunk(parent=message, text=text, to=None)
        await asyncio.sleep(0.05)  # stands in for real work between status updates
    await ctx.emit_chunk(parent=message, text="done", done=True)
    return message.model_copy(update={"payload": f"{len(STEPS)} steps for {message.payload!r}"})


async def relay(message: Message, ctx: Context) -> Message:
    """Pass chunks straight through; turn the finished work into a final answer."""
    if isinstance(message.payload, StreamChunk):
        return message
    return message.model_copy(update={"payload": FinalAnswer(text=f"Roadmap: {message.payload}")})


async def main() -> str:
    plan_node, relay_node = Node(plan, name="plan"), Node(relay, name="relay")
    request = Message(payload="Q3 roadmap", headers=Headers(tenant="acme"))
    lines: list[str] = []
    async with create(plan_node.to(relay_node), relay_node.to()) as flow:
        await flow.emit(request, trace_id=request.trace_id)
        while True:
            result = await flow.fetch(trace_id=request.trace_id)
            payload = result.payload
            if isinstance(payload, StreamChunk):
                line = f"[chunk {payload.seq}] {payload.text}"
                print(line, flush=True)
                lines.append(line)
                continue
            answer = payload.text if isinstance(payload, FinalAnswer) else str(payload)
            print(f"[final] {answer}", flush=True)
            lines.append(answer)
            return answer


if __name__ == "__main__":
    asyncio.run(main())
