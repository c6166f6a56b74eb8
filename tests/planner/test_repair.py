"""Repair: a reply that does not parse gets a repair note; repeated garbage ends no_path, never an answer."""

from __future__ import annotations

import pytest
from weather_tools import get_weather

from penguiflow_otel.planner import PlannerEvent, PlannerFinish, ReactPlanner
from penguiflow_otel.testing import ScriptedLLM


async def test_a_malformed_reply_is_repaired_with_a_note_in_the_next_call() -> None:
    """After "not json" the second call carries a system repair note right after the system prompt."""
    events: list[PlannerEvent] = []
    llm = ScriptedLLM(["not json", ScriptedLLM.final("18 °C")])
    planner = ReactPlanner(llm_client=llm, nodes=[get_weather], event_callback=events.append)
    result = await planner.run("weather?")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert llm.remaining == 0
    first, second = llm.calls
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert [m["role"] for m in second.messages] == ["system", "system", "user"]
    note = second.messages[1]["content"]
    assert "was not valid JSON" in note
    assert '"next_node"' in note
    assert "final_response" in note
    assert "parallel" in note
    repair = next(e for e in events if e.event_type == "repair_attempt")
    assert repair.extra == {
        "attempt": 1,
        "error_type": "json_decode",
        "response_len": 8,
        "had_code_fence": False,
    }
    assert result.metadata["repair_attempts"] == 1
    invalid = result.metadata["trajectory"]["metadata"]["invalid_responses"]
    assert invalid[0]["raw"] == "not json"


async def test_a_schema_error_note_lists_the_field_errors() -> None:
    """A final_response without an answer is a schema_validation failure whose note names the field."""
    llm = ScriptedLLM(['{"next_node": "final_response", "args": {}}', ScriptedLLM.final("ok")])
    events: list[PlannerEvent] = []
    await ReactPlanner(llm_client=llm, nodes=[get_weather], event_callback=events.append).run("q")
    assert "did not match the action schema" in llm.calls[1].messages[1]["content"]
    assert "args.answer" in llm.calls[1].messages[1]["content"]
    assert (
        next(e for e in events if e.event_type == "repair_attempt").extra["error_type"] == "schema_validation"
    )


@pytest.mark.parametrize("attempts", [1, 3])
async def test_repeated_garbage_ends_no_path_and_never_answers_with_raw_text(attempts: int) -> None:
    """repair_attempts replies that never parse end no_path / invalid_llm_output with a raw preview."""
    garbage = "The weather in Lima is lovely! " * 40
    llm = ScriptedLLM([garbage] * attempts)
    planner = ReactPlanner(llm_client=llm, nodes=[get_weather], repair_attempts=attempts)
    result = await planner.run("weather?")
    assert isinstance(result, PlannerFinish)
    assert (result.reason, result.payload["failure_reason"]) == ("no_path", "invalid_llm_output")
    assert "raw_answer" not in result.payload
    assert result.payload["raw_preview"] == garbage[:500]
    assert result.payload["last_error"].startswith("invalid JSON")
    assert len(llm.calls) == attempts
    (step,) = result.metadata["steps"]
    assert (step["kind"], step["action"], step["error_code"]) == ("error", None, "invalid_llm_output")
    assert step["llm"]["calls"] == attempts
    assert len(result.metadata["trajectory"]["metadata"]["invalid_responses"]) == attempts


async def test_invalid_args_get_no_extra_llm_call() -> None:
    """Invalid tool args are an error step for the next decision, not a repair call."""
    llm = ScriptedLLM([ScriptedLLM.call("get_weather", town="x"), ScriptedLLM.final("ok")])
    result = await ReactPlanner(llm_client=llm, nodes=[get_weather]).run("q")
    assert isinstance(result, PlannerFinish)
    assert len(llm.calls) == 2
    assert result.metadata["repair_attempts"] == 0
