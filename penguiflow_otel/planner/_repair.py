"""One decision: LLM calls until a reply parses as an action, at most ``repair_attempts`` of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from ..telemetry import names as n
from ._actions import PlannerAction, parse_action
from ._llm_call import LLMCallFailed, call_llm
from ._prompt import Message, repair_message
from ._telemetry import truncate_content

if TYPE_CHECKING:
    from ._run import PlannerRun

__all__ = ["Decision", "decide"]

_INVALID_RESPONSE_CHARS = 1_000
_RAW_PREVIEW_CHARS = 500
_OUTPUT_PREVIEW_CHARS = 500


@dataclass(frozen=True, slots=True)
class Decision:
    """What a ``plan`` step produced: an action, or why there is none.

    ``failure`` is ``None`` with an action, else ``"invalid_llm_output"``, ``"llm_unavailable"``,
    ``"llm_error"`` or ``"deadline"``.
    """

    action: PlannerAction | None
    repairs: int
    failure: str | None = None
    last_error: str | None = None
    error_type: str | None = None
    raw_preview: str | None = None
    cause: BaseException | None = None


async def decide(run: PlannerRun, plan_span: Span, llm: dict[str, Any]) -> Decision:
    """Ask the LLM for the next action, inserting a repair note after each reply that does not parse."""
    repair: Message | None = None
    last_text = ""
    last_error = ""
    attempts = run.config.repair_attempts
    for attempt in range(1, attempts + 1):
        try:
            response = await call_llm(run, plan_span, run.messages(repair), attempt, llm)
        except LLMCallFailed as failed:
            return Decision(
                None, attempt - 1, failed.code, failed.last_error, failed.error_type, cause=failed.__cause__
            )
        parsed = parse_action(response.content)
        if isinstance(parsed, PlannerAction):
            return Decision(parsed, attempt - 1)
        last_text, last_error = response.content, parsed.message
        run.trajectory.metadata.setdefault("invalid_responses", []).append(
            {
                "step": len(run.trajectory.steps),
                "attempt": attempt,
                "error_type": parsed.error_type,
                "error": parsed.message,
                "raw": response.content[:_INVALID_RESPONSE_CHARS],
            }
        )
        run.trajectory.metadata["repair_attempts"] = (
            int(run.trajectory.metadata.get("repair_attempts", 0)) + 1
        )
        if plan_span.is_recording():
            event_attributes: dict[str, Any] = {
                n.ATTR_PLANNER_REPAIR_ATTEMPT: attempt,
                n.ATTR_ERROR_TYPE: parsed.error_type,
            }
            if run.telemetry.capture:
                event_attributes[n.ATTR_LLM_OUTPUT_PREVIEW] = truncate_content(
                    response.content[:_OUTPUT_PREVIEW_CHARS]
                )
            plan_span.add_event(n.EVENT_PLANNER_REPAIR, event_attributes)
        run.telemetry.record(
            "repairs", 1, {n.ATTR_GEN_AI_AGENT_NAME: run.config.name, n.ATTR_ERROR_TYPE: parsed.error_type}
        )
        run.emit(
            "repair_attempt",
            span=plan_span,
            attempt=attempt,
            error_type=parsed.error_type,
            response_len=len(response.content),
            had_code_fence=parsed.had_code_fence,
        )
        repair = repair_message(parsed)
    return Decision(
        None,
        attempts,
        "invalid_llm_output",
        last_error,
        n.ERROR_TYPE_INVALID_LLM_OUTPUT,
        last_text[:_RAW_PREVIEW_CHARS],
    )
