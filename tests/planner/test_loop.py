"""The planner loop: tool steps, error observations, finish payloads, events and caller errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel
from weather_tools import CityArgs, Weather

from penguiflow_otel import Node, NodePolicy
from penguiflow_otel.catalog import tool
from penguiflow_otel.llm import LLMAuthError, LLMRateLimitError
from penguiflow_otel.planner import PlannerEvent, PlannerFinish, ReactPlanner, ToolContext
from penguiflow_otel.testing import ScriptedLLM


class Remedied(Exception):
    suggestion = "try a capital city"


@tool(desc="Current weather", side_effects="read")
async def get_weather(args: CityArgs, ctx: ToolContext) -> Weather:
    if args.city == "Atlantis":
        raise Remedied("no such city")
    return Weather(city=args.city, temp_c=18.0)


@tool(desc="Returns nonsense")
async def broken(args: CityArgs, ctx: ToolContext) -> Weather:
    return {"city": args.city}  # type: ignore[return-value]


@tool(desc="Slow", timeout_s=0.05)
async def slow(args: CityArgs, ctx: ToolContext) -> Weather:
    await asyncio.sleep(5)
    return Weather(city=args.city, temp_c=0.0)


def make(*replies: Any, **options: Any) -> tuple[ReactPlanner, ScriptedLLM]:
    llm = ScriptedLLM(list(replies))
    return ReactPlanner(llm_client=llm, nodes=[get_weather, broken, slow], **options), llm


async def finished(planner: ReactPlanner, query: str = "weather?", **kwargs: Any) -> PlannerFinish:
    result = await planner.run(query, **kwargs)
    assert isinstance(result, PlannerFinish)
    return result


async def test_a_tool_step_then_a_final_answer() -> None:
    """The LLM calls a tool, sees its observation and finishes with a FinalPayload."""
    planner, llm = make(
        ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("18 °C in Lima.", confidence=0.9)
    )
    result = await finished(planner)
    assert result.reason == "answer_complete"
    assert result.payload["raw_answer"] == "18 °C in Lima."
    assert result.payload["confidence"] == 0.9
    assert llm.remaining == 0
    steps = result.metadata["steps"]
    assert [s["kind"] for s in steps] == ["tool", "final"]
    assert steps[0]["observation"] == {"city": "Lima", "temp_c": 18.0}
    assert steps[0]["tool_call_id"] == "call_0"


async def test_final_payload_keeps_unknown_keys_in_extra() -> None:
    """Keys of final_response args that FinalPayload does not know go to ``extra``."""
    planner, _ = make(ScriptedLLM.final("ok", route="billing", mood="calm"))
    result = await finished(planner)
    assert result.payload["route"] == "billing"
    assert result.payload["extra"] == {"mood": "calm"}


async def test_messages_replay_each_step_as_assistant_action_and_user_observation() -> None:
    """The second call sees system, query, the action (sorted compact JSON) and the observation."""
    planner, llm = make(ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("done"))
    await finished(planner, llm_context={"locale": "es"})
    messages = llm.calls[1].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert json.loads(messages[1]["content"]) == {"query": "weather?", "context": {"locale": "es"}}
    assert messages[2]["content"] == '{"args":{"city":"Lima"},"next_node":"get_weather"}'
    assert json.loads(messages[3]["content"]) == {"observation": {"city": "Lima", "temp_c": 18.0}}


async def test_an_unknown_tool_is_an_error_step_listing_valid_tools() -> None:
    """An unknown name costs a step, no hop, and the LLM sees the valid names."""
    planner, llm = make(ScriptedLLM.call("teleport", to="Mars"), ScriptedLLM.final("sorry"), hop_budget=0)
    result = await finished(planner)
    step = result.metadata["steps"][0]
    assert step["error_code"] == "unknown_tool"
    assert "get_weather" in step["error"]
    assert result.metadata["constraints"]["hops_used"] == 0
    assert json.loads(llm.calls[1].messages[-1]["content"])["failure"]["error_code"] == "unknown_tool"


async def test_invalid_args_give_field_errors_and_repeated_failures_end_no_path() -> None:
    """Each invalid-args attempt is a step; at the limit the run ends no_path / invalid_arguments."""
    bad = ScriptedLLM.call("get_weather", town="Lima")
    planner, _ = make(bad, bad, max_consecutive_arg_failures=2)
    result = await finished(planner)
    assert (result.reason, result.payload["failure_reason"]) == ("no_path", "invalid_arguments")
    assert result.payload["tool"] == "get_weather"
    steps = result.metadata["steps"]
    assert [s["error_code"] for s in steps] == ["invalid_args", "invalid_args"]
    assert {"loc": "city", "msg": "Field required"} in steps[0]["failure"]["details"]
    assert result.metadata["validation_failures_count"] == 2


async def test_a_raising_tool_is_an_observation_with_its_suggestion() -> None:
    """A tool exception becomes a tool_error step; the LLM re-plans."""
    planner, _llm = make(ScriptedLLM.call("get_weather", city="Atlantis"), ScriptedLLM.final("unknown city"))
    result = await finished(planner)
    failure = result.metadata["steps"][0]["failure"]
    assert failure["error_code"] == "tool_error"
    assert failure["suggestion"] == "try a capital city"
    assert "Remedied" in failure["message"]
    assert result.reason == "answer_complete"


async def test_a_tool_timeout_and_invalid_output_are_error_steps() -> None:
    """A per-tool timeout gives tool_timeout; output not matching out_model gives invalid_output."""
    planner, _ = make(
        ScriptedLLM.call("slow", city="A"), ScriptedLLM.call("broken", city="B"), ScriptedLLM.final("gave up")
    )
    result = await finished(planner)
    codes = [s["error_code"] for s in result.metadata["steps"]]
    assert codes == ["tool_timeout", "invalid_output", None]
    assert result.metadata["steps"][1]["failure"]["details"][0]["loc"] == "temp_c"


async def test_the_default_tool_timeout_applies_to_tools_without_their_own() -> None:
    """tool_timeout_s bounds a tool that sets no timeout."""

    async def hangs(args: CityArgs, ctx: ToolContext) -> Weather:
        await asyncio.sleep(5)
        return Weather(city="x", temp_c=0.0)

    llm = ScriptedLLM([ScriptedLLM.call("hangs", city="A"), ScriptedLLM.final("x")])
    planner = ReactPlanner(llm_client=llm, nodes=[hangs], tool_timeout_s=0.05)
    result = await finished(planner)
    assert result.metadata["steps"][0]["error_code"] == "tool_timeout"


LIMIT_S = 0.05


async def work_past_the_limit(city: str) -> Weather:
    """Works for four planner tool timeouts; reports how long it ran."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(4 * LIMIT_S)
    return Weather(city=city, temp_c=loop.time() - started)


@tool(desc="Slow and unbounded", timeout_s=None)
async def unbounded(args: CityArgs, ctx: ToolContext) -> Weather:
    return await work_past_the_limit(args.city)


async def outlast_the_limit(args: CityArgs, ctx: ToolContext) -> Weather:
    return await work_past_the_limit(args.city)


@pytest.mark.parametrize("as_node", [False, True], ids=["function", "flow_node"])
async def test_a_tool_with_timeout_none_outlives_the_planner_tool_timeout(as_node: bool) -> None:
    """@tool(timeout_s=None) means no per-tool limit: not tool_timeout_s, not a NodePolicy timeout."""
    item: object = (
        Node(unbounded, name="unbounded", policy=NodePolicy(timeout_s=LIMIT_S)) if as_node else unbounded
    )
    llm = ScriptedLLM(
        [
            ScriptedLLM.call("unbounded", city="A"),
            ScriptedLLM.call("outlast_the_limit", city="B"),
            ScriptedLLM.final("done"),
        ]
    )
    planner = ReactPlanner(llm_client=llm, nodes=[item, outlast_the_limit], tool_timeout_s=LIMIT_S)
    result = await finished(planner)
    unlimited, limited = result.metadata["steps"][:2]
    assert (unlimited["kind"], unlimited["error_code"]) == ("tool", None)
    assert unlimited["observation"]["temp_c"] > 2 * LIMIT_S
    # the same body without timeout_s=None is cut at the planner's tool_timeout_s
    assert limited["error_code"] == "tool_timeout"
    assert limited["error"] == f"tool 'outlast_the_limit' timed out after {LIMIT_S}s"


async def test_events_follow_the_documented_order() -> None:
    """run_start, step groups with LLM and tool pairs, finish, and run_end last."""
    events: list[PlannerEvent] = []
    planner, _ = make(
        ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("done"), event_callback=events.append
    )
    await finished(planner)
    assert [e.event_type for e in events] == [
        "run_start",
        "step_start", "llm_call_start", "llm_call_end", "tool_call_start", "tool_call_end", "step_end",
        "step_start", "llm_call_start", "llm_call_end", "step_end",
        "finish", "run_end",
    ]  # fmt: skip
    tool_end = next(e for e in events if e.event_type == "tool_call_end")
    assert tool_end.tool_call_id == "call_0"
    assert tool_end.to_payload()["result"] == {"city": "Lima", "temp_c": 18.0}
    assert all(e.run_id == events[0].run_id for e in events)


async def test_a_raising_event_callback_is_ignored() -> None:
    """Callback failures never break the run."""

    def explode(event: PlannerEvent) -> None:
        raise RuntimeError("callback bug")

    planner, _ = make(ScriptedLLM.final("fine"), event_callback=explode)
    result = await finished(planner)
    assert result.reason == "answer_complete"


async def test_a_per_call_event_callback_runs_in_addition_to_the_constructor_one() -> None:
    """Both callbacks see every event."""
    first: list[str] = []
    second: list[str] = []
    planner, _ = make(ScriptedLLM.final("fine"), event_callback=lambda e: first.append(e.event_type))
    await finished(planner, event_callback=lambda e: second.append(e.event_type))
    assert first == second
    assert first[-1] == "run_end"


async def test_retryable_llm_failure_ends_llm_unavailable() -> None:
    """A retryable client error (after the client's retries) ends no_path / llm_unavailable."""
    planner, _ = make(LLMRateLimitError("slow down", status_code=429))
    result = await finished(planner)
    assert (result.reason, result.payload["failure_reason"]) == ("no_path", "llm_unavailable")
    assert "LLMRateLimitError (HTTP 429)" in result.payload["last_error"]
    step = result.metadata["steps"][0]
    assert (step["action"], step["error_code"]) == (None, "llm_error")
    assert step["llm"]["attempts"][0]["error_type"] == "LLMRateLimitError"


async def test_non_retryable_llm_failure_ends_llm_error() -> None:
    """Auth errors and plain exceptions from user clients end no_path / llm_error."""
    planner, _ = make(LLMAuthError("bad key", status_code=401))
    assert (await finished(planner)).payload["failure_reason"] == "llm_error"
    planner, _ = make(RuntimeError("client bug"))
    assert (await finished(planner)).payload["failure_reason"] == "llm_error"


async def test_an_exhausted_script_ends_llm_error() -> None:
    """Running out of scripted replies is reported as llm_error naming ScriptExhaustedError."""
    planner, _ = make(ScriptedLLM.call("get_weather", city="Lima"))
    result = await finished(planner)
    assert result.payload["failure_reason"] == "llm_error"
    assert "ScriptExhaustedError" in result.payload["last_error"]


async def test_non_json_llm_context_is_a_type_error_before_anything_starts() -> None:
    """llm_context must be JSON-serialisable; nothing is called when it is not."""
    planner, llm = make(ScriptedLLM.final("x"))
    with pytest.raises(TypeError, match="llm_context must be JSON-serialisable"):
        await planner.run("q", llm_context={"when": object()})
    assert llm.calls == []


def test_construction_errors_are_raised_before_any_run() -> None:
    """Neither llm nor llm_client, or neither catalog nor nodes, is a ValueError."""
    with pytest.raises(ValueError, match="llm_client"):
        ReactPlanner(nodes=[get_weather])
    with pytest.raises(ValueError, match=r"catalog= .* or nodes="):
        ReactPlanner(llm_client=ScriptedLLM([]))
    with pytest.raises(ValueError, match="name must match"):
        ReactPlanner(llm_client=ScriptedLLM([]), nodes=[get_weather], name="bad name!")


@pytest.mark.parametrize("option", ["skills", "planning_hints", "token_budget", "reflection_config"])
def test_out_of_scope_upstream_parameters_are_type_errors(option: str) -> None:
    """Parameters of features not in version 1 are refused instead of silently ignored."""
    options: dict[str, Any] = {option: None}
    with pytest.raises(TypeError):
        ReactPlanner(llm_client=ScriptedLLM([]), nodes=[get_weather], **options)


async def test_tool_context_reaches_tools_but_never_the_llm() -> None:
    """tool_context is given to tools (and is shared), while the LLM sees only llm_context."""
    seen: dict[str, Any] = {}

    async def whoami(args: CityArgs, ctx: ToolContext) -> Weather:
        seen.update(ctx.tool_context)
        ctx.tool_context["visited"] = True
        return Weather(city=args.city, temp_c=0.0)

    llm = ScriptedLLM([ScriptedLLM.call("whoami", city="A"), ScriptedLLM.final("ok")])
    tools = {"user_id": "secret-user-7", "db": object()}
    await finished(ReactPlanner(llm_client=llm, nodes=[whoami]), tool_context=tools)
    assert seen["user_id"] == "secret-user-7"
    assert tools["visited"] is True
    assert all("secret-user-7" not in m["content"] for call in llm.calls for m in call.messages)


async def test_a_stream_chunk_from_a_tool_becomes_an_event() -> None:
    """ctx.emit_chunk emits a stream_chunk event with the tool's call id."""
    events: list[PlannerEvent] = []

    async def talker(args: CityArgs, ctx: ToolContext) -> Weather:
        await ctx.emit_chunk("s1", 0, "hello", done=True)
        return Weather(city=args.city, temp_c=0.0)

    llm = ScriptedLLM([ScriptedLLM.call("talker", city="A"), ScriptedLLM.final("ok")])
    await finished(ReactPlanner(llm_client=llm, nodes=[talker]), event_callback=events.append)
    chunk = next(e for e in events if e.event_type == "stream_chunk")
    assert (chunk.tool_call_id, chunk.extra["text"], chunk.extra["done"]) == ("call_0", "hello", True)


async def test_streaming_emits_answer_chunks_once_final_response_is_named() -> None:
    """With stream_final_response, the decoded answer text arrives on the answer channel."""
    events: list[PlannerEvent] = []
    llm = ScriptedLLM([ScriptedLLM.final('Line "one"\nand two')], chunk_size=4)
    planner = ReactPlanner(llm_client=llm, nodes=[get_weather], stream_final_response=True)
    await finished(planner, event_callback=events.append)
    chunks = [e for e in events if e.event_type == "llm_stream_chunk"]
    answer = "".join(str(e.extra["text"]) for e in chunks if e.extra["channel"] == "answer")
    assert answer == 'Line "one"\nand two'
    assert chunks[-1].extra["done"] is True
    assert llm.calls[0].stream is True


class Exploding(BaseModel):
    city: str

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("boom")


async def odd(args: CityArgs, ctx: ToolContext) -> Exploding:
    return Exploding(city="x")


async def test_an_internal_error_is_returned_as_no_path() -> None:
    """An unexpected exception inside the planner ends no_path / internal_error with the trajectory."""
    llm = ScriptedLLM([ScriptedLLM.call("odd", city="A"), ScriptedLLM.final("ok")])
    result = await finished(ReactPlanner(llm_client=llm, nodes=[odd]))
    assert (result.reason, result.payload["failure_reason"]) == ("no_path", "internal_error")
    assert "RuntimeError: boom" in result.payload["last_error"]
