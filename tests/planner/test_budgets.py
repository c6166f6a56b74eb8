"""Budgets: max_iters, the hop budget (counting branches and joins) and the run deadline."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from penguiflow_otel.planner import PlannerEvent, PlannerFinish, ReactPlanner, ToolContext
from penguiflow_otel.testing import ManualClock, ScriptedLLM, capture_telemetry


class Args(BaseModel):
    city: str


class Out(BaseModel):
    temp_c: float


class Many(BaseModel):
    results: list[Out] = []


calls: list[str] = []


async def get_weather(args: Args, ctx: ToolContext) -> Out:
    calls.append(args.city)
    return Out(temp_c=18.0)


async def merge(args: Many, ctx: ToolContext) -> Many:
    return args


async def crawl(args: Args, ctx: ToolContext) -> Out:
    await asyncio.sleep(10)
    return Out(temp_c=0.0)


async def run(llm: ScriptedLLM, events: list[PlannerEvent] | None = None, **options: Any) -> PlannerFinish:
    planner = ReactPlanner(llm_client=llm, nodes=[get_weather, merge, crawl], **options)
    result = await planner.run("q", event_callback=events.append if events is not None else None)
    assert isinstance(result, PlannerFinish)
    return result


async def test_max_iters_ends_iteration_limit_counting_every_step() -> None:
    """Steps of every kind count; at max_iters the run ends no_path / iteration_limit."""
    events: list[PlannerEvent] = []
    llm = ScriptedLLM(
        [
            ScriptedLLM.call("get_weather", city="A"),
            ScriptedLLM.call("nope"),
            ScriptedLLM.call("get_weather", city="B"),
        ]
    )
    result = await run(llm, events, max_iters=3)
    assert (result.reason, result.payload["failure_reason"]) == ("no_path", "iteration_limit")
    assert result.metadata["step_count"] == 3
    exhausted = [e for e in events if e.event_type == "budget_exhausted"]
    assert [e.extra["kind"] for e in exhausted] == ["max_iters"]


async def test_a_plan_needing_more_hops_than_remain_is_rejected_whole() -> None:
    """With 1 hop left, a two-branch plan runs nothing and the LLM is told how many hops remain."""
    calls.clear()
    plan = ScriptedLLM.parallel([("get_weather", {"city": "A"}), ("get_weather", {"city": "B"})])
    llm = ScriptedLLM([plan, ScriptedLLM.call("get_weather", city="C"), ScriptedLLM.final("done")])
    result = await run(llm, hop_budget=1)
    assert result.reason == "answer_complete"
    assert calls == ["C"]
    rejected = result.metadata["steps"][0]
    assert rejected["error_code"] == "hop_budget"
    assert "needs 2 tool executions but only 1 remain" in rejected["error"]
    assert result.metadata["constraints"]["hops_used"] == 1


async def test_an_exhausted_hop_budget_allows_one_final_answer() -> None:
    """At zero hops a tool call is refused, budget_exhausted is emitted, and final_response still finishes."""
    events: list[PlannerEvent] = []
    llm = ScriptedLLM(
        [
            ScriptedLLM.call("get_weather", city="A"),
            ScriptedLLM.call("get_weather", city="B"),
            ScriptedLLM.final("done"),
        ]
    )
    result = await run(llm, events, hop_budget=1)
    assert result.reason == "answer_complete"
    assert result.metadata["constraints"]["hop_exhausted"] is True
    assert [e.extra["kind"] for e in events if e.event_type == "budget_exhausted"] == ["hop_budget"]


async def test_anything_but_a_final_answer_after_hop_exhaustion_ends_budget_exhausted() -> None:
    """The last decision after exhaustion must finish; anything else ends budget_exhausted / hop_budget."""
    llm = ScriptedLLM(
        [
            ScriptedLLM.call("get_weather", city="A"),
            ScriptedLLM.call("get_weather", city="B"),
            ScriptedLLM.call("get_weather", city="C"),
        ]
    )
    result = await run(llm, hop_budget=1)
    assert (result.reason, result.payload["failure_reason"]) == ("budget_exhausted", "hop_budget")
    assert [s["error_code"] for s in result.metadata["steps"]] == [None, "hop_budget", "hop_budget"]


async def test_max_iters_after_hop_exhaustion_reports_the_hop_budget() -> None:
    """If max_iters runs out once hops are exhausted, the finish is budget_exhausted / hop_budget."""
    llm = ScriptedLLM([ScriptedLLM.call("get_weather", city="A"), ScriptedLLM.call("get_weather", city="B")])
    result = await run(llm, hop_budget=1, max_iters=2)
    assert (result.reason, result.payload["failure_reason"]) == ("budget_exhausted", "hop_budget")


async def test_branches_and_the_join_each_cost_a_hop() -> None:
    """A two-branch plan with a join uses three hops."""
    plan = ScriptedLLM.parallel(
        [("get_weather", {"city": "A"}), ("get_weather", {"city": "B"})],
        join={"node": "merge", "args": {}, "inject": {"results": "$results"}},
    )
    result = await run(ScriptedLLM([plan, ScriptedLLM.final("ok")]), hop_budget=3)
    assert result.reason == "answer_complete"
    assert result.metadata["constraints"]["hops_used"] == 3


async def test_the_deadline_interrupts_a_tool_in_flight() -> None:
    """A tool still running at the deadline is cancelled; the run ends budget_exhausted / deadline."""
    with capture_telemetry() as telemetry:
        llm = ScriptedLLM([ScriptedLLM.call("crawl", city="A")])
        result = await run(llm, deadline_s=0.2)
        (span,) = telemetry.spans("execute_tool")
        assert span.attributes is not None
        assert span.attributes["error.type"] == "timeout"
        assert span.status.status_code.name == "ERROR"
        assert telemetry.open_spans() == []
    assert (result.reason, result.payload["failure_reason"]) == ("budget_exhausted", "deadline")
    assert result.metadata["steps"][0]["error_code"] == "deadline"
    assert result.metadata["constraints"]["deadline_triggered"] is True


async def test_the_deadline_interrupts_an_llm_call_in_flight() -> None:
    """A slow LLM call is cancelled at the deadline; the step records error_code deadline."""
    with capture_telemetry() as telemetry:
        llm = ScriptedLLM([ScriptedLLM.final("too late")], delay_s=5)
        result = await run(llm, deadline_s=0.1)
        (chat,) = telemetry.spans("chat")
        assert chat.attributes is not None
        assert chat.attributes["error.type"] == "timeout"
    assert (result.reason, result.payload["failure_reason"]) == ("budget_exhausted", "deadline")
    assert result.metadata["steps"][0]["error_code"] == "deadline"


async def test_a_deadline_already_passed_finishes_before_the_next_step() -> None:
    """The deadline is checked at the top of each iteration, with the planner's time source."""
    clock = ManualClock()

    async def ages(args: Args, ctx: ToolContext) -> Out:
        clock.advance(10)
        return Out(temp_c=1.0)

    llm = ScriptedLLM([ScriptedLLM.call("ages", city="A")])
    planner = ReactPlanner(llm_client=llm, nodes=[ages], deadline_s=5, time_source=clock)
    result = await planner.run("q")
    assert isinstance(result, PlannerFinish)
    assert (result.reason, result.payload["failure_reason"]) == ("budget_exhausted", "deadline")
    assert len(llm.calls) == 1


async def test_tools_see_the_time_left_before_the_deadline() -> None:
    """ctx.deadline_remaining_s tells a tool how long the run may still take."""
    seen: list[float | None] = []

    async def measure(args: Args, ctx: ToolContext) -> Out:
        seen.append(ctx.deadline_remaining_s)
        return Out(temp_c=1.0)

    llm = ScriptedLLM([ScriptedLLM.call("measure", city="A"), ScriptedLLM.final("ok")])
    await ReactPlanner(llm_client=llm, nodes=[measure], deadline_s=30).run("q")
    assert seen[0] is not None
    assert 0 < seen[0] <= 30
