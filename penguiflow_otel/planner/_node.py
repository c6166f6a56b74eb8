"""``planner_node``: a ``ReactPlanner`` as a flow node, one trace from the flow to every tool call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from .._context import Context
from .._message import Message
from .._node import Node, NodePolicy
from ._errors import PauseTokenError
from ._planner import ReactPlanner
from ._results import PlannerFinish, PlannerPause

__all__ = ["PlannerRequest", "PlannerResumeRequest", "planner_node"]


class PlannerRequest(BaseModel):
    """A query for a planner node."""

    query: str
    llm_context: dict[str, Any] = Field(default_factory=dict)
    tool_context: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = None


class PlannerResumeRequest(BaseModel):
    """Resume a paused run through a planner node."""

    resume_token: str
    user_input: str | None = None
    tool_context: dict[str, Any] = Field(default_factory=dict)


PlannerResult = PlannerFinish | PlannerPause


def _request(payload: Any, to_request: Callable[[Any], Any] | None) -> PlannerRequest | PlannerResumeRequest:
    if isinstance(payload, PlannerRequest | PlannerResumeRequest):
        return payload
    if isinstance(payload, str):
        return PlannerRequest(query=payload)
    if to_request is not None:
        return _request(to_request(payload), None)
    raise TypeError(
        f"a planner node takes a str, PlannerRequest or PlannerResumeRequest, got {type(payload).__name__}; "
        "pass to_request= to map other payloads"
    )


async def _run(
    planner: ReactPlanner, request: PlannerRequest | PlannerResumeRequest, trace_id: str | None
) -> PlannerResult:
    tool_context = dict(request.tool_context)
    if trace_id is not None:
        tool_context.setdefault("trace_id", trace_id)
    if isinstance(request, PlannerResumeRequest):
        try:
            return await planner.resume(request.resume_token, request.user_input, tool_context=tool_context)
        except PauseTokenError as exc:
            return PlannerFinish(
                reason="no_path",
                payload={
                    "requires_followup": True,
                    "failure_reason": f"resume_token_{exc.reason}",
                    "last_error": str(exc),
                    "tool": None,
                    "last_observation": None,
                },
                metadata={"reason": "no_path"},
            )
    if request.session_id is not None:
        tool_context["session_id"] = request.session_id
    return await planner.run(request.query, llm_context=request.llm_context, tool_context=tool_context)


def planner_node(
    planner: ReactPlanner,
    *,
    name: str | None = None,
    to_request: Callable[[Any], Any] | None = None,
    to_output: Callable[[PlannerResult], Any] | None = None,
    policy: NodePolicy | None = None,
) -> Node:
    """A flow ``Node`` that runs ``planner`` on each message.

    Input: a ``Message`` (or bare payload) holding a ``str``, a ``PlannerRequest`` or a
    ``PlannerResumeRequest``; ``to_request`` maps anything else. Output: the ``PlannerFinish`` /
    ``PlannerPause`` (or ``to_output(result)``), in a ``Message`` with the same trace id and
    headers when the input was one. A bad resume token gives ``no_path`` /
    ``resume_token_<reason>``, so the caller always gets a result for its trace.

    Raises:
        ValueError: ``policy.max_retries > 0``: a retry would repeat LLM calls and side effects.
    """
    node_policy = policy or NodePolicy(validate="none", max_retries=0, timeout_s=None)
    if node_policy.max_retries > 0:
        raise ValueError(
            "planner_node does not retry (max_retries must be 0): a retry would repeat LLM calls and "
            "side-effecting tools; bound the run with the planner's deadline_s instead"
        )

    async def run_planner(message: Any, ctx: Context) -> Any:
        envelope = message if isinstance(message, Message) else None
        payload = envelope.payload if envelope is not None else message
        result = await _run(planner, _request(payload, to_request), envelope.trace_id if envelope else None)
        output = to_output(result) if to_output is not None else result
        if envelope is None:
            return output
        return envelope.model_copy(update={"payload": output})

    run_planner.__name__ = name or planner.name
    return Node(run_planner, name=name or planner.name, policy=node_policy)
