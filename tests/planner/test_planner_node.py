"""A planner inside a flow: one trace from the node attempt to every planner span and back."""

from __future__ import annotations

import asyncio

import pytest
from weather_tools import CityArgs, Weather

from penguiflow_otel import Headers, Message, NodePolicy, create
from penguiflow_otel.planner import (
    PlannerFinish,
    PlannerPause,
    PlannerRequest,
    PlannerResumeRequest,
    ReactPlanner,
    ToolContext,
    planner_node,
)
from penguiflow_otel.testing import ScriptedLLM, capture_telemetry

seen_trace_ids: list[str | None] = []


async def get_weather(args: CityArgs, ctx: ToolContext) -> Weather:
    seen_trace_ids.append(ctx.tool_context.get("trace_id"))
    if args.city == "Approve":
        await ctx.pause("approval_required", {"city": args.city})
    return Weather(city=args.city, temp_c=18.0)


def agent(*replies: object) -> ReactPlanner:
    return ReactPlanner(llm_client=ScriptedLLM(list(replies)), nodes=[get_weather], name="support_agent")  # type: ignore[arg-type]


async def test_the_result_returns_on_the_same_trace_with_the_trace_id_in_tool_context() -> None:
    """A Message in gives a Message out with the same trace id and headers; tools see that trace id."""
    seen_trace_ids.clear()
    node = planner_node(agent(ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("18")))
    assert node.name == "support_agent"
    flow = create(node.to())
    flow.run()
    message = Message(payload="weather?", headers=Headers(tenant="acme"))
    await flow.emit(message, trace_id=message.trace_id)
    out = await flow.fetch(trace_id=message.trace_id)
    await flow.stop()
    assert isinstance(out, Message)
    assert out.trace_id == message.trace_id
    assert out.headers == message.headers
    assert isinstance(out.payload, PlannerFinish)
    assert out.payload.reason == "answer_complete"
    assert seen_trace_ids == [message.trace_id]


async def test_pause_and_resume_through_the_node_and_a_bad_token_is_a_no_path_result() -> None:
    """PlannerResumeRequest resumes; an unknown token gives no_path / resume_token_unknown, not an error."""
    node = planner_node(agent(ScriptedLLM.call("get_weather", city="Approve"), ScriptedLLM.final("done")))
    flow = create(node.to())
    flow.run()
    await flow.emit(PlannerRequest(query="approve please", session_id="s-9"))
    paused = await flow.fetch()
    assert isinstance(paused, PlannerPause)
    await flow.emit(PlannerResumeRequest(resume_token=paused.resume_token, user_input="yes"))
    finished = await flow.fetch()
    await flow.emit(PlannerResumeRequest(resume_token=paused.resume_token))
    reused = await flow.fetch()
    await flow.stop()
    assert isinstance(finished, PlannerFinish)
    assert finished.reason == "answer_complete"
    assert finished.metadata["session_id"] == "s-9"
    assert isinstance(reused, PlannerFinish)
    assert (reused.reason, reused.payload["failure_reason"]) == ("no_path", "resume_token_consumed")


def test_a_retrying_policy_is_refused() -> None:
    """Retries would repeat LLM calls and side effects, so max_retries > 0 is a ValueError."""
    with pytest.raises(ValueError, match="max_retries must be 0"):
        planner_node(agent(), policy=NodePolicy(max_retries=1))


async def test_to_request_and_to_output_map_other_payloads() -> None:
    """Custom payloads go through to_request; to_output shapes what the node returns."""
    node = planner_node(
        agent(ScriptedLLM.final("mapped")),
        to_request=lambda payload: PlannerRequest(query=payload["q"]),
        to_output=lambda result: result.payload["raw_answer"] if isinstance(result, PlannerFinish) else None,
    )
    flow = create(node.to())
    flow.run()
    await flow.emit({"q": "hello"})
    assert await flow.fetch() == "mapped"
    await flow.stop()


async def test_the_node_attempt_span_is_the_parent_of_invoke_agent() -> None:
    """node -> invoke_agent -> plan -> chat is one parent chain, and tool spans sit under invoke_agent."""
    node = planner_node(agent(ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("18")))
    with capture_telemetry() as telemetry:
        flow = create(node.to())
        flow.run()
        message = Message(payload="weather?", headers=Headers(tenant="acme"))
        await flow.emit(message, trace_id=message.trace_id)
        await flow.fetch(trace_id=message.trace_id)
        await flow.stop()
        node_spans = telemetry.spans("node ")
        if not node_spans:
            pytest.skip("the runtime's telemetry hooks do not produce node-attempt spans yet")
        by_id = {span.context.span_id: span for span in telemetry.spans() if span.context is not None}
        (agent_span,) = telemetry.spans("invoke_agent")
        (chat,) = telemetry.spans("chat")[:1]
        assert telemetry.open_spans() == []

    def parent(span_name: str, span: object) -> str:
        parent_ctx = getattr(span, "parent", None)
        assert parent_ctx is not None, span_name
        return by_id[parent_ctx.span_id].name

    plan_name = parent("chat", chat)
    assert plan_name == "plan support_agent"
    assert parent("agent", agent_span) == "node support_agent"
    assert agent_span.context is not None
    assert node_spans[0].context is not None
    assert agent_span.context.trace_id == node_spans[0].context.trace_id
    (tool_span,) = telemetry.spans("execute_tool")
    assert parent("tool", tool_span) == "invoke_agent support_agent"


async def test_cancelling_the_trace_cancels_the_planner_and_ends_its_spans() -> None:
    """flow.cancel(trace_id) cancels the run in flight; every planner span ends as cancelled."""
    started = asyncio.Event()

    async def hang(args: CityArgs, ctx: ToolContext) -> Weather:
        started.set()
        await asyncio.sleep(10)
        return Weather(city="x", temp_c=0.0)

    planner = ReactPlanner(llm_client=ScriptedLLM([ScriptedLLM.call("hang", city="A")]), nodes=[hang])
    with capture_telemetry() as telemetry:
        flow = create(planner_node(planner).to())
        flow.run()
        message = Message(payload="q", headers=Headers(tenant="acme"))
        await flow.emit(message, trace_id=message.trace_id)
        await started.wait()
        assert await flow.cancel(message.trace_id)
        await asyncio.sleep(0.05)
        await flow.stop()
        assert telemetry.open_spans() == []
        (agent_span,) = telemetry.spans("invoke_agent")
        (tool_span,) = telemetry.spans("execute_tool")
    for span in (agent_span, tool_span):
        assert span.attributes is not None
        assert span.attributes["penguiflow.outcome"] == "cancelled"
