"""Planner sessions (per-session ordering) and optional short-term memory."""

from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel

from penguiflow_otel.planner import (
    MemoryIsolation,
    MemoryKey,
    PlannerFinish,
    ReactPlanner,
    ShortTermMemoryConfig,
    ToolContext,
)
from penguiflow_otel.testing import ScriptedLLM


class Args(BaseModel):
    name: str


class Out(BaseModel):
    ok: bool


active = 0
peak = 0


async def slow(args: Args, ctx: ToolContext) -> Out:
    global active, peak
    active += 1
    peak = max(peak, active)
    await asyncio.sleep(0.05)
    active -= 1
    return Out(ok=True)


def script(messages: list[dict[str, str]]) -> dict[str, object]:
    if len(messages) <= 2 or not any(m["role"] == "assistant" for m in messages):
        return ScriptedLLM.call("slow", name="x")
    return ScriptedLLM.final("done")


async def test_calls_of_one_session_are_serialised_and_others_run_concurrently() -> None:
    """Two runs of one session never overlap; runs without a session do."""
    global peak
    planner = ReactPlanner(llm_client=ScriptedLLM(script), nodes=[slow])
    peak = 0
    await asyncio.gather(*(planner.run("q", tool_context={"session_id": "same"}) for _ in range(2)))
    assert peak == 1
    peak = 0
    await asyncio.gather(*(planner.run("q") for _ in range(2)))
    assert peak == 2


KEY = {"tenant_id": "t1", "user_id": "u1", "session_id": "s1"}


async def test_memory_remembers_answered_turns_and_shows_them_read_only() -> None:
    """After an answer, the next call of the same key sees the turn in a system message."""
    llm = ScriptedLLM([ScriptedLLM.final("Paris"), ScriptedLLM.final("again")])
    planner = ReactPlanner(llm_client=llm, nodes=[slow], short_term_memory=ShortTermMemoryConfig())
    await planner.run("capital of France?", tool_context=dict(KEY))
    await planner.run("and again?", tool_context=dict(KEY))
    memory_message = llm.calls[1].messages[1]
    assert memory_message["role"] == "system"
    payload = json.loads(memory_message["content"].split("\n", 1)[1])
    (turn,) = payload["recent_turns"]
    assert (turn["user"], turn["assistant"]) == ("capital of France?", "Paris")
    assert turn["trajectory_digest"] == {"tools_invoked": [], "step_count": 1}


async def test_memory_is_off_without_a_complete_key_and_keys_do_not_mix() -> None:
    """Missing keys disable memory (fail closed); another user's key sees nothing."""
    llm = ScriptedLLM([ScriptedLLM.final("one"), ScriptedLLM.final("two"), ScriptedLLM.final("three")])
    planner = ReactPlanner(llm_client=llm, nodes=[slow], short_term_memory=ShortTermMemoryConfig())
    await planner.run("first", tool_context={"session_id": "s1"})
    await planner.run("second", memory_key=MemoryKey("t1", "u1", "s1"))
    await planner.run("third", memory_key=MemoryKey("t1", "u2", "s1"))
    assert all(len([m for m in call.messages if m["role"] == "system"]) == 1 for call in llm.calls)


async def test_only_answer_complete_records_a_turn() -> None:
    """A run that ends no_path leaves memory unchanged."""
    llm = ScriptedLLM(["garbage", ScriptedLLM.final("ok")])
    config = ShortTermMemoryConfig(isolation=MemoryIsolation(require_explicit_key=True))
    planner = ReactPlanner(llm_client=llm, nodes=[slow], short_term_memory=config, repair_attempts=1)
    failed = await planner.run("q", tool_context=dict(KEY))
    assert isinstance(failed, PlannerFinish)
    assert failed.reason == "no_path"
    await planner.run("q2", tool_context=dict(KEY))
    assert [m["role"] for m in llm.calls[1].messages].count("system") == 1
