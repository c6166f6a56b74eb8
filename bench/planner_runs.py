"""Scenario 7: a ``ReactPlanner`` run with a scripted LLM, 10 tool calls, 3 of them in one parallel step.

One unit is one ``planner.run(...)``: seven single ``lookup`` calls, one ``parallel`` step of three
``fetch`` branches (no join), then ``final_response``; nine LLM decisions, ten tool executions. The
tools are flow ``Node``s with their models in a ``ModelRegistry``, catalogued with ``build_catalog``,
the construction both runtimes accept. One planner and one LLM client serve the whole measurement; each
run queues its nine replies just before it starts, so replies are never shared between runs.

The LLM differs by necessity: ours is ``penguiflow_otel.testing.ScriptedLLM`` (the issue's scripted
client) with a function script; upstream ships no scripted client in its package (only in its project
templates), so it gets ``_ReplayClient``, a minimal ``JSONLLMClient`` in the style of those templates that
returns the same replies as JSON text. Ours also does its bookkeeping (a ``ScriptedCall`` per call, fake
token usage), upstream's client does none: that small difference favours upstream.

Standard library only at import time (pydantic and the runtime are imported when a planner is built):
this module also runs under upstream's interpreter.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any, Final

from .drive import RunHandle

__all__ = ["PARALLEL", "TOOL_CALLS", "build", "replies"]

TOOL_CALLS: Final = 10  # tool executions per run
PARALLEL: Final = 3  # of them, branches of the one parallel step
SEQUENTIAL: Final = TOOL_CALLS - PARALLEL
MAX_ITERS: Final = SEQUENTIAL + 2 + 2  # the decisions (7 calls, parallel, final) with room to spare


def replies(i: int) -> list[dict[str, Any]]:
    """The LLM's replies for run ``i``: seven calls, one parallel step of three, the final answer."""
    steps: list[dict[str, Any]] = [
        {"next_node": "lookup", "args": {"run": i, "k": k}} for k in range(SEQUENTIAL)
    ]
    branches = [{"node": "fetch", "args": {"run": i, "k": k}} for k in range(SEQUENTIAL, TOOL_CALLS)]
    steps.append({"next_node": "parallel", "args": {"steps": branches}})
    steps.append({"next_node": "final_response", "args": {"answer": _answer(i)}})
    return steps


def _answer(i: int) -> str:
    return f"run {i} done"


def _run_of(answer: object) -> int:
    if not isinstance(answer, str) or not answer.startswith("run ") or not answer.endswith(" done"):
        return -1
    middle = answer[4:-5]
    return int(middle) if middle.isdigit() else -1


class _ReplayClient:
    """Upstream's ``JSONLLMClient``: each call pops the next queued reply and returns it as JSON text."""

    def __init__(self, queue: deque[dict[str, Any]]) -> None:
        self._queue = queue

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, Any]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Callable[[str, bool], None] | None = None,
    ) -> str:
        if not self._queue:
            raise RuntimeError("the scripted replies ran out")
        return json.dumps(self._queue.popleft())


def _models() -> tuple[type[Any], type[Any]]:
    from pydantic import BaseModel

    class Step(BaseModel):
        run: int
        k: int

    class Done(BaseModel):
        run: int
        k: int
        ok: bool

    return Step, Done


def build(api: str) -> RunHandle:
    """Build the planner on ``api`` (``penguiflow_otel`` or ``penguiflow``) and bind its run and check.

    ``run(i)`` queues run ``i``'s replies and awaits ``planner.run``. ``key`` accepts a result only if
    the run finished ``answer_complete`` with run ``i``'s answer, used every reply, and the tools saw
    exactly run ``i``'s ten calls, once each.
    """
    step_model, done_model = _models()
    calls: Counter[tuple[int, int]] = Counter()

    async def lookup(args: Any, ctx: Any) -> Any:
        calls[args.run, args.k] += 1
        return done_model(run=args.run, k=args.k, ok=True)

    async def fetch(args: Any, ctx: Any) -> Any:
        calls[args.run, args.k] += 1
        return done_model(run=args.run, k=args.k, ok=True)

    root = import_module(api)
    registry = import_module(f"{api}.registry").ModelRegistry()
    nodes = []
    for func in (lookup, fetch):
        registry.register(func.__name__, step_model, done_model)
        nodes.append(root.Node(func, name=func.__name__, policy=root.NodePolicy()))
    catalog = import_module(f"{api}.catalog").build_catalog(nodes, registry)
    queue: deque[dict[str, Any]] = deque()
    client: Any
    if api == "penguiflow":
        client = _ReplayClient(queue)
    else:
        client = import_module(f"{api}.testing").ScriptedLLM(lambda messages: queue.popleft())
    planner = import_module(f"{api}.planner").ReactPlanner(
        llm_client=client, catalog=catalog, max_iters=MAX_ITERS
    )

    async def run(i: int) -> object:
        queue.extend(replies(i))
        return await planner.run(f"run {i}")

    def key(result: object) -> int:
        if getattr(result, "reason", None) != "answer_complete" or queue:
            return -1
        payload = getattr(result, "payload", None)
        answer = payload.get("raw_answer") if isinstance(payload, Mapping) else None
        i = _run_of(answer)
        expected = {(i, k): 1 for k in range(TOOL_CALLS)}
        seen = {call: n for call, n in calls.items() if call[0] == i}
        if seen != expected:
            return -1
        for call in expected:
            del calls[call]
        return i

    async def stop() -> None:
        queue.clear()

    return RunHandle(run=run, key=key, stop=stop)
