"""One ``run()`` / ``resume()`` call: the loop, its budgets, and how it finishes or pauses."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from pydantic import ValidationError

from ..telemetry import names as n
from ._actions import FINAL_RESPONSE, PARALLEL, PlannerAction, final_payload
from ._config import PlannerConfig
from ._events import EventEmitter, PlannerEventType
from ._execute import CallOutcome, CallPlan, execute_call, validation_details
from ._memory import MemoryKey
from ._pause import RECORD_VERSION
from ._prompt import Message, build_messages, system_prompt
from ._repair import Decision, decide
from ._results import FailureReason, FinishReason, PlannerFinish, PlannerPause
from ._telemetry import RunTelemetry, content_json, span_ids
from ._trajectory import Trajectory, TrajectoryStep, new_llm_record, to_jsonable

__all__ = ["Finish", "Pause", "PlannerRun", "json_safe_entries"]

_MAX_LISTED_TOOLS = 20


@dataclass(frozen=True, slots=True)
class Finish:
    """How the run ends, decided by a step; turned into a ``PlannerFinish`` after ``step_end``."""

    reason: FinishReason
    failure_reason: FailureReason | None = None
    last_error: str | None = None
    tool: str | None = None
    answer: dict[str, Any] | None = None
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """A tool paused the run."""

    reason: Any
    payload: Any
    tool_call_id: str


def json_safe_entries(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The entries of ``values`` that JSON can hold as they are, and the names of the others."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in values.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            dropped.append(str(key))
        else:
            kept[str(key)] = value
    return kept, dropped


class PlannerRun:
    """The state of one ``run()`` / ``resume()`` call; the trajectory continues across calls."""

    def __init__(
        self,
        config: PlannerConfig,
        trajectory: Trajectory,
        *,
        telemetry: RunTelemetry,
        emitter: EventEmitter,
        agent_span: Span,
        agent_ctx: otel_context.Context,
        tool_context: dict[str, Any],
        deadline_at: float | None,
        hops_used: int,
        hop_budget: int | None,
        hop_exhausted: bool,
        memory: Mapping[str, Any] | None,
        memory_key: MemoryKey | None,
    ) -> None:
        self.config = config
        self.trajectory = trajectory
        self.telemetry = telemetry
        self.emitter = emitter
        self.agent_span = agent_span
        self.agent_ctx = agent_ctx
        self.tool_context = tool_context
        self.session_id = trajectory.session_id
        self.deadline_at = deadline_at
        self.hops_used = hops_used
        self.hop_budget = hop_budget
        self.hop_exhausted = hop_exhausted
        self.deadline_triggered = False
        self.memory = memory
        self.memory_key = memory_key
        self.system = system_prompt(
            config.name, list(config.catalog.values()), config.system_prompt_extra, today=dt.date.today()
        )
        self.last_thought = ""

    # Shared helpers -------------------------------------------------------------------------

    @property
    def step_index(self) -> int:
        """The index the next step gets."""
        return len(self.trajectory.steps)

    def emit(self, event_type: PlannerEventType, *, span: Span | None = None, **fields: Any) -> None:
        """Emit an event tied to ``span`` (default: the agent span) and, unless given, the current step."""
        fields.setdefault("step", self.step_index)
        self.emitter.emit(event_type, ids=span_ids(span or self.agent_span), **fields)

    def remaining(self) -> float | None:
        """Seconds left before the run deadline, or ``None`` without one."""
        if self.deadline_at is None:
            return None
        return self.deadline_at - self.config.monotonic()

    def deadline_timeout(self) -> asyncio.Timeout:
        """A timeout scope that expires at the run deadline (never, without one)."""
        remaining = self.remaining()
        return asyncio.timeout(None if remaining is None else max(remaining, 0.0))

    def messages(self, repair: Message | None) -> list[Message]:
        """The messages of the next LLM call."""
        return build_messages(self.system, self.trajectory, memory=self.memory, repair=repair)

    def tool_ctx(self, plan: CallPlan) -> Any:
        """The ``ToolContext`` of one call."""
        from ._context import ToolContext

        trace_id = self.tool_context.get("trace_id") or span_ids(self.agent_span)[0]
        return ToolContext(
            llm_context=self.trajectory.llm_context,
            tool_context=self.tool_context,
            tool_name=plan.spec.name,
            tool_call_id=plan.tool_call_id,
            session_id=self.session_id,
            trace_id=str(trace_id) if trace_id else None,
            deadline_remaining=self.remaining,
            pause_enabled=self.config.pause_enabled,
            chunk_sink=lambda chunk: self.emit(
                "stream_chunk", node_name=plan.spec.name, tool_call_id=plan.tool_call_id, **chunk
            ),
        )

    def record_step(self, step: TrajectoryStep) -> None:
        """Append a step; any step other than invalid args breaks a streak of invalid-args steps."""
        if step.error_code != "invalid_args":
            self.trajectory.metadata["consecutive_arg_failures"] = 0
            self.trajectory.metadata.pop("arg_failure_tool", None)
        self.trajectory.steps.append(step)

    def new_step(
        self, kind: Any, action: PlannerAction | None, started_at: float, llm: dict[str, Any]
    ) -> TrajectoryStep:
        """A step of this index, its action kept as ``{next_node, args}``."""
        return TrajectoryStep(
            index=self.step_index,
            kind=kind,
            action=None
            if action is None
            else {"next_node": action.next_node, "args": to_jsonable(action.args)},
            started_at=started_at,
            ended_at=self.config.wall(),
            llm=llm,
            thought=action.thought if action is not None else "",
        )

    def error_step(
        self,
        action: PlannerAction | None,
        code: str,
        message: str,
        started_at: float,
        llm: dict[str, Any],
        *,
        failure: dict[str, Any] | None = None,
    ) -> TrajectoryStep:
        """An error step; the LLM sees ``{"error", "failure"}`` next time."""
        step = self.new_step("error", action, started_at, llm)
        step.error, step.error_code = message, code
        step.failure = failure or {
            "node": action.next_node if action is not None else None,
            "args": step.action["args"] if step.action is not None else None,
            "error_code": code,
            "message": message,
        }
        return step

    def budget_exhausted(self, kind: str) -> None:
        """The ``budget_exhausted`` event, span event and counter."""
        if self.agent_span.is_recording():
            self.agent_span.add_event(n.EVENT_PLANNER_BUDGET_EXHAUSTED, {n.ATTR_PLANNER_BUDGET_KIND: kind})
        self.telemetry.record(
            "budget_exhaustions",
            1,
            {n.ATTR_GEN_AI_AGENT_NAME: self.config.name, n.ATTR_PLANNER_BUDGET_KIND: kind},
        )
        self.emit("budget_exhausted", kind=kind)

    # The loop -------------------------------------------------------------------------------

    async def loop(self) -> Finish | Pause:
        """Run steps until one finishes or pauses the run."""
        while True:
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                self.deadline_triggered = True
                self.budget_exhausted("deadline")
                return Finish("budget_exhausted", "deadline", "the run deadline passed")
            if self.step_index >= self.config.max_iters:
                return self._iteration_limit()
            ending = await self._step()
            if ending is not None:
                return ending

    def _iteration_limit(self) -> Finish:
        self.budget_exhausted("max_iters")
        message = f"max_iters ({self.config.max_iters}) steps reached"
        if self.hop_exhausted:
            return Finish("budget_exhausted", "hop_budget", message)
        return Finish("no_path", "iteration_limit", message)

    async def _step(self) -> Finish | Pause | None:
        index, started_at = self.step_index, self.config.wall()
        self.emit("step_start")
        plan_span = self.telemetry.start_span(
            n.SPAN_PLAN.format(planner=self.config.name),
            n.GEN_AI_OPERATION_PLAN,
            self.agent_ctx,
            attributes={n.ATTR_PLANNER_STEP_INDEX: index},
        )
        llm = new_llm_record()
        try:
            decision = await decide(self, plan_span, llm)
        except BaseException:
            plan_span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_CANCELLED)
            plan_span.end()
            raise
        self._end_plan(plan_span, decision)
        ending = await self._dispatch(decision, started_at, llm)
        self.emit("step_end", step=index)
        return ending

    def _end_plan(self, span: Span, decision: Decision) -> None:
        if span.is_recording():
            action = decision.action
            label = None
            if action is not None:
                known = (
                    action.next_node in (FINAL_RESPONSE, PARALLEL) or action.next_node in self.config.catalog
                )
                label = action.next_node if known else n.OTHER
                self.last_thought = action.thought or self.last_thought
            if label is not None:
                span.set_attribute(n.ATTR_PLANNER_ACTION, label)
            span.set_attribute(n.ATTR_PLANNER_REPAIR_COUNT, decision.repairs)
            if decision.failure is not None:
                self.telemetry.fail(span, str(decision.error_type), str(decision.last_error))
        span.end()

    async def _dispatch(
        self, decision: Decision, started_at: float, llm: dict[str, Any]
    ) -> Finish | Pause | None:
        action = decision.action
        if action is None:
            return self._no_action(decision, started_at, llm)
        if self.hop_exhausted and action.next_node != FINAL_RESPONSE:
            message = "the hop budget is exhausted: only final_response was possible"
            self.record_step(self.error_step(action, "hop_budget", message, started_at, llm))
            return Finish("budget_exhausted", "hop_budget", message)
        if action.next_node == FINAL_RESPONSE:
            payload = final_payload(action.args).model_dump(mode="json")
            step = self.new_step("final", action, started_at, llm)
            step.observation = step.llm_observation = {"answer": payload["raw_answer"]}
            self.record_step(step)
            return Finish("answer_complete", answer=payload)
        if action.next_node == PARALLEL:
            from ._parallel import run_parallel

            return await run_parallel(self, action, started_at, llm)
        return await self._tool_step(action, started_at, llm)

    def _no_action(self, decision: Decision, started_at: float, llm: dict[str, Any]) -> Finish:
        failure = str(decision.failure)
        code = {"invalid_llm_output": "invalid_llm_output", "deadline": "deadline"}.get(failure, "llm_error")
        message = str(decision.last_error)
        self.record_step(self.error_step(None, code, message, started_at, llm))
        if failure == "deadline":
            self.deadline_triggered = True
            self.budget_exhausted("deadline")
            return Finish("budget_exhausted", "deadline", message)
        if failure == "invalid_llm_output":
            return Finish(
                "no_path", "invalid_llm_output", message, extra={"raw_preview": decision.raw_preview}
            )
        reason: FailureReason = "llm_unavailable" if failure == "llm_unavailable" else "llm_error"
        return Finish("no_path", reason, message)

    async def _tool_step(
        self, action: PlannerAction, started_at: float, llm: dict[str, Any]
    ) -> Finish | Pause | None:
        spec = self.config.catalog.get(action.next_node)
        if spec is None:
            names = list(self.config.catalog)[:_MAX_LISTED_TOOLS]
            message = f"unknown tool {action.next_node!r}; valid tools: {', '.join(names) or '(none)'}"
            self.record_step(self.error_step(action, "unknown_tool", message, started_at, llm))
            return None
        try:
            validated = spec.args_model.model_validate(action.args)
        except ValidationError as exc:
            return self._invalid_args(action, exc, started_at, llm)
        hop_error = self.check_hops(1, action, started_at, llm)
        if hop_error:
            return None
        call_id = f"call_{self.step_index}"
        self.hops_used += 1
        outcome = await execute_call(
            self, CallPlan(spec, dict(action.args), validated, call_id, self.step_index)
        )
        return self._single_outcome(action, outcome, started_at, llm)

    def _invalid_args(
        self, action: PlannerAction, exc: ValidationError, started_at: float, llm: dict[str, Any]
    ) -> Finish | None:
        meta = self.trajectory.metadata
        same_tool = meta.get("arg_failure_tool") == action.next_node
        streak = int(meta.get("consecutive_arg_failures", 0)) + 1 if same_tool else 1
        details = validation_details(exc)
        message = f"invalid args for tool {action.next_node!r}: " + "; ".join(
            f"{d['loc']}: {d['msg']}" for d in details[:5]
        )
        failure = {
            "node": action.next_node,
            "args": to_jsonable(action.args),
            "error_code": "invalid_args",
            "message": message,
            "details": details,
        }
        self.record_step(self.error_step(action, "invalid_args", message, started_at, llm, failure=failure))
        meta["consecutive_arg_failures"] = streak
        meta["arg_failure_tool"] = action.next_node
        meta["validation_failures_count"] = int(meta.get("validation_failures_count", 0)) + 1
        if streak >= self.config.max_consecutive_arg_failures:
            text = f"{streak} invalid-args steps in a row for tool {action.next_node!r}"
            return Finish("no_path", "invalid_arguments", text, tool=action.next_node)
        return None

    def check_hops(self, needed: int, action: PlannerAction, started_at: float, llm: dict[str, Any]) -> bool:
        """Reject a plan needing more hops than remain (recording the error step); ``True`` if rejected."""
        if self.hop_budget is None:
            return False
        left = self.hop_budget - self.hops_used
        if needed <= left:
            return False
        if left > 0:
            message = f"this plan needs {needed} tool executions but only {left} remain in the hop budget"
        else:
            message = "the hop budget is exhausted: no more tool calls; answer with final_response now"
        self.record_step(self.error_step(action, "hop_budget", message, started_at, llm))
        if left <= 0 and not self.hop_exhausted:
            self.hop_exhausted = True
            self.budget_exhausted("hop_budget")
        return True

    def _single_outcome(
        self, action: PlannerAction, outcome: CallOutcome, started_at: float, llm: dict[str, Any]
    ) -> Finish | Pause | None:
        kind = {"ok": "tool", "error": "error", "pause": "pause"}[outcome.status]
        step = self.new_step(kind, action, started_at, llm)
        step.tool_call_id = outcome.plan.tool_call_id
        if outcome.status == "ok":
            step.observation, step.llm_observation = outcome.observation, outcome.llm_observation
        elif outcome.status == "error":
            step.error, step.error_code, step.failure = outcome.error, outcome.error_code, outcome.failure
        else:
            step.observation = step.llm_observation = {
                "pause": outcome.pause_reason,
                "payload": outcome.pause_payload,
            }
        self.record_step(step)
        if outcome.error_code == "deadline":
            self.deadline_triggered = True
            self.budget_exhausted("deadline")
            return Finish("budget_exhausted", "deadline", outcome.error, tool=outcome.plan.spec.name)
        if outcome.status == "pause":
            return Pause(outcome.pause_reason, outcome.pause_payload, outcome.plan.tool_call_id)
        return None

    # Endings --------------------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """Token and call totals of the logical run (``None`` tokens when no call reported any)."""
        totals: dict[str, Any] = {"input_tokens": None, "output_tokens": None, "llm_calls": 0, "cost": None}
        for step in self.trajectory.steps:
            totals["llm_calls"] += int(step.llm.get("calls", 0))
            for key, source in (
                ("input_tokens", "input_tokens"),
                ("output_tokens", "output_tokens"),
                ("cost", "cost_usd"),
            ):
                value = step.llm.get(source)
                if value is not None:
                    totals[key] = (totals[key] or 0) + value
        return totals

    def constraints(self) -> dict[str, Any]:
        """The budget state, as ``PlannerFinish.metadata["constraints"]`` reports it."""
        remaining = self.remaining()
        return {
            "deadline_at": None if remaining is None else self.config.wall() + remaining,
            "deadline_remaining_s": None if remaining is None else max(remaining, 0.0),
            "hop_budget": self.hop_budget,
            "hops_used": self.hops_used,
            "deadline_triggered": self.deadline_triggered,
            "hop_exhausted": self.hop_exhausted,
        }

    def finish_result(self, finish: Finish) -> PlannerFinish:
        """The ``PlannerFinish`` for ``finish``, with the full trajectory in its metadata."""
        if finish.reason == "answer_complete":
            payload: Any = finish.answer
        else:
            last = self.trajectory.steps[-1] if self.trajectory.steps else None
            payload = {
                "requires_followup": True,
                "failure_reason": finish.failure_reason,
                "last_error": finish.last_error,
                "tool": finish.tool,
                "last_observation": last.observation if last is not None else None,
                **(finish.extra or {}),
            }
        return PlannerFinish(reason=finish.reason, payload=payload, metadata=self.metadata(finish.reason))

    def metadata(self, reason: str) -> dict[str, Any]:
        """The JSON-safe metadata of a finish."""
        usage = self.usage()
        trace_id, span_id = span_ids(self.agent_span)
        meta = self.trajectory.metadata
        serialised = self.trajectory.serialise()
        return {
            "reason": reason,
            "thought": self.last_thought,
            "run_id": self.trajectory.run_id,
            "session_id": self.session_id,
            "trace_id": trace_id,
            "span_id": span_id,
            "step_count": len(self.trajectory.steps),
            "steps": serialised["steps"],
            "trajectory": serialised,
            "llm_context": self.trajectory.llm_context,
            "tool_context": json_safe_entries(self.tool_context)[0],
            "usage": {k: usage[k] for k in ("input_tokens", "output_tokens", "llm_calls")},
            "cost": {"total_cost_usd": usage["cost"], "main_llm_calls": usage["llm_calls"]},
            "constraints": self.constraints(),
            "repair_attempts": int(meta.get("repair_attempts", 0)),
            "validation_failures_count": int(meta.get("validation_failures_count", 0)),
            "consecutive_arg_failures": int(meta.get("consecutive_arg_failures", 0)),
        }

    def pause_record(self, pause: Pause, token: str, created_at: float) -> dict[str, Any]:
        """The JSON record saved for a pause (``version`` 1)."""
        tool_context, dropped = json_safe_entries(self.tool_context)
        ctx = self.agent_span.get_span_context()
        remaining = self.remaining()
        ttl = self.config.pause_ttl_s
        return {
            "version": RECORD_VERSION,
            "token": token,
            "created_at": created_at,
            "expires_at": None if ttl is None else created_at + ttl,
            "reason": pause.reason,
            "payload": pause.payload,
            "trajectory": self.trajectory.serialise(),
            "constraints": {
                "deadline_remaining_s": None if remaining is None else max(remaining, 0.0),
                "hops_used": self.hops_used,
                "hop_budget": self.hop_budget,
                "hop_exhausted": self.hop_exhausted,
            },
            "tool_context": tool_context,
            "dropped_tool_context_keys": dropped,
            "llm_context": self.trajectory.llm_context,
            "session_id": self.session_id,
            "planner_name": self.config.name,
            "paused_span": {
                "trace_id": f"{ctx.trace_id:032x}",
                "span_id": f"{ctx.span_id:016x}",
                "trace_flags": int(ctx.trace_flags),
            }
            if ctx.is_valid
            else None,
            "pending_tool_call_id": pause.tool_call_id,
        }

    @staticmethod
    def new_token() -> str:
        """A fresh resume token: 32 lower-case hex characters."""
        return secrets.token_hex(16)

    def pause_result(self, pause: Pause, token: str) -> PlannerPause:
        """The ``PlannerPause`` handed to the caller."""
        payload = pause.payload if isinstance(pause.payload, dict) else {"value": pause.payload}
        if pause.payload is None:
            payload = {}
        return PlannerPause(reason=pause.reason, payload=payload, resume_token=token)

    def capture_answer(self, answer: str) -> None:
        """Put the final answer on ``invoke_agent`` when content capture is on."""
        self.telemetry.set_content(
            self.agent_span,
            n.ATTR_GEN_AI_OUTPUT_MESSAGES,
            content_json([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
        )
