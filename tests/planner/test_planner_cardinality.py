"""Caps on the planner's metric attributes (telemetry.md section 9.4): ``gen_ai.request.model`` at 50 and
``error.type`` at 50 per instrument; past a cap the value is ``_OTHER`` and the overflow is counted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from penguiflow_otel.catalog import tool
from penguiflow_otel.planner import PlannerFinish, ReactPlanner
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import ScriptedLLM, TelemetryCapture, capture_telemetry

_DURATION = names.METRIC_GEN_AI_CLIENT_OPERATION_DURATION.samples[2]
_TOOL_DURATION = names.METRIC_GEN_AI_EXECUTE_TOOL_DURATION.samples[2]
_OVERFLOW = names.METRIC_TELEMETRY_ERRORS.samples[0]


def label_values(tel: TelemetryCapture, sample: str, label: str) -> set[str]:
    """The values ``label`` takes on the samples named ``sample``."""
    return {labels[label] for labels, _ in tel.series(sample) if labels.get(label)}


def overflows(tel: TelemetryCapture) -> float:
    """penguiflow_telemetry_errors_total{error_type="cardinality_overflow"}."""
    return sum(
        value
        for labels, value in tel.series(_OVERFLOW)
        if labels.get("error_type") == names.ERROR_TYPE_CARDINALITY_OVERFLOW
    )


async def test_request_models_past_the_cap_become_other_on_metrics_only() -> None:
    """55 planners with distinct models: 50 model labels plus _OTHER; spans keep the real model name."""
    with capture_telemetry() as tel:
        for index in range(names.REQUEST_MODEL_CAP + 5):
            llm = ScriptedLLM([ScriptedLLM.final("done")], model=f"model-{index:02d}")
            result = await ReactPlanner(llm_client=llm, nodes=[], name="agent").run("q")
            assert isinstance(result, PlannerFinish)

        models = label_values(tel, _DURATION, "gen_ai_request_model")
        assert len(models) == names.REQUEST_MODEL_CAP + 1
        assert names.OTHER in models
        assert overflows(tel) >= 5
        span_models = {
            (span.attributes or {}).get(names.ATTR_GEN_AI_REQUEST_MODEL) for span in tel.spans("chat ")
        }
        assert "model-54" in span_models


class Args(BaseModel):
    """The tool's input."""

    kind: int


class Out(BaseModel):
    """The tool's output."""

    ok: bool


async def test_tool_error_types_past_the_cap_become_other() -> None:
    """A tool failing with 55 distinct exception classes exports 50 error types plus _OTHER."""
    classes = [type(f"ToolFailure{index:02d}", (Exception,), {}) for index in range(names.ERROR_TYPE_CAP + 5)]

    @tool(desc="Fails with the exception class numbered by kind.")
    async def flaky(args: Args, ctx: Any) -> Out:
        raise classes[args.kind](f"failure {args.kind}")

    script = [ScriptedLLM.call("flaky", kind=index) for index in range(len(classes))]
    script.append(ScriptedLLM.final("gave up"))
    with capture_telemetry() as tel:
        planner = ReactPlanner(llm_client=ScriptedLLM(script), nodes=[flaky], name="agent", max_iters=100)
        await planner.run("q")

        error_types = label_values(tel, _TOOL_DURATION, "error_type")
        assert len(error_types) == names.ERROR_TYPE_CAP + 1
        assert names.OTHER in error_types
        assert overflows(tel) >= 5


async def test_tool_names_past_the_cap_become_other() -> None:
    """A catalog of 260 tools, each called once: 256 tool-name labels plus _OTHER."""
    tools = []
    for index in range(names.TOOL_NAME_CAP + 4):

        async def answer(args: Args, ctx: Any) -> Out:
            return Out(ok=True)

        answer.__name__ = f"tool_{index:03d}"
        tools.append(tool(desc="Answers ok.")(answer))
    script = [ScriptedLLM.call(f"tool_{index:03d}", kind=index) for index in range(len(tools))]
    script.append(ScriptedLLM.final("done"))
    with capture_telemetry() as tel:
        planner = ReactPlanner(llm_client=ScriptedLLM(script), nodes=tools, name="agent", max_iters=300)
        await planner.run("q")

        tool_names = label_values(tel, _TOOL_DURATION, "gen_ai_tool_name")
        assert len(tool_names) == names.TOOL_NAME_CAP + 1
        assert names.OTHER in tool_names
