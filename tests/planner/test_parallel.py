"""Parallel plans: concurrent branches, injection into the join, failure policy, setup errors, spans."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel
from weather_tools import CityArgs, Weather

from penguiflow_otel.planner import PlannerFinish, ReactPlanner, ToolContext
from penguiflow_otel.testing import ScriptedLLM, capture_telemetry


class JoinArgs(BaseModel):
    label: str = ""
    results: list[Any] = []
    branches: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    ok: int = -1
    failed: int = -1
    expect: int = -1


class Inspect(BaseModel):
    received: dict[str, Any]


async def get_weather(args: CityArgs, ctx: ToolContext) -> Weather:
    if args.city == "Oslo":
        raise ValueError("station offline")
    await asyncio.sleep(0.01)
    return Weather(city=args.city, temp_c=float(len(args.city)))


async def inspect_join(args: JoinArgs, ctx: ToolContext) -> Inspect:
    return Inspect(received=args.model_dump())


ALL_SOURCES = {
    "results": "$results",
    "branches": "$branches",
    "failures": "$failures",
    "ok": "$success_count",
    "failed": "$failure_count",
    "expect": "$expect",
}


def plan(*cities: str, join: dict[str, Any] | None = None) -> dict[str, Any]:
    return ScriptedLLM.parallel([("get_weather", {"city": c}) for c in cities], join=join)


async def run_plan(reply: dict[str, Any], **options: Any) -> PlannerFinish:
    llm = ScriptedLLM([reply, ScriptedLLM.final("done")])
    result = await ReactPlanner(llm_client=llm, nodes=[get_weather, inspect_join], **options).run("compare")
    assert isinstance(result, PlannerFinish)
    return result


async def test_every_injection_source_reaches_the_join() -> None:
    """$results, $branches, $failures, the counts and $expect are merged over the join's args."""
    join = {
        "node": "inspect_join",
        "args": {"label": "kept", "ok": 99},
        "inject": ALL_SOURCES,
        "on_failure": "run",
    }
    result = await run_plan(plan("Lima", "Oslo", "Quito", join=join))
    observation = result.metadata["steps"][0]["observation"]
    received = observation["join"]["observation"]["received"]
    assert received["label"] == "kept"
    assert received["results"] == [{"city": "Lima", "temp_c": 4.0}, {"city": "Quito", "temp_c": 5.0}]
    assert (received["ok"], received["failed"], received["expect"]) == (2, 1, 3)
    assert [b["tool_call_id"] for b in received["branches"]] == ["call_0_0", "call_0_1", "call_0_2"]
    (failure,) = received["failures"]
    assert failure["node"] == "get_weather"
    assert failure["failure"]["error_code"] == "tool_error"
    assert observation["stats"] == {"success": 2, "failed": 1}
    assert observation["join"]["tool_call_id"] == "call_0_join"


async def test_a_failing_branch_skips_the_join_by_default_without_stopping_the_others() -> None:
    """With on_failure skip, one failed branch skips the join; the other branches still finish."""
    join = {"node": "inspect_join", "args": {}, "inject": {"results": "$results"}}
    result = await run_plan(plan("Lima", "Oslo", join=join))
    observation = result.metadata["steps"][0]["observation"]
    assert observation["join"] == {"node": "inspect_join", "status": "skipped", "reason": "branch_failures"}
    assert observation["branches"][0]["observation"] == {"city": "Lima", "temp_c": 4.0}
    assert "station offline" in observation["branches"][1]["error"]
    assert result.reason == "answer_complete"
    assert result.metadata["steps"][0]["tool_call_ids"] == ["call_0_0", "call_0_1"]


async def test_on_failure_run_runs_the_join_despite_failures() -> None:
    """With on_failure run, the join runs and sees the failures."""
    join = {"node": "inspect_join", "args": {}, "inject": {"failed": "$failure_count"}, "on_failure": "run"}
    result = await run_plan(plan("Lima", "Oslo", join=join))
    joined = result.metadata["steps"][0]["observation"]["join"]
    assert joined["status"] == "ok"
    assert joined["observation"]["received"]["failed"] == 1


async def test_max_parallel_one_serialises_the_branches() -> None:
    """With max_parallel=1 no two branches overlap."""
    active = 0
    peak = 0

    async def probe(args: CityArgs, ctx: ToolContext) -> Weather:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return Weather(city=args.city, temp_c=0.0)

    reply = ScriptedLLM.parallel([("probe", {"city": c}) for c in "ABCD"])
    for limit, expected in ((1, 1), (10, 4)):
        peak = 0
        llm = ScriptedLLM([reply, ScriptedLLM.final("ok")])
        await ReactPlanner(llm_client=llm, nodes=[probe], max_parallel=limit).run("q")
        assert peak == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"steps": []}, "at least one step"),
        ({"steps": [{"node": "final_response", "args": {}}]}, "is an opcode"),
        ({"steps": [{"node": "teleport", "args": {}}]}, "unknown tool 'teleport'"),
        ({"steps": [{"node": "get_weather", "args": {"town": "x"}}]}, "steps.0.args.city: Field required"),
        (
            {
                "steps": [{"node": "get_weather", "args": {"city": "A"}}],
                "join": {"node": "inspect_join", "inject": {"x": "$everything"}},
            },
            "unknown source '$everything'",
        ),
        (
            {
                "steps": [{"node": "get_weather", "args": {"city": "A"}}],
                "join": {"node": "inspect_join", "args": {"ok": "many"}},
            },
            "join.args.ok",
        ),
        ({"steps": "not a list"}, "steps"),
    ],
)
async def test_a_malformed_parallel_plan_is_one_error_step_and_nothing_runs(
    args: dict[str, Any], fragment: str
) -> None:
    """All setup problems go into one parallel_setup error step; no tool span starts."""
    with capture_telemetry() as telemetry:
        result = await run_plan({"next_node": "parallel", "args": args})
        assert telemetry.spans("execute_tool") == []
    step = result.metadata["steps"][0]
    assert step["error_code"] == "parallel_setup"
    assert fragment in step["error"]
    assert result.metadata["constraints"]["hops_used"] == 0


async def test_too_many_branches_are_refused() -> None:
    """More than absolute_max_parallel steps is a setup error."""
    result = await run_plan(plan("A", "B", "C"), absolute_max_parallel=2)
    assert "at most 2 may run in parallel" in result.metadata["steps"][0]["error"]


async def test_a_single_branch_is_a_valid_plan() -> None:
    """One branch runs like any other parallel plan."""
    result = await run_plan(plan("Lima"))
    assert result.metadata["steps"][0]["observation"]["stats"] == {"success": 1, "failed": 0}


async def test_three_branches_and_a_join_are_four_sibling_tool_spans_with_distinct_call_ids() -> None:
    """Branch and join spans are siblings of plan under invoke_agent, each with its own call id."""
    join = {"node": "inspect_join", "args": {}, "inject": {"results": "$results"}}
    with capture_telemetry() as telemetry:
        await run_plan(plan("Lima", "Quito", "Bogota", join=join))
        (agent,) = telemetry.spans("invoke_agent")
        tools = telemetry.spans("execute_tool")
        plans = telemetry.spans("plan")
        assert telemetry.open_spans() == []
    assert len(tools) == 4
    assert agent.context is not None
    agent_id = agent.context.span_id
    assert {span.parent.span_id for span in [*tools, *plans] if span.parent is not None} == {agent_id}
    ids = [str(span.attributes["gen_ai.tool.call.id"]) for span in tools if span.attributes is not None]
    assert sorted(ids) == ["call_0_0", "call_0_1", "call_0_2", "call_0_join"]
    indexes = sorted(
        int(str(span.attributes["penguiflow.planner.parallel.index"]))
        for span in tools
        if span.attributes is not None and "penguiflow.planner.parallel.index" in span.attributes
    )
    assert indexes == [0, 1, 2]
    join_span = next(
        s for s in tools if s.attributes is not None and s.attributes.get("penguiflow.planner.parallel.join")
    )
    assert join_span.name == "execute_tool inspect_join"


async def test_cancelling_the_run_mid_call_ends_every_branch_span_as_cancelled() -> None:
    """Cancelling the caller cancels every branch; all spans end, outcome cancelled, run_end emitted."""
    started = asyncio.Event()

    async def hang(args: CityArgs, ctx: ToolContext) -> Weather:
        started.set()
        await asyncio.sleep(10)
        return Weather(city="x", temp_c=0.0)

    events: list[str] = []
    reply = ScriptedLLM.parallel([("hang", {"city": c}) for c in "ABC"])
    planner = ReactPlanner(
        llm_client=ScriptedLLM([reply]), nodes=[hang], event_callback=lambda e: events.append(e.event_type)
    )
    with capture_telemetry() as telemetry:
        task = asyncio.create_task(planner.run("q"))
        await started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert telemetry.open_spans() == []
        tools = telemetry.spans("execute_tool")
        (agent,) = telemetry.spans("invoke_agent")
    assert len(tools) == 3
    for span in [*tools, agent]:
        assert span.attributes is not None
        assert span.attributes["penguiflow.outcome"] == "cancelled"
        assert span.status.status_code.name == "UNSET"
    assert events[-1] == "run_end"
