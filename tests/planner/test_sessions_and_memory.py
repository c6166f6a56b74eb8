"""Planner sessions (per-session ordering) and optional short-term memory."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow_otel.planner import (
    MemoryBudget,
    MemoryIsolation,
    MemoryKey,
    PlannerFinish,
    ReactPlanner,
    ShortTermMemory,
    ShortTermMemoryConfig,
    ToolContext,
)
from penguiflow_otel.testing import ScriptedCall, ScriptedLLM


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


def remembered(call: ScriptedCall) -> list[dict[str, Any]] | None:
    """The turns of the memory system message of one LLM call (``None`` without one)."""
    memory = [m for m in call.messages[1:] if m["role"] == "system"]
    if not memory:
        return None
    (message,) = memory
    header, body = message["content"].split("\n", 1)
    assert header == "Conversation memory (read-only JSON):"
    turns: list[dict[str, Any]] = json.loads(body)["recent_turns"]
    return turns


def answer_each_query(messages: list[dict[str, str]]) -> str | dict[str, Any]:
    """Answers "<query>!" (long queries get long answers); the query "peek" gets garbage (no_path)."""
    query = json.loads(next(m for m in messages if m["role"] == "user")["content"])["query"]
    if query == "peek":
        return "not an action"
    return ScriptedLLM.final(f"{query}!")


def memory_planner(config: ShortTermMemoryConfig | ShortTermMemory) -> tuple[ReactPlanner, ScriptedLLM]:
    llm = ScriptedLLM(answer_each_query)
    return ReactPlanner(llm_client=llm, nodes=[slow], short_term_memory=config, repair_attempts=1), llm


async def test_truncation_keeps_only_the_full_zone_of_most_recent_turns() -> None:
    """With full_zone_turns=2, the fifth call sees turns three and four, oldest first."""
    planner, llm = memory_planner(ShortTermMemoryConfig(budget=MemoryBudget(full_zone_turns=2)))
    for query in ("q1", "q2", "q3", "q4", "q5"):
        await planner.run(query, tool_context=dict(KEY))
    assert [len(remembered(call) or []) for call in llm.calls] == [0, 1, 2, 2, 2]
    last = remembered(llm.calls[-1])
    assert last is not None
    assert [(t["user"], t["assistant"]) for t in last] == [("q3", "q3!"), ("q4", "q4!")]


async def test_strategy_none_keeps_memory_off() -> None:
    """ShortTermMemoryConfig(strategy="none") records and shows nothing, even with a full key."""
    planner, llm = memory_planner(ShortTermMemoryConfig(strategy="none"))
    for query in ("q1", "q2"):
        await planner.run(query, tool_context=dict(KEY))
    assert [remembered(call) for call in llm.calls] == [None, None]


# Each turn of these queries is about 1 100 characters, about 275 tokens (characters / 4): a cap of
# 600 tokens holds two turns but not three.
LONG = [f"{i}" * 500 for i in range(1, 6)]
CAPPED = MemoryBudget(full_zone_turns=10, total_max_tokens=600)


def tokens(turns: list[dict[str, Any]]) -> int:
    return len(json.dumps(turns, ensure_ascii=False)) // 4


async def test_truncate_oldest_drops_the_oldest_turns_past_the_token_cap() -> None:
    """Over total_max_tokens, the oldest turns go first: the newest that fit stay, in order."""
    planner, llm = memory_planner(ShortTermMemoryConfig(budget=CAPPED))
    for query in LONG:
        await planner.run(query, tool_context=dict(KEY))
    seen = [[t["user"] for t in remembered(call) or []] for call in llm.calls]
    assert seen == [[], LONG[:1], LONG[:2], LONG[1:3], LONG[2:4]]
    last = remembered(llm.calls[-1])
    assert last is not None
    assert 2 * 250 < tokens(last) <= CAPPED.total_max_tokens


async def test_overflow_policy_error_refuses_the_turn_and_keeps_the_earlier_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With overflow_policy="error" a turn over the cap is not stored; the run still answers."""
    config = ShortTermMemoryConfig(budget=MemoryBudget(10, 600, overflow_policy="error"))
    planner, llm = memory_planner(config)
    with caplog.at_level(logging.WARNING, logger="penguiflow_otel.planner"):
        results = [await planner.run(query, tool_context=dict(KEY)) for query in LONG[:4]]
    assert all(isinstance(r, PlannerFinish) and r.reason == "answer_complete" for r in results)
    seen = [[t["user"] for t in remembered(call) or []] for call in llm.calls]
    assert seen == [[], LONG[:1], LONG[:2], LONG[:2]]
    refused = [r for r in caplog.records if r.getMessage().startswith("short-term memory write failed")]
    assert len(refused) == 2  # the third and the fourth turn
    assert refused[0].exc_info is not None
    assert str(refused[0].exc_info[1]) == (
        "short-term memory is over total_max_tokens (overflow_policy='error')"
    )


async def test_the_in_memory_store_keeps_at_most_10000_keys_dropping_the_least_recently_used() -> None:
    """Past 10 000 keys the least recently used key goes; reading a key makes it recent."""
    planner, llm = memory_planner(ShortTermMemoryConfig())
    first, second = MemoryKey("t", "u", "first"), MemoryKey("t", "u", "second")
    await planner.run("hello", memory_key=first)
    await planner.run("hello", memory_key=second)
    # a run that ends no_path reads the memory (first becomes recent) and records no turn
    peek = await planner.run("peek", memory_key=first)
    assert isinstance(peek, PlannerFinish)
    assert peek.reason == "no_path"
    assert remembered(llm.calls[-1]) is not None
    store = planner._config.memory  # the built-in store: filling it through 10 000 runs would take seconds
    assert store is not None
    for i in range(9_999):  # with first and second: 10 001 keys, one too many
        await store.add_turn(MemoryKey("t", "u", f"filler-{i}"), {"user": "u", "assistant": "a"})
    await planner.run("peek", memory_key=first)
    assert [t["user"] for t in remembered(llm.calls[-1]) or []] == ["hello"]  # read recently: kept
    await planner.run("peek", memory_key=second)
    assert remembered(llm.calls[-1]) is None  # the least recently used key, and the only one dropped


class RecordingMemory:
    """A custom ShortTermMemory: keeps what it is given and serves its own context."""

    def __init__(self) -> None:
        self.turns: list[tuple[MemoryKey, dict[str, Any]]] = []
        self.reads: list[MemoryKey] = []

    async def add_turn(self, key: MemoryKey, turn: Mapping[str, Any]) -> None:
        self.turns.append((key, dict(turn)))

    async def get_llm_context(self, key: MemoryKey) -> Mapping[str, Any]:
        self.reads.append(key)
        return {"profile": f"{key.user_id} prefers short answers", "turns_so_far": len(self.turns)}

    async def flush(self) -> None:
        """Nothing buffered."""


async def test_a_custom_short_term_memory_is_read_and_written_by_the_planner() -> None:
    """A ShortTermMemory object is used as is: its context reaches the LLM and answered turns reach it."""
    memory = RecordingMemory()
    assert isinstance(memory, ShortTermMemory)
    llm = ScriptedLLM(
        [ScriptedLLM.call("slow", name="x"), ScriptedLLM.final("Paris"), ScriptedLLM.final("2")]
    )
    planner = ReactPlanner(llm_client=llm, nodes=[slow], short_term_memory=memory)
    explicit = MemoryKey("t9", "u9", "s9")
    await planner.run("capital of France?", memory_key=explicit, tool_context=dict(KEY))
    await planner.run("how many turns?", tool_context=dict(KEY))
    from_context = MemoryKey("t1", "u1", "s1")
    assert memory.reads == [explicit, from_context]  # the argument first, else tool_context keys
    assert memory.turns == [
        (
            explicit,
            {
                "user": "capital of France?",
                "assistant": "Paris",
                "trajectory_digest": {"tools_invoked": ["slow"], "step_count": 2},
            },
        ),
        (
            from_context,
            {
                "user": "how many turns?",
                "assistant": "2",
                "trajectory_digest": {"tools_invoked": [], "step_count": 1},
            },
        ),
    ]
    shown = [m for m in llm.calls[2].messages if m["role"] == "system"][1]
    assert json.loads(shown["content"].split("\n", 1)[1]) == {
        "profile": "u1 prefers short answers",
        "turns_so_far": 1,
    }
    unkeyed = await planner.run("no key")
    assert isinstance(unkeyed, PlannerFinish)
    assert len(memory.reads) == 2  # no key at all: memory is off for that call (fail closed)
