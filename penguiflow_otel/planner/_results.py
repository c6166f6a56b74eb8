"""What ``run()`` and ``resume()`` return: ``PlannerFinish`` or ``PlannerPause``."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, Field

from ._context import PlannerPauseReason

__all__ = ["FailureReason", "FinishReason", "PlannerFinish", "PlannerPause"]

FinishReason: TypeAlias = Literal["answer_complete", "no_path", "budget_exhausted"]
FailureReason: TypeAlias = Literal[
    "invalid_llm_output",
    "invalid_arguments",
    "iteration_limit",
    "llm_unavailable",
    "llm_error",
    "pause_store_error",
    "internal_error",
    "deadline",
    "hop_budget",
]


class PlannerFinish(BaseModel):
    """A finished run.

    ``payload`` is a dumped ``FinalPayload`` on ``answer_complete``; otherwise
    ``{"requires_followup": True, "failure_reason", "last_error", "tool", "last_observation"}``.
    ``metadata`` is JSON-safe and carries the whole trajectory.
    """

    reason: FinishReason
    payload: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class PlannerPause(BaseModel):
    """A paused run; pass ``resume_token`` (32 lower-case hex characters, single use) to ``resume()``."""

    reason: PlannerPauseReason
    payload: dict[str, Any] = Field(default_factory=dict)
    resume_token: str
