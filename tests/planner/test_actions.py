"""Action parsing, tolerant and deterministic, seen through ``ReactPlanner.step()``."""

from __future__ import annotations

import json

import pytest
from weather_tools import get_weather

from penguiflow_otel.planner import (
    InvalidLLMOutputError,
    PlannerAction,
    ReactPlanner,
    Trajectory,
)
from penguiflow_otel.testing import ScriptedLLM


def planner_for(*replies: object, repair_attempts: int = 1, json_schema_mode: bool = True) -> ReactPlanner:
    return ReactPlanner(
        llm_client=ScriptedLLM(list(replies)),  # type: ignore[arg-type]
        nodes=[get_weather],
        repair_attempts=repair_attempts,
        json_schema_mode=json_schema_mode,
    )


async def decide(reply: str) -> PlannerAction:
    return await planner_for(reply).step(Trajectory(query="q"))


async def test_plain_json_is_parsed() -> None:
    """Text starting with ``{`` is read as JSON; ``thought`` is kept."""
    action = await decide('  {"next_node": "get_weather", "args": {"city": "Lima"}, "thought": "t"}  ')
    assert (action.next_node, action.args, action.thought) == ("get_weather", {"city": "Lima"}, "t")


async def test_the_json_fenced_block_is_preferred() -> None:
    """With several fenced blocks, the ```json one wins."""
    text = (
        'Plan:\n```\n{"next_node": "other"}\n```\nthen\n'
        '```json\n{"next_node": "get_weather", "args": {"city": "Q"}}\n```'
    )
    action = await decide(text)
    assert action.next_node == "get_weather"


async def test_the_best_scored_embedded_object_is_chosen() -> None:
    """Among embedded objects, an action-shaped one beats others; ties go to the first."""
    text = (
        'I think {"note": 1} so {"next_node": "get_weather", "args": {"city": "A"}} '
        'or {"next_node": "x", "args": {}}'
    )
    action = await decide(text)
    assert action.args == {"city": "A"}


@pytest.mark.parametrize(
    "legacy",
    [
        {"next_node": None, "args": {"raw_answer": "legacy answer"}},
        {"next_node": None, "args": {"answer": "legacy answer"}},
        {"answer": "legacy answer"},
    ],
)
async def test_legacy_answer_shapes_read_as_final_response(legacy: dict[str, object]) -> None:
    """Upstream's null next_node with an answer, and a bare answer, are final responses."""
    action = await decide(json.dumps(legacy))
    assert action.next_node == "final_response"
    assert action.args["answer"] == "legacy answer"


async def test_a_legacy_plan_reads_as_a_parallel_action() -> None:
    """The legacy ``plan``/``join`` shape is accepted as input and becomes ``parallel``."""
    action = await decide(
        json.dumps({"thought": "t", "plan": [{"node": "get_weather", "args": {"city": "A"}}]})
    )
    assert action.next_node == "parallel"
    assert action.args["steps"] == [{"node": "get_weather", "args": {"city": "A"}}]


@pytest.mark.parametrize(
    "garbage",
    [
        "not json at all",
        '{"next_node": "get_weather", "args": {"city": "A"}',
        "[1, 2, 3]",
        '{"args": {}}',
        '{"next_node": "final_response", "args": {"answer": "   "}}',
        '{"next_node": "final_response", "args": {"answer": "x", "confidence": 3}}',
    ],
)
async def test_unparseable_replies_raise_invalid_llm_output_from_step(garbage: str) -> None:
    """A JSON error, a non-action, an empty answer or an invalid field is a parse failure."""
    with pytest.raises(InvalidLLMOutputError) as info:
        await decide(garbage)
    assert info.value.raw_preview == garbage[:500]


async def test_json_schema_mode_sends_the_two_field_action_schema() -> None:
    """With json_schema_mode the response_format names planner_action with strict false."""
    llm = ScriptedLLM([ScriptedLLM.final("ok")])
    await ReactPlanner(llm_client=llm, nodes=[get_weather]).step(Trajectory(query="q"))
    response_format = llm.calls[0].response_format
    assert response_format is not None
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]
    assert (schema["name"], schema["strict"]) == ("planner_action", False)
    assert schema["schema"]["required"] == ["next_node", "args"]
    assert schema["schema"]["additionalProperties"] is False


async def test_json_object_mode_and_the_prompt_mentions_json() -> None:
    """Without json_schema_mode the format is json_object and the system prompt says JSON."""
    llm = ScriptedLLM([ScriptedLLM.final("ok")])
    await ReactPlanner(llm_client=llm, nodes=[get_weather], json_schema_mode=False).step(
        Trajectory(query="q")
    )
    assert llm.calls[0].response_format == {"type": "json_object"}
    system = llm.calls[0].messages[0]
    assert system["role"] == "system"
    assert "JSON" in system["content"]
    assert '"name": "get_weather"' in system["content"]


async def test_system_prompt_extra_is_appended_to_the_system_prompt_of_every_call() -> None:
    """The extra text closes the one system prompt (after the tool records) on each LLM call."""
    extra = "House rule: always quote temperatures in kelvin."
    llm = ScriptedLLM([ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("291 K")])
    await ReactPlanner(llm_client=llm, nodes=[get_weather], system_prompt_extra=extra).run("weather?")
    plain = ScriptedLLM([ScriptedLLM.final("ok")])
    await ReactPlanner(llm_client=plain, nodes=[get_weather]).run("weather?")
    base = plain.calls[0].messages[0]["content"]
    assert extra not in base
    assert len(llm.calls) == 2
    for call in llm.calls:
        systems = [m["content"] for m in call.messages if m["role"] == "system"]
        assert len(systems) == 1
        assert systems[0].startswith(base)
        assert systems[0].endswith(extra)
        assert systems[0].count(extra) == 1


def test_thought_is_not_in_the_schema_sent_to_the_llm() -> None:
    """PlannerAction's JSON schema has next_node and args only."""
    assert set(PlannerAction.model_json_schema()["properties"]) == {"next_node", "args"}
