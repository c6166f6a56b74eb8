"""The action schema the LLM answers in, the final payload, and tolerant, deterministic parsing."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "ACTION_JSON_SCHEMA",
    "FINAL_RESPONSE",
    "PARALLEL",
    "FinalPayload",
    "ParallelArgs",
    "ParallelJoin",
    "ParallelStep",
    "ParseFailure",
    "PlannerAction",
    "action_to_json",
    "final_payload",
    "parse_action",
    "response_format",
]

FINAL_RESPONSE = "final_response"
PARALLEL = "parallel"
ParseErrorType: TypeAlias = Literal["json_decode", "schema_validation"]

ACTION_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"next_node": {"type": "string"}, "args": {"type": "object"}},
    "required": ["next_node", "args"],
    "additionalProperties": False,
}
"""The two-field action shape sent as ``response_format`` (``args`` is open, hence ``strict: false``)."""


def response_format(json_schema_mode: bool) -> dict[str, Any]:
    """The ``response_format`` the planner asks for."""
    if not json_schema_mode:
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": "planner_action", "strict": False, "schema": ACTION_JSON_SCHEMA},
    }


class PlannerAction(BaseModel):
    """One decision of the LLM: ``{next_node, args}``; ``thought`` is kept but never asked for."""

    model_config = ConfigDict(extra="ignore")

    next_node: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    thought: SkipJsonSchema[str] = ""


def action_to_json(action: PlannerAction) -> str:
    """The compact JSON of an action, keys sorted, as replayed to the LLM."""
    return json.dumps(
        {"next_node": action.next_node, "args": action.args},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


# Final answer -------------------------------------------------------------------------------


class Source(BaseModel):
    """A source the answer relies on."""

    title: str | None = None
    url: str | None = None
    snippet: str | None = None
    relevance_score: float | None = None


class SuggestedAction(BaseModel):
    """A follow-up the user might take."""

    action_id: str | None = None
    label: str
    params: dict[str, Any] = Field(default_factory=dict)


class FinalPayload(BaseModel):
    """The payload of an ``answer_complete`` finish."""

    raw_answer: str
    artifacts: dict[str, Any] = Field(default_factory=dict)
    confidence: float | None = None
    sources: list[Source] = Field(default_factory=list)
    route: str | None = None
    suggested_actions: list[SuggestedAction] = Field(default_factory=list)
    requires_followup: bool = False
    warnings: list[str] = Field(default_factory=list)
    language: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class _FinalArgs(BaseModel):
    model_config = ConfigDict(extra="allow")

    answer: str
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    sources: list[Source] = Field(default_factory=list)
    route: str | None = None
    requires_followup: bool = False
    warnings: list[str] = Field(default_factory=list)
    suggested_actions: list[SuggestedAction] = Field(default_factory=list)
    language: str | None = None
    artifacts: dict[str, Any] = Field(default_factory=dict)

    @field_validator("answer")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("answer must be a non-empty string")
        return value


def final_payload(args: Mapping[str, Any]) -> FinalPayload:
    """The :class:`FinalPayload` of a ``final_response``'s args (already validated by parsing)."""
    parsed = _FinalArgs.model_validate(dict(args))
    known = parsed.model_dump(exclude={"answer"}, exclude_unset=False)
    known = {key: value for key, value in known.items() if key in _FinalArgs.model_fields}
    return FinalPayload(raw_answer=parsed.answer, extra=dict(parsed.model_extra or {}), **known)


# Parallel plans -----------------------------------------------------------------------------


class ParallelStep(BaseModel):
    """One branch of a parallel plan."""

    model_config = ConfigDict(extra="forbid")

    node: str
    args: dict[str, Any] = Field(default_factory=dict)


class ParallelJoin(BaseModel):
    """The join run after the branches of a parallel plan."""

    model_config = ConfigDict(extra="forbid")

    node: str
    args: dict[str, Any] = Field(default_factory=dict)
    inject: dict[str, str] = Field(default_factory=dict)
    on_failure: Literal["skip", "run"] = "skip"


class ParallelArgs(BaseModel):
    """The args of a ``parallel`` action."""

    model_config = ConfigDict(extra="forbid")

    steps: list[ParallelStep]
    join: ParallelJoin | None = None


# Parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """Why a reply is not an action."""

    error_type: ParseErrorType
    message: str
    had_code_fence: bool


_FENCE = re.compile(r"```([A-Za-z0-9_-]*)[ \t]*\n?(.*?)```", re.DOTALL)


def _fenced_blocks(text: str) -> list[str]:
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    preferred = [body for lang, body in blocks if lang == "json"]
    return preferred + [body for lang, body in blocks if lang != "json"]


def _score(candidate: object) -> int:
    if not isinstance(candidate, dict):
        return 0
    if "next_node" in candidate:
        return 3 if isinstance(candidate.get("args"), dict) else 2
    return 1 if "answer" in candidate or "plan" in candidate else 0


def _embedded_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = text.find("{", end)
    return found


def _decode(text: str) -> tuple[object, bool]:
    stripped = text.strip()
    fences = _fenced_blocks(stripped)
    if stripped.startswith("{"):
        return json.loads(stripped), False
    if fences:
        return json.loads(fences[0].strip()), True
    candidates = [obj for obj in _embedded_objects(stripped) if _score(obj) > 0]
    if not candidates:
        raise json.JSONDecodeError("no JSON object found in the reply", stripped, 0)
    best = max(_score(obj) for obj in candidates)
    return next(obj for obj in candidates if _score(obj) == best), False


def _normalise_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Read upstream's legacy shapes as unified actions (input only)."""
    if isinstance(data.get("plan"), list):
        return {
            "next_node": PARALLEL,
            "args": {"steps": data["plan"], "join": data.get("join")},
            "thought": data.get("thought") or "",
        }
    if "next_node" not in data and "answer" in data:
        return {"next_node": FINAL_RESPONSE, "args": {"answer": data["answer"]}}
    if "next_node" in data and data["next_node"] is None:
        raw_args = data.get("args")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        answer = args.get("answer", args.get("raw_answer"))
        rest = {key: value for key, value in args.items() if key not in ("answer", "raw_answer")}
        return {
            "next_node": FINAL_RESPONSE,
            "args": {**rest, "answer": answer},
            "thought": data.get("thought") or "",
        }
    return data


def _schema_errors(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(part) for part in (*((prefix,) if prefix else ()), *error["loc"]))
        parts.append(f"{loc or '<root>'}: {error['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_action(text: str) -> PlannerAction | ParseFailure:
    """Parse one LLM reply into an action, or say why it is not one.

    Order: stripped text starting with ``{`` is JSON; else the first fenced block (```json``
    preferred); else the best-scored action-shaped JSON object embedded in the text (ties go to
    the first). A ``final_response`` needs a non-empty string ``answer``.
    """
    had_fence = "```" in text
    try:
        data, _ = _decode(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}, char {exc.pos})"
        return ParseFailure("json_decode", message, had_fence)
    if not isinstance(data, dict):
        return ParseFailure("schema_validation", "the reply must be one JSON object", had_fence)
    try:
        action = PlannerAction.model_validate(_normalise_legacy(data))
    except ValidationError as exc:
        return ParseFailure("schema_validation", _schema_errors(exc), had_fence)
    if action.next_node == FINAL_RESPONSE:
        try:
            _FinalArgs.model_validate(action.args)
        except ValidationError as exc:
            return ParseFailure("schema_validation", _schema_errors(exc, "args"), had_fence)
    return action
