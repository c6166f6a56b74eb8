"""The trajectory: per-step timings and usage, the observation clamp, and the JSON round trip."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from penguiflow_otel.planner import (
    ObservationGuardrailConfig,
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    ToolContext,
    Trajectory,
)
from penguiflow_otel.testing import ScriptedLLM


class Args(BaseModel):
    size: int = 1


class Blob(BaseModel):
    text: str
    items: list[int]


async def big(args: Args, ctx: ToolContext) -> Blob:
    return Blob(text="x" * args.size, items=list(range(args.size)))


async def odd(args: Args, ctx: ToolContext) -> dict[str, Any]:
    return {"when": object()}


async def ask(args: Args, ctx: ToolContext) -> Blob:
    await ctx.pause("await_input", {"question": "which size?"})


def round_trip(data: dict[str, Any]) -> None:
    restored = Trajectory.from_serialised(json.loads(json.dumps(data)))
    assert restored.serialise() == data


async def test_finished_and_paused_trajectories_survive_a_json_round_trip() -> None:
    """serialise -> JSON -> from_serialised -> serialise is the identity, for finished and paused runs."""
    llm = ScriptedLLM(
        [
            ScriptedLLM.call("big", size=3),
            "garbage",
            ScriptedLLM.parallel([("big", {"size": 1}), ("odd", {})]),
            ScriptedLLM.call("nope"),
            ScriptedLLM.call("ask"),
            ScriptedLLM.final("done"),
        ]
    )
    planner = ReactPlanner(llm_client=llm, nodes=[big, odd, ask])
    paused = await planner.run("q", llm_context={"k": [1, 2]})
    assert isinstance(paused, PlannerPause)
    store_record = await planner.state_store.load_planner_state(paused.resume_token)
    assert store_record is not None
    round_trip(store_record["trajectory"])
    await planner.state_store.save_planner_state(paused.resume_token, store_record)
    result = await planner.resume(paused.resume_token, "large")
    assert isinstance(result, PlannerFinish)
    data = result.metadata["trajectory"]
    round_trip(data)
    json.dumps(result.metadata)  # metadata is JSON-safe as a whole
    kinds = [s["kind"] for s in data["steps"]]
    assert kinds == ["tool", "parallel", "error", "pause", "final"]
    unserialisable = data["steps"][1]["observation"]["branches"][1]["observation"]["when"]
    assert unserialisable["__unserialisable__"] == "object"


async def test_each_step_records_times_usage_and_attempts() -> None:
    """Steps carry start and end times, summed tokens, and one attempt per LLM call (repairs included)."""
    llm = ScriptedLLM(["garbage", ScriptedLLM.final("ok")], usage=(10, 2))
    result = await ReactPlanner(llm_client=llm, nodes=[big]).run("q")
    assert isinstance(result, PlannerFinish)
    (step,) = result.metadata["steps"]
    assert step["started_at"] <= step["ended_at"]
    assert (step["llm"]["calls"], step["llm"]["input_tokens"], step["llm"]["output_tokens"]) == (2, 20, 4)
    assert len(step["llm"]["attempts"]) == 2
    assert result.metadata["usage"] == {"input_tokens": 20, "output_tokens": 4, "llm_calls": 2}
    (segment,) = result.metadata["trajectory"]["segments"]
    assert segment["outcome"] == "ok"


async def test_unknown_usage_is_null_never_zero() -> None:
    """A client that reports no usage leaves token counts null."""

    async def reply(messages: list[dict[str, str]]) -> str:
        return json.dumps(ScriptedLLM.final("ok"))

    class NoUsage(ScriptedLLM):
        async def complete(self, **kwargs: Any) -> Any:
            return (await super().complete(**kwargs)).content

    result = await ReactPlanner(llm_client=NoUsage(reply), nodes=[big]).run("q")
    assert isinstance(result, PlannerFinish)
    assert result.metadata["steps"][0]["llm"]["input_tokens"] is None
    assert result.metadata["usage"]["input_tokens"] is None


async def test_large_observations_are_clamped_for_the_llm_only() -> None:
    """Long strings are cut for the LLM; the trajectory keeps the full observation; an event reports it."""
    events: list[PlannerEvent] = []
    llm = ScriptedLLM([ScriptedLLM.call("big", size=5_000), ScriptedLLM.final("ok")])
    guardrail = ObservationGuardrailConfig(
        max_observation_chars=2_000, max_field_chars=1_000, preview_length=100
    )
    planner = ReactPlanner(
        llm_client=llm, nodes=[big], observation_guardrail=guardrail, event_callback=events.append
    )
    result = await planner.run("q")
    assert isinstance(result, PlannerFinish)
    step = result.metadata["steps"][0]
    assert len(step["observation"]["text"]) == 5_000
    assert step["llm_observation"]["text"].endswith("…[truncated 4900 chars]")
    assert len(json.dumps(step["llm_observation"], separators=(",", ":"))) <= 2_000 or step[
        "llm_observation"
    ].get("_clamped")
    clamped = next(e for e in events if e.event_type == "observation_clamped")
    assert clamped.extra["original_size"] > 2_000
    assert clamped.extra["method"] in ("truncate_lists", "preview")
    sent = llm.calls[1].messages[-1]["content"]
    assert len(sent) < 2_100
