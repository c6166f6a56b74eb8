"""The trajectory of a logical run: its steps, timings, usage and segments, as JSON-native data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel

__all__ = ["StepKind", "Trajectory", "TrajectoryStep", "new_llm_record", "to_jsonable"]

StepKind: TypeAlias = Literal["tool", "parallel", "final", "error", "pause"]


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON-native data.

    Pydantic models are dumped with ``mode="json"``; anything else that JSON cannot hold becomes
    ``{"__unserialisable__": "<type>", "repr": str(value)[:200]}``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _unserialisable(value)
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return _unserialisable(value)


def _unserialisable(value: object) -> dict[str, str]:
    return {"__unserialisable__": type(value).__name__, "repr": str(value)[:200]}


def new_llm_record() -> dict[str, Any]:
    """An empty per-step LLM usage record."""
    return {"calls": 0, "input_tokens": None, "output_tokens": None, "cost_usd": None, "attempts": []}


@dataclass(slots=True)
class TrajectoryStep:
    """One step: a tool call, a parallel plan, the final answer, an error or a pause.

    ``action`` is ``{next_node, args}`` (``None`` when the LLM gave no usable action);
    ``observation`` is the full JSON-native result and ``llm_observation`` the clamped view the
    LLM saw. Token counts are ``None``, never 0, when the client reported none.
    """

    index: int
    kind: StepKind
    action: dict[str, Any] | None = None
    observation: Any = None
    llm_observation: Any = None
    error: str | None = None
    error_code: str | None = None
    failure: dict[str, Any] | None = None
    tool_call_id: str | None = None
    tool_call_ids: list[str] | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    llm: dict[str, Any] = field(default_factory=new_llm_record)
    thought: str = ""

    def serialise(self) -> dict[str, Any]:
        """The step as a JSON-safe dict."""
        return {
            "index": self.index,
            "kind": self.kind,
            "action": self.action,
            "observation": self.observation,
            "llm_observation": self.llm_observation,
            "error": self.error,
            "error_code": self.error_code,
            "failure": self.failure,
            "tool_call_id": self.tool_call_id,
            "tool_call_ids": self.tool_call_ids,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "llm": self.llm,
            "thought": self.thought,
        }

    @classmethod
    def from_serialised(cls, data: Mapping[str, Any]) -> TrajectoryStep:
        """Rebuild a step from :meth:`serialise` output."""
        return cls(
            index=int(data["index"]),
            kind=data["kind"],
            action=data.get("action"),
            observation=data.get("observation"),
            llm_observation=data.get("llm_observation"),
            error=data.get("error"),
            error_code=data.get("error_code"),
            failure=data.get("failure"),
            tool_call_id=data.get("tool_call_id"),
            tool_call_ids=data.get("tool_call_ids"),
            started_at=float(data.get("started_at", 0.0)),
            ended_at=float(data.get("ended_at", 0.0)),
            llm=dict(data.get("llm") or new_llm_record()),
            thought=str(data.get("thought", "")),
        )


@dataclass(slots=True)
class Trajectory:
    """Everything a logical run (a ``run()`` and its ``resume()`` calls) did, as JSON-native data.

    ``segments`` has one entry per ``run()`` / ``resume()`` call: ``{trace_id, span_id,
    started_at, ended_at, outcome}``. ``resume_inputs`` records ``{after_step, user_input, at}``.
    """

    query: str
    run_id: str = ""
    session_id: str | None = None
    llm_context: dict[str, Any] = field(default_factory=dict)
    tool_context: dict[str, Any] = field(default_factory=dict)
    steps: list[TrajectoryStep] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    resume_inputs: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)

    def serialise(self) -> dict[str, Any]:
        """The trajectory as a JSON-safe dict; :meth:`from_serialised` reads it back."""
        return {
            "run_id": self.run_id,
            "session_id": self.session_id,
            "query": self.query,
            "llm_context": self.llm_context,
            "tool_context": self.tool_context,
            "steps": [step.serialise() for step in self.steps],
            "metadata": self.metadata,
            "resume_inputs": self.resume_inputs,
            "segments": self.segments,
        }

    @classmethod
    def from_serialised(cls, data: Mapping[str, Any]) -> Trajectory:
        """Rebuild a trajectory from :meth:`serialise` output (after a JSON round trip, too)."""
        return cls(
            query=str(data["query"]),
            run_id=str(data.get("run_id", "")),
            session_id=data.get("session_id"),
            llm_context=dict(data.get("llm_context") or {}),
            tool_context=dict(data.get("tool_context") or {}),
            steps=[TrajectoryStep.from_serialised(step) for step in data.get("steps", ())],
            metadata=dict(data.get("metadata") or {}),
            resume_inputs=[dict(item) for item in data.get("resume_inputs", ())],
            segments=[dict(item) for item in data.get("segments", ())],
        )
