"""The messages sent to the LLM: the system prompt, the history of steps, and the repair note."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._actions import ParseFailure
from ._catalog import NodeSpec
from ._clamp import compact_json
from ._trajectory import Trajectory, TrajectoryStep

__all__ = ["Message", "build_messages", "repair_message", "system_prompt"]

Message = dict[str, str]

_ROLE = """You are {name}, a planning agent. You answer the user's query by calling tools, one decision \
at a time, and finish with a final answer. Today is {today}."""

_FORMAT = """Output format: reply with exactly one JSON object and nothing else: no prose, no code fences."""

_SCHEMA = """Action schema: {"next_node": <string>, "args": <object>}.
- next_node is a tool name from the list below, or one of the opcodes "final_response" and "parallel".
- args are the tool's arguments and must match its args_schema."""

_FINISH = """When to finish: as soon as you can answer, reply {"next_node": "final_response", "args": \
{"answer": "<the answer for the user>"}}. answer is required and non-empty. Optional args: confidence \
(0 to 1), sources ([{title, url, snippet, relevance_score}]), route, requires_followup, warnings, \
suggested_actions ([{action_id, label, params}]), language, artifacts."""

_PARALLEL = """Parallel plans: to run independent tool calls at once, reply {"next_node": "parallel", \
"args": {"steps": [{"node": <tool>, "args": {...}}, ...], "join": null | {"node": <tool>, "args": \
{...}, "inject": {<arg name>: <source>}, "on_failure": "skip" | "run"}}}. The join runs after every \
branch; inject fills its args from: "$results" (successful outputs, in branch order), "$branches" \
(every branch with its outcome), "$failures" (the failed branches), "$success_count", "$failure_count", \
"$expect" (the number of branches). With on_failure "skip" (the default) a failed branch skips the join."""

_ERRORS = """Errors: when an action fails you get {"error": <message>, "failure": {node, args, error_code, \
message, suggestion?}} instead of an observation. Read it, fix the call or choose another action."""


def system_prompt(name: str, catalog: Sequence[NodeSpec], extra: str | None, *, today: dt.date) -> str:
    """The planner's system prompt, in sections; it mentions JSON, as ``json_object`` mode requires."""
    tools = "\n".join(
        json.dumps(spec.to_tool_record(), ensure_ascii=False, sort_keys=True) for spec in catalog
    )
    sections = [
        _ROLE.format(name=name, today=today.isoformat()),
        _FORMAT,
        _SCHEMA,
        _FINISH,
        _PARALLEL,
        _ERRORS,
        f"Tools (one JSON record each):\n{tools or '(none)'}",
    ]
    if extra:
        sections.append(f"Additional guidance:\n{extra}")
    return "\n\n".join(sections)


def repair_message(failure: ParseFailure) -> Message:
    """The system note inserted after a reply that did not parse."""
    kind = "was not valid JSON" if failure.error_type == "json_decode" else "did not match the action schema"
    return {
        "role": "system",
        "content": (
            f"Your previous reply {kind}: {failure.message}. Reply again with exactly one JSON object of "
            'the shape {"next_node": <string>, "args": <object>}, where next_node is a tool name, '
            '"final_response" (args.answer required) or "parallel". Nothing else: no prose, no code fences.'
        ),
    }


def _step_messages(step: TrajectoryStep) -> list[Message]:
    messages: list[Message] = []
    if step.action is not None:
        action = {"next_node": step.action.get("next_node"), "args": step.action.get("args", {})}
        messages.append(
            {"role": "assistant", "content": json.dumps(action, sort_keys=True, separators=(",", ":"))}
        )
    if step.error is not None:
        body: dict[str, Any] = {"error": step.error, "failure": step.failure}
    else:
        body = {"observation": step.llm_observation}
    messages.append({"role": "user", "content": compact_json(body)})
    return messages


def build_messages(
    system: str,
    trajectory: Trajectory,
    *,
    memory: Mapping[str, Any] | None,
    repair: Message | None,
) -> list[Message]:
    """System prompt, memory, repair note, the query, then each step and resume input in order."""
    messages: list[Message] = [{"role": "system", "content": system}]
    if memory:
        messages.append(
            {
                "role": "system",
                "content": f"Conversation memory (read-only JSON):\n{compact_json(dict(memory))}",
            }
        )
    if repair is not None:
        messages.append(repair)
    messages.append(
        {
            "role": "user",
            "content": compact_json({"query": trajectory.query, "context": trajectory.llm_context}),
        }
    )
    resumes = sorted(trajectory.resume_inputs, key=lambda item: int(item["after_step"]))
    position = 0
    for step in trajectory.steps:
        while position < len(resumes) and int(resumes[position]["after_step"]) <= step.index:
            messages.append(_resume_message(resumes[position]))
            position += 1
        messages.extend(_step_messages(step))
    messages.extend(_resume_message(item) for item in resumes[position:])
    return messages


def _resume_message(item: Mapping[str, Any]) -> Message:
    return {"role": "user", "content": compact_json({"resume_input": item["user_input"]})}
