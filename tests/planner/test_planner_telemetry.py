"""The planner's GenAI telemetry: span tree and attributes, metrics, and content capture off and on."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from weather_tools import CityArgs, Weather, get_weather

from penguiflow_otel.planner import PlannerFinish, ReactPlanner, ToolContext
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import ScriptedLLM, capture_telemetry

SECRET_QUERY = "my card number is 4111-SECRET"
SECRET_ARG = "Secretville"


def script() -> ScriptedLLM:
    return ScriptedLLM(
        [
            ScriptedLLM.call("get_weather", city=SECRET_ARG),
            "garbage",
            ScriptedLLM.final(f"It is 18 in {SECRET_ARG}"),
        ],
        usage=(100, 20),
    )


async def run(capture_content: bool | None = None, **options: Any) -> PlannerFinish:
    planner = ReactPlanner(
        llm_client=script(),
        nodes=[get_weather],
        name="support_agent",
        capture_content=capture_content,
        **options,
    )
    result = await planner.run(SECRET_QUERY, tool_context={"session_id": "sess-1"})
    assert isinstance(result, PlannerFinish)
    return result


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_the_span_tree_has_plan_and_chat_nested_and_tools_beside_plan() -> None:
    """invoke_agent -> plan -> chat (CLIENT); execute_tool is a sibling of plan; every span ends."""
    with capture_telemetry() as telemetry:
        await run()
        tree = telemetry.tree()
        assert telemetry.open_spans() == []
        spans = {span.name: span for span in telemetry.spans()}
        chats = telemetry.spans("chat")
    assert tree == [
        (0, "invoke_agent support_agent"),
        (1, "plan support_agent"),
        (2, "chat scripted-model"),
        (1, "execute_tool get_weather"),
        (1, "plan support_agent"),
        (2, "chat scripted-model"),
        (2, "chat scripted-model"),
    ]
    assert spans["chat scripted-model"].kind == SpanKind.CLIENT
    assert spans["execute_tool get_weather"].kind == SpanKind.INTERNAL
    assert [attrs(c)["penguiflow.planner.repair.attempt"] for c in chats] == [1, 1, 2]


async def test_span_attributes_follow_the_genai_conventions() -> None:
    """Each span carries its operation, agent, provider, model and the planner's own attributes."""
    with capture_telemetry() as telemetry:
        await run(hop_budget=5, deadline_s=30)
        (agent,) = telemetry.spans("invoke_agent")
        plans = telemetry.spans("plan")
        (tool_span,) = telemetry.spans("execute_tool")
        chat = telemetry.spans("chat")[0]
    a = attrs(agent)
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert (a["gen_ai.agent.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
        "support_agent",
        "scripted",
        "scripted-model",
    )
    assert a["gen_ai.conversation.id"] == "sess-1"
    assert (
        a["penguiflow.planner.max_iters"],
        a["penguiflow.planner.hop_budget"],
        a["penguiflow.planner.deadline_s"],
    ) == (8, 5, 30)
    assert (
        a["penguiflow.planner.finish_reason"],
        a["penguiflow.planner.step.count"],
        a["penguiflow.planner.hops_used"],
    ) == (
        "answer_complete",
        2,
        1,
    )
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (300, 60)
    assert a["penguiflow.outcome"] == "ok"
    assert agent.status.status_code.name == "UNSET"
    p0, p1 = (attrs(p) for p in plans)
    assert (
        p0["gen_ai.operation.name"],
        p0["penguiflow.planner.step.index"],
        p0["penguiflow.planner.action"],
    ) == ("plan", 0, "get_weather")
    assert (p1["penguiflow.planner.action"], p1["penguiflow.planner.repair.count"]) == ("final_response", 1)
    assert [e.name for e in plans[1].events] == ["penguiflow.planner.repair"]
    assert dict(plans[1].events[0].attributes or {})["error.type"] == "json_decode"
    t = attrs(tool_span)
    assert (t["gen_ai.tool.name"], t["gen_ai.tool.call.id"], t["gen_ai.tool.type"]) == (
        "get_weather",
        "call_0",
        "function",
    )
    assert (t["gen_ai.tool.description"], t["penguiflow.tool.side_effects"], t["penguiflow.outcome"]) == (
        "Current weather",
        "read",
        "ok",
    )
    c = attrs(chat)
    assert (c["gen_ai.operation.name"], c["gen_ai.output.type"], c["penguiflow.llm.response_format"]) == (
        "chat",
        "json",
        "json_schema",
    )
    assert (c["gen_ai.usage.input_tokens"], c["gen_ai.usage.output_tokens"]) == (100, 20)
    assert "gen_ai.request.temperature" not in c  # a user client's temperature is unknown


async def test_no_path_and_failing_tools_mark_the_right_spans() -> None:
    """A failing tool marks its span ERROR only; a no_path finish marks invoke_agent ERROR with the reason."""

    async def fails(args: CityArgs, ctx: ToolContext) -> Weather:
        raise KeyError("missing")

    llm = ScriptedLLM([ScriptedLLM.call("fails", city="A"), ScriptedLLM.call("nope")])
    with capture_telemetry() as telemetry:
        await ReactPlanner(llm_client=llm, nodes=[fails], max_iters=2).run("q")
        (agent,) = telemetry.spans("invoke_agent")
        (tool_span,) = telemetry.spans("execute_tool")
        plans = telemetry.spans("plan")
    assert (tool_span.status.status_code.name, attrs(tool_span)["error.type"]) == ("ERROR", "KeyError")
    assert [e.name for e in tool_span.events] == ["exception"]
    assert attrs(plans[1])["penguiflow.planner.action"] == "_OTHER"
    assert (agent.status.status_code.name, attrs(agent)["error.type"]) == ("ERROR", "no_path")
    assert agent.status.description == "iteration_limit"
    assert [e.name for e in agent.events] == ["penguiflow.planner.budget_exhausted"]


async def test_metrics_are_exported_with_the_catalog_names_and_float_buckets() -> None:
    """The planner's instruments export the Prometheus names of the catalog; buckets read as floats."""
    with capture_telemetry() as telemetry:
        await run()
        text = telemetry.prometheus_text()
        duration = telemetry.series("gen_ai_client_operation_duration_seconds_count")
        tokens = telemetry.series("gen_ai_client_token_usage_sum")
        tool_count = telemetry.series("gen_ai_execute_tool_duration_seconds_count")
        agent = telemetry.series("gen_ai_invoke_agent_duration_seconds_count")
        steps = telemetry.series("penguiflow_planner_steps_bucket")
        repairs = telemetry.series("penguiflow_planner_repairs_total")
        active = telemetry.series("penguiflow_planner_runs_active")
    for spec in (
        names.METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
        names.METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
        names.METRIC_GEN_AI_INVOKE_AGENT_DURATION,
        names.METRIC_GEN_AI_EXECUTE_TOOL_DURATION,
        names.METRIC_PLANNER_RUNS_ACTIVE,
        names.METRIC_PLANNER_STEPS,
        names.METRIC_PLANNER_REPAIRS,
    ):
        assert f"# TYPE {spec.prometheus} " in text, spec.name
    assert sum(value for _, value in duration) == 3
    by_type = {labels["gen_ai_token_type"]: value for labels, value in tokens}
    assert by_type == {"input": 300.0, "output": 60.0}
    assert tool_count[0][0]["gen_ai_tool_name"] == "get_weather"
    assert tool_count[0][1] == 1
    assert agent[0][0]["penguiflow_planner_finish_reason"] == "answer_complete"
    assert {labels["le"] for labels, _ in steps} >= {"1.0", "2.0", "32.0", "+Inf"}
    assert repairs[0][0]["error_type"] == "json_decode"
    assert active == [
        (
            {
                "gen_ai_agent_name": "support_agent",
                **{k: v for k, v in active[0][0].items() if k.startswith("otel_")},
            },
            0.0,
        )
    ]
    assert 'le="0.01"' in text
    assert 'le="67108864.0"' in text
    for labels, _ in duration + tool_count + agent:
        assert not any("sess-1" in value or "call_0" in value for value in labels.values())


def _everything(telemetry_spans: list[ReadableSpan]) -> str:
    parts = []
    for span in telemetry_spans:
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
        parts.append(str(span.status.description))
        for event in span.events:
            parts.append(json.dumps(dict(event.attributes or {}), default=str))
    return "\n".join(parts)


async def test_no_prompt_or_tool_text_in_spans_or_logs_when_capture_is_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With capture off (the default), neither spans nor log records hold the query, args or answers."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    caplog.set_level(logging.DEBUG, logger="penguiflow_otel")
    with capture_telemetry() as telemetry:
        await run()
        recorded = _everything(telemetry.spans())
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "planner finish" in logs
    for secret in (SECRET_QUERY, SECRET_ARG, "garbage"):
        assert secret not in recorded
        assert secret not in logs
    assert "gen_ai.input.messages" not in recorded


async def test_content_is_captured_when_enabled(caplog: pytest.LogCaptureFixture) -> None:
    """With capture on, messages, tool arguments and results, and the repair preview are recorded."""
    caplog.set_level(logging.DEBUG, logger="penguiflow_otel")
    with capture_telemetry() as telemetry:
        await run(capture_content=True)
        (agent,) = telemetry.spans("invoke_agent")
        (tool_span,) = telemetry.spans("execute_tool")
        chat = telemetry.spans("chat")[0]
        repair_plan = telemetry.spans("plan")[1]
    a, t, c = attrs(agent), attrs(tool_span), attrs(chat)
    assert SECRET_QUERY in a["gen_ai.input.messages"]
    assert SECRET_ARG in a["gen_ai.output.messages"]
    assert "get_weather" in a["gen_ai.tool.definitions"]
    assert json.loads(t["gen_ai.tool.call.arguments"]) == {"city": SECRET_ARG}
    assert json.loads(t["gen_ai.tool.call.result"]) == {"city": SECRET_ARG, "temp_c": 18.0}
    messages = json.loads(c["gen_ai.input.messages"])
    assert messages[0]["role"] == "user"
    assert SECRET_QUERY in messages[0]["parts"][0]["content"]
    assert "JSON" in c["gen_ai.system_instructions"]
    assert SECRET_ARG in c["gen_ai.output.messages"]
    assert dict(repair_plan.events[0].attributes or {})["penguiflow.llm.output_preview"] == "garbage"
    assert SECRET_ARG in "\n".join(record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("value", "captured"), [("true", True), ("SPAN_ONLY", True), ("1", True), ("false", False), ("", False)]
)
async def test_the_environment_switch_turns_capture_on(
    monkeypatch: pytest.MonkeyPatch, value: str, captured: bool
) -> None:
    """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT enables capture when capture_content is None."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    with capture_telemetry() as telemetry:
        await run()
        (agent,) = telemetry.spans("invoke_agent")
    assert ("gen_ai.input.messages" in attrs(agent)) is captured


async def test_a_run_without_telemetry_configured_works() -> None:
    """Outside capture_telemetry and with no global provider, spans and metrics are no-ops."""
    result = await run()
    assert result.reason == "answer_complete"


async def test_inference_token_counters_are_absent_without_the_semconv_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By default only ``gen_ai.client.token.usage`` reports tokens; the newer counters are not created."""
    monkeypatch.delenv(names.SEMCONV_OPT_IN_ENV, raising=False)
    with capture_telemetry() as telemetry:
        await run()
        text = telemetry.prometheus_text()
    assert f"# TYPE {names.METRIC_GEN_AI_CLIENT_TOKEN_USAGE.prometheus} " in text
    assert "gen_ai_client_inference" not in text


async def test_inference_token_counters_count_the_same_tokens_under_the_semconv_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``gen_ai_latest_experimental`` listed, input and output counters add what token.usage records."""
    monkeypatch.setenv(names.SEMCONV_OPT_IN_ENV, f"http, {names.SEMCONV_OPT_IN_GENAI_LATEST}")
    with capture_telemetry() as telemetry:
        await run()
        tokens = telemetry.series("gen_ai_client_token_usage_sum")
        inputs = telemetry.series(names.METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS.samples[0])
        outputs = telemetry.series(names.METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS.samples[0])
    by_type = {labels["gen_ai_token_type"]: value for labels, value in tokens}
    assert by_type == {"input": 300.0, "output": 60.0}
    assert sum(value for _, value in inputs) == by_type["input"]
    assert sum(value for _, value in outputs) == by_type["output"]
    for labels, _ in inputs + outputs:
        assert labels["gen_ai_token_modality"] == names.GEN_AI_TOKEN_MODALITY_TEXT
        assert labels["gen_ai_operation_name"] == "chat"
        assert "gen_ai_token_type" not in labels
