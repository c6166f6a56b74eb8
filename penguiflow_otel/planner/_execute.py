"""One tool execution: the ``execute_tool`` span, timeouts, output validation and the clamp."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span
from pydantic import BaseModel, ValidationError

from ..telemetry import names as n
from ._catalog import NodeSpec
from ._clamp import clamp_observation
from ._context import PauseSignal, PlannerPauseReason
from ._telemetry import content_json, describe
from ._trajectory import to_jsonable

if TYPE_CHECKING:
    from ._run import PlannerRun

__all__ = ["CallOutcome", "CallPlan", "execute_call", "validation_details"]

CallStatus: TypeAlias = Literal["ok", "error", "pause"]


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A validated call: which tool, its args (raw and validated), its call id and place in the step."""

    spec: NodeSpec
    args: dict[str, Any]
    validated: BaseModel
    tool_call_id: str
    step_index: int
    parallel_index: int | None = None
    join: bool = False


@dataclass(slots=True)
class CallOutcome:
    """How a call ended: an observation, an error with its failure record, or a pause."""

    plan: CallPlan
    status: CallStatus
    started_at: float
    ended_at: float
    observation: Any = None
    llm_observation: Any = None
    error: str | None = None
    error_code: str | None = None
    error_type: str | None = None
    failure: dict[str, Any] | None = None
    pause_reason: PlannerPauseReason | None = None
    pause_payload: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def entry(self, *, llm_view: bool) -> dict[str, Any]:
        """This call as an entry of ``$branches`` (``llm_view``: with the clamped observation)."""
        entry: dict[str, Any] = {
            "node": self.plan.spec.name,
            "args": self.plan.args,
            "tool_call_id": self.plan.tool_call_id,
        }
        if self.status == "ok":
            entry["observation"] = self.llm_observation if llm_view else self.observation
        elif self.status == "error":
            entry.update(error=self.error, failure=self.failure)
        else:
            entry.update(pause=self.pause_reason, payload=self.pause_payload)
        return entry


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Field errors as ``[{"loc": "a.b", "msg": ...}]``, without input values."""
    return [
        {"loc": ".".join(str(p) for p in err["loc"]) or "<root>", "msg": err["msg"]} for err in exc.errors()
    ]


def _failure(plan: CallPlan, code: str, message: str, **more: Any) -> dict[str, Any]:
    failure = {"node": plan.spec.name, "args": plan.args, "error_code": code, "message": message}
    failure.update({key: value for key, value in more.items() if value is not None})
    return failure


def _suggestion(exc: BaseException) -> str | None:
    for name in ("suggestion", "remedy"):
        value = getattr(exc, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def _dump_output(spec: NodeSpec, result: Any) -> Any:
    if isinstance(result, BaseModel) and not isinstance(result, spec.out_model):
        result = result.model_dump()
    validated = spec.out_model.model_validate(result)
    try:
        return validated.model_dump(mode="json")
    except Exception:  # a permissive dict model holding values pydantic cannot serialise
        return to_jsonable(validated.model_dump())


class _Timing:
    __slots__ = ("deadline_bound", "limit")

    def __init__(self, run: PlannerRun, spec: NodeSpec) -> None:
        tool_limit = run.config.tool_timeout(spec)
        remaining = run.remaining()
        self.deadline_bound = remaining is not None and (tool_limit is None or remaining <= tool_limit)
        self.limit = remaining if self.deadline_bound else tool_limit


def _start_span(run: PlannerRun, plan: CallPlan) -> Span:
    attributes: dict[str, Any] = {
        n.ATTR_GEN_AI_TOOL_NAME: plan.spec.name,
        n.ATTR_GEN_AI_TOOL_CALL_ID: plan.tool_call_id,
        n.ATTR_GEN_AI_TOOL_DESCRIPTION: plan.spec.desc,
        n.ATTR_GEN_AI_TOOL_TYPE: n.GEN_AI_TOOL_TYPE_FUNCTION,
        n.ATTR_PLANNER_STEP_INDEX: plan.step_index,
        n.ATTR_TOOL_SIDE_EFFECTS: plan.spec.side_effects,
    }
    if plan.parallel_index is not None:
        attributes[n.ATTR_PLANNER_PARALLEL_INDEX] = plan.parallel_index
    if plan.join:
        attributes[n.ATTR_PLANNER_PARALLEL_JOIN] = True
    span = run.telemetry.start_span(
        n.SPAN_EXECUTE_TOOL.format(tool=plan.spec.name),
        n.GEN_AI_OPERATION_EXECUTE_TOOL,
        run.agent_ctx,
        attributes=attributes,
    )
    run.telemetry.set_content(span, n.ATTR_GEN_AI_TOOL_CALL_ARGUMENTS, content_json(plan.args))
    return span


async def execute_call(run: PlannerRun, plan: CallPlan) -> CallOutcome:
    """Run one tool call under its span; every failure becomes an outcome, only cancellation raises."""
    span = _start_span(run, plan)
    run.emit(
        "tool_call_start", span=span, node_name=plan.spec.name, tool_call_id=plan.tool_call_id, args=plan.args
    )
    started, started_at = time.perf_counter(), run.config.wall()
    try:
        outcome = await _invoke(run, plan, span, started_at)
    except BaseException as exc:
        label = n.OUTCOME_ERROR if isinstance(exc, Exception) else n.OUTCOME_CANCELLED
        error_type = type(exc).__name__ if isinstance(exc, Exception) else None
        if error_type is not None:
            run.telemetry.fail(span, error_type, describe(exc), exc)
        span.set_attribute(n.ATTR_OUTCOME, label)
        span.end()
        duration = time.perf_counter() - started
        _record_duration(run, plan, duration, label, error_type)
        run.emit(
            "tool_call_end",
            span=span,
            node_name=plan.spec.name,
            tool_call_id=plan.tool_call_id,
            latency_ms=duration * 1000,
            error=label,
        )
        raise
    _end_span(run, plan, span, outcome, time.perf_counter() - started)
    return outcome


async def _invoke(run: PlannerRun, plan: CallPlan, span: Span, started_at: float) -> CallOutcome:
    timing = _Timing(run, plan.spec)
    ctx = run.tool_ctx(plan)
    token = otel_context.attach(trace.set_span_in_context(span, run.agent_ctx))
    scope = asyncio.timeout(timing.limit)
    try:
        try:
            async with scope:
                result = await plan.spec.func(plan.validated, ctx)
        finally:
            otel_context.detach(token)
    except PauseSignal as signal:
        return CallOutcome(
            plan,
            "pause",
            started_at,
            run.config.wall(),
            pause_reason=signal.reason,
            pause_payload=signal.payload,
        )
    except TimeoutError as exc:
        if not scope.expired():
            return _error(run, plan, span, started_at, exc)
        if timing.deadline_bound:
            message = f"the run deadline passed while tool {plan.spec.name!r} was running"
            code = "deadline"
        else:
            message = f"tool {plan.spec.name!r} timed out after {timing.limit}s"
            code = "tool_timeout"
        run.telemetry.fail(span, n.ERROR_TYPE_TIMEOUT, message)
        return CallOutcome(
            plan,
            "error",
            started_at,
            run.config.wall(),
            error=message,
            error_code=code,
            error_type=n.ERROR_TYPE_TIMEOUT,
            failure=_failure(plan, code, message),
        )
    except Exception as exc:
        return _error(run, plan, span, started_at, exc)
    return _observe(run, plan, span, started_at, result)


def _error(run: PlannerRun, plan: CallPlan, span: Span, started_at: float, exc: Exception) -> CallOutcome:
    message = f"tool {plan.spec.name!r} raised {type(exc).__name__}: {describe(exc)}"
    run.telemetry.fail(span, type(exc).__name__, describe(exc), exc)
    failure = _failure(plan, "tool_error", message, suggestion=_suggestion(exc))
    return CallOutcome(
        plan,
        "error",
        started_at,
        run.config.wall(),
        error=message,
        error_code="tool_error",
        error_type=type(exc).__name__,
        failure=failure,
    )


def _observe(run: PlannerRun, plan: CallPlan, span: Span, started_at: float, result: Any) -> CallOutcome:
    try:
        observation = _dump_output(plan.spec, result)
    except ValidationError as exc:
        message = f"tool {plan.spec.name!r} returned output that does not match its out_model"
        run.telemetry.fail(span, n.ERROR_TYPE_INVALID_OUTPUT, describe(exc))
        failure = _failure(plan, "invalid_output", message, details=validation_details(exc))
        return CallOutcome(
            plan,
            "error",
            started_at,
            run.config.wall(),
            error=message,
            error_code="invalid_output",
            error_type=n.ERROR_TYPE_INVALID_OUTPUT,
            failure=failure,
        )
    clamped = clamp_observation(observation, run.config.guardrail)
    if clamped.method is not None:
        if span.is_recording():
            span.set_attributes(
                {
                    n.ATTR_TOOL_OBSERVATION_CLAMPED: True,
                    n.ATTR_TOOL_OBSERVATION_ORIGINAL_CHARS: clamped.original_chars,
                    n.ATTR_TOOL_OBSERVATION_CLAMPED_CHARS: clamped.clamped_chars,
                }
            )
        run.emit(
            "observation_clamped",
            span=span,
            node_name=plan.spec.name,
            tool_call_id=plan.tool_call_id,
            original_size=clamped.original_chars,
            clamped_size=clamped.clamped_chars,
            method=clamped.method,
        )
    run.telemetry.set_content(
        span, n.ATTR_GEN_AI_TOOL_CALL_RESULT, json.dumps(observation, ensure_ascii=False)
    )
    return CallOutcome(
        plan, "ok", started_at, run.config.wall(), observation=observation, llm_observation=clamped.value
    )


def _record_duration(
    run: PlannerRun, plan: CallPlan, duration: float, outcome: str, error_type: str | None
) -> None:
    attributes = {
        n.ATTR_GEN_AI_AGENT_NAME: run.config.name,
        n.ATTR_GEN_AI_TOOL_NAME: plan.spec.name,
        n.ATTR_OUTCOME: outcome,
    }
    if error_type is not None:
        attributes[n.ATTR_ERROR_TYPE] = error_type
    run.telemetry.record("tool_duration", duration, attributes)


def _end_span(run: PlannerRun, plan: CallPlan, span: Span, outcome: CallOutcome, duration: float) -> None:
    label = {"ok": n.OUTCOME_OK, "error": n.OUTCOME_ERROR, "pause": n.OUTCOME_PAUSED}[outcome.status]
    span.set_attribute(n.ATTR_OUTCOME, label)
    span.end()
    _record_duration(run, plan, duration, label, outcome.error_type)
    extra: dict[str, Any]
    if outcome.status == "ok":
        extra = {"result": outcome.observation}
    elif outcome.status == "error":
        extra = {"error_code": outcome.error_code, "failure": outcome.failure}
    else:
        extra = {"pause": outcome.pause_reason, "payload": outcome.pause_payload}
    run.emit(
        "tool_call_end",
        span=span,
        node_name=plan.spec.name,
        tool_call_id=plan.tool_call_id,
        latency_ms=duration * 1000,
        error=outcome.error,
        **extra,
    )
