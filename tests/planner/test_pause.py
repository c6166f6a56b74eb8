"""Pause and resume: single-use tokens, the JSON record, the store seam and what the LLM sees."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow_otel.planner import (
    InMemoryPlannerStateStore,
    PauseTokenError,
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    ToolContext,
)
from penguiflow_otel.testing import ManualClock, ScriptedLLM, capture_telemetry


class Request(BaseModel):
    amount: int


class Approval(BaseModel):
    approved: bool


executions: list[int] = []


async def approve(args: Request, ctx: ToolContext) -> Approval:
    executions.append(args.amount)
    if args.amount > 100:
        await ctx.pause("approval_required", {"amount": args.amount})
    return Approval(approved=True)


async def bad_reason(args: Request, ctx: ToolContext) -> Approval:
    await ctx.pause("because", None)  # type: ignore[arg-type]


async def bad_payload(args: Request, ctx: ToolContext) -> Approval:
    await ctx.pause("await_input", {"when": object()})


def planner(llm: ScriptedLLM, **options: Any) -> ReactPlanner:
    return ReactPlanner(llm_client=llm, nodes=[approve, bad_reason, bad_payload], **options)


async def paused_run(p: ReactPlanner, **kwargs: Any) -> PlannerPause:
    result = await p.run("pay 500", **kwargs)
    assert isinstance(result, PlannerPause)
    return result


async def test_a_tool_pauses_and_resume_continues_without_re_running_it() -> None:
    """The pause returns a 32-hex token; resume shows user_input to the LLM and never re-runs the tool."""
    executions.clear()
    events: list[PlannerEvent] = []
    llm = ScriptedLLM([ScriptedLLM.call("approve", amount=500), ScriptedLLM.final("paid")])
    p = planner(llm, event_callback=events.append)
    pause = await paused_run(p)
    assert pause.reason == "approval_required"
    assert pause.payload == {"amount": 500}
    assert re.fullmatch(r"[0-9a-f]{32}", pause.resume_token)
    assert [e.event_type for e in events][-2:] == ["pause", "run_end"]
    assert all(pause.resume_token not in json.dumps(e.to_payload(), default=str) for e in events)

    result = await p.resume(pause.resume_token, "yes, approved")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert executions == [500]
    last_messages = llm.calls[1].messages
    assert json.loads(last_messages[-2]["content"]) == {
        "observation": {"pause": "approval_required", "payload": {"amount": 500}}
    }
    assert json.loads(last_messages[-1]["content"]) == {"resume_input": "yes, approved"}
    trajectory = result.metadata["trajectory"]
    assert [s["kind"] for s in trajectory["steps"]] == ["pause", "final"]
    assert [seg["outcome"] for seg in trajectory["segments"]] == ["paused", "ok"]
    assert trajectory["resume_inputs"][0]["after_step"] == 1
    assert events[-1].event_type == "run_end"
    assert "resume" in [e.event_type for e in events]


async def test_resume_without_user_input_adds_no_message() -> None:
    """resume(token) with no input adds no resume_input message."""
    llm = ScriptedLLM([ScriptedLLM.call("approve", amount=500), ScriptedLLM.final("paid")])
    p = planner(llm)
    pause = await paused_run(p)
    await p.resume(pause.resume_token)
    assert all("resume_input" not in m["content"] for m in llm.calls[1].messages)


async def test_a_reused_token_is_consumed_and_an_unknown_one_is_unknown() -> None:
    """Tokens are single use; an invented token is unknown."""
    llm = ScriptedLLM([ScriptedLLM.call("approve", amount=500), ScriptedLLM.final("paid")])
    p = planner(llm)
    pause = await paused_run(p)
    await p.resume(pause.resume_token)
    with pytest.raises(PauseTokenError) as reused:
        await p.resume(pause.resume_token)
    assert reused.value.reason == "consumed"
    assert "already used" in str(reused.value)
    with pytest.raises(PauseTokenError) as unknown:
        await p.resume("0" * 32)
    assert unknown.value.reason == "unknown"


async def test_an_expired_token_is_refused() -> None:
    """Past pause_ttl_s the token is expired, according to the planner's clock."""
    clock = ManualClock()
    store = InMemoryPlannerStateStore(clock=clock)
    llm = ScriptedLLM([ScriptedLLM.call("approve", amount=500)])
    p = planner(llm, pause_ttl_s=60, time_source=clock, state_store=store)
    pause = await paused_run(p)
    clock.advance(61)
    with pytest.raises(PauseTokenError) as expired:
        await p.resume(pause.resume_token)
    assert expired.value.reason == "expired"


async def test_concurrent_resumes_of_one_token_let_exactly_one_proceed() -> None:
    """Of two resumes of one token, one finishes and the other gets consumed."""
    llm = ScriptedLLM([ScriptedLLM.call("approve", amount=500), ScriptedLLM.final("paid")])
    p = planner(llm)
    pause = await paused_run(p)
    outcomes = await asyncio.gather(
        p.resume(pause.resume_token), p.resume(pause.resume_token), return_exceptions=True
    )
    assert sum(isinstance(o, PlannerFinish) for o in outcomes) == 1
    (error,) = [o for o in outcomes if isinstance(o, PauseTokenError)]
    assert error.reason == "consumed"


async def test_another_planner_instance_resumes_through_a_shared_store_without_a_session() -> None:
    """resume() needs only the token: a second instance with the same store continues the run."""
    store = InMemoryPlannerStateStore()
    first = planner(ScriptedLLM([ScriptedLLM.call("approve", amount=500)]), state_store=store)
    pause = await paused_run(first)
    second_llm = ScriptedLLM([ScriptedLLM.final("paid")])
    result = await planner(second_llm, state_store=store).resume(pause.resume_token, "ok")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert result.metadata["session_id"] is None


async def test_the_pause_record_is_plain_json_with_constraints_and_context() -> None:
    """The saved record is version 1 JSON; non-JSON tool_context entries are dropped by name."""
    records: dict[str, dict[str, Any]] = {}

    class Recording(InMemoryPlannerStateStore):
        async def save_planner_state(self, token: str, record: dict[str, Any]) -> None:
            records[token] = json.loads(json.dumps(record))
            await super().save_planner_state(token, record)

    p = planner(ScriptedLLM([ScriptedLLM.call("approve", amount=500)]), state_store=Recording(), hop_budget=5)
    pause = await paused_run(
        p, tool_context={"session_id": "s-1", "db": object()}, llm_context={"lang": "en"}
    )
    record = records[pause.resume_token]
    assert record["version"] == 1
    assert record["token"] == pause.resume_token
    assert record["expires_at"] - record["created_at"] == 86_400.0
    assert record["constraints"]["hops_used"] == 1
    assert record["constraints"]["hop_budget"] == 5
    assert record["tool_context"] == {"session_id": "s-1"}
    assert record["dropped_tool_context_keys"] == ["db"]
    assert record["llm_context"] == {"lang": "en"}
    assert record["session_id"] == "s-1"
    assert record["pending_tool_call_id"] == "call_0"
    assert record["paused_span"] is None  # telemetry is off here: there is no span to link to


async def test_resume_overlays_tool_context_and_restores_hops() -> None:
    """The stored tool_context is overlaid by the argument's keys; hops used so far still count."""
    seen: dict[str, Any] = {}

    async def look(args: Request, ctx: ToolContext) -> Approval:
        seen.update(ctx.tool_context)
        return Approval(approved=True)

    llm = ScriptedLLM(
        [ScriptedLLM.call("approve", amount=500), ScriptedLLM.call("look", amount=1), ScriptedLLM.final("ok")]
    )
    p = ReactPlanner(llm_client=llm, nodes=[approve, look], hop_budget=5)
    pause = await paused_run(p, tool_context={"user_id": "u1", "tenant_id": "t1"})
    result = await p.resume(pause.resume_token, tool_context={"user_id": "u2"})
    assert isinstance(result, PlannerFinish)
    assert (seen["user_id"], seen["tenant_id"]) == ("u2", "t1")
    assert result.metadata["constraints"]["hops_used"] == 2


@pytest.mark.parametrize(
    ("tool", "fragment"),
    [("bad_reason", "pause reason must be one of"), ("bad_payload", "JSON-serialisable")],
)
async def test_invalid_pause_calls_are_tool_errors(tool: str, fragment: str) -> None:
    """A bad reason or a non-JSON payload raises inside the tool and becomes a tool_error step."""
    p = planner(ScriptedLLM([ScriptedLLM.call(tool, amount=1), ScriptedLLM.final("ok")]))
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    assert result.metadata["steps"][0]["error_code"] == "tool_error"
    assert fragment in result.metadata["steps"][0]["error"]


async def test_pause_disabled_makes_ctx_pause_a_tool_error() -> None:
    """With pause_enabled=False, ctx.pause() fails inside the tool."""
    p = planner(
        ScriptedLLM([ScriptedLLM.call("approve", amount=500), ScriptedLLM.final("ok")]), pause_enabled=False
    )
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    assert "pause_enabled=False" in result.metadata["steps"][0]["error"]


async def test_a_failing_store_hands_out_no_token() -> None:
    """If saving the record fails the run ends no_path / pause_store_error, keeping the pause step."""

    class Broken(InMemoryPlannerStateStore):
        async def save_planner_state(self, token: str, record: dict[str, Any]) -> None:
            raise OSError("disk full")

    p = planner(ScriptedLLM([ScriptedLLM.call("approve", amount=500)]), state_store=Broken())
    with capture_telemetry() as telemetry:
        result = await p.run("q")
        (agent,) = telemetry.spans("invoke_agent")
    assert isinstance(result, PlannerFinish)
    assert (result.reason, result.payload["failure_reason"]) == ("no_path", "pause_store_error")
    assert [s["kind"] for s in result.metadata["steps"]] == ["pause"]
    assert agent.status.status_code.name == "ERROR"


async def test_an_unsupported_record_version_is_a_value_error() -> None:
    """Records of another version are refused."""

    class Future(InMemoryPlannerStateStore):
        async def load_planner_state(self, token: str) -> dict[str, Any] | None:
            return {"version": 2}

    with pytest.raises(ValueError, match="unsupported pause record version 2"):
        await planner(ScriptedLLM([]), state_store=Future()).resume("a" * 32)


async def test_the_lowest_paused_branch_pauses_the_run_and_others_are_superseded() -> None:
    """When several branches pause, the lowest index wins; the join is skipped with reason pause."""
    reply = ScriptedLLM.parallel(
        [("approve", {"amount": 5}), ("approve", {"amount": 300}), ("approve", {"amount": 200})],
        join={"node": "approve", "args": {"amount": 1}},
    )
    p = planner(ScriptedLLM([reply, ScriptedLLM.final("ok")]))
    pause = await paused_run(p)
    assert pause.payload == {"amount": 300}
    result = await p.resume(pause.resume_token)
    assert isinstance(result, PlannerFinish)
    observation = result.metadata["steps"][0]["observation"]
    assert observation["branches"][1]["pause"] == "approval_required"
    assert observation["branches"][2]["superseded"] is True
    assert observation["join"]["reason"] == "pause"


async def test_resume_links_to_the_paused_run_and_counts_metrics() -> None:
    """The resumed invoke_agent has a resume link to the paused one, and the pause is counted."""
    with capture_telemetry() as telemetry:
        p = planner(ScriptedLLM([ScriptedLLM.call("approve", amount=500), ScriptedLLM.final("ok")]))
        pause = await paused_run(p)
        await p.resume(pause.resume_token)
        first, second = telemetry.spans("invoke_agent")
        (pauses,) = telemetry.series("penguiflow_planner_pauses_total")
    assert first.attributes is not None
    assert first.attributes["penguiflow.outcome"] == "paused"
    assert first.status.status_code.name == "UNSET"
    assert [e.name for e in first.events] == ["penguiflow.planner.pause"]
    assert second.attributes is not None
    assert second.attributes["penguiflow.planner.resumed"] is True
    (link,) = second.links
    assert first.context is not None
    assert link.context.span_id == first.context.span_id
    assert link.attributes is not None
    assert link.attributes["penguiflow.link.type"] == "resume"
    assert pauses[0]["penguiflow_planner_pause_reason"] == "approval_required"
    assert pauses[1] == 1.0
    for span in telemetry.spans():
        assert pause.resume_token not in json.dumps(dict(span.attributes or {}), default=str)
