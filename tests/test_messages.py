"""Message types (runtime.md sections 0, 2 and F16): defaults, the planning models, copies.

The runtime never reads these beyond what section 2 says; ``PlanStep`` and ``Thought`` are plain models.
"""

from __future__ import annotations

import time

import pytest
from flowkit import make_message
from pydantic import ValidationError

from penguiflow_otel import Headers, Message, PlanStep, Thought

_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
_OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
_TRACEPARENT = f"00-{_TRACE}-00f067aa0ba902b7-01"


# message types -----------------------------------------------------------------------------------


def test_message_ts_defaults_to_the_time_of_construction() -> None:
    """Message.ts is time.time() taken when the message is built, per message."""
    before = time.time()
    first = make_message("a")
    second = make_message("b")
    after = time.time()

    assert before <= first.ts <= second.ts <= after


def test_plan_step_fields_defaults_and_kind_literal() -> None:
    """PlanStep(kind) defaults args={} (fresh per instance) and max_concurrency=1; kinds are a fixed set."""
    step = PlanStep(kind="retrieve")
    other = PlanStep(kind="stop")

    assert list(PlanStep.model_fields) == ["kind", "args", "max_concurrency"]
    assert (step.kind, step.args, step.max_concurrency) == ("retrieve", {}, 1)
    assert step.args is not other.args
    for kind in ("retrieve", "web", "sql", "summarize", "route", "stop"):
        assert PlanStep(kind=kind).kind == kind
    with pytest.raises(ValidationError):
        PlanStep(kind="dance")


def test_thought_fields_and_done_default() -> None:
    """Thought(steps, rationale) keeps its steps and defaults done to False."""
    steps = [PlanStep(kind="web", args={"q": "penguins"}, max_concurrency=2)]
    thought = Thought(steps=steps, rationale="look it up")

    assert list(Thought.model_fields) == ["steps", "rationale", "done"]
    assert thought.steps == steps
    assert thought.rationale == "look it up"
    assert thought.done is False


def test_model_copy_with_another_trace_id_does_not_revalidate_the_traceparent() -> None:
    """model_copy(update={"trace_id": ...}) does not re-validate, so a contradicting traceparent is kept."""
    message = Message(payload="p", headers=Headers(tenant="t", traceparent=_TRACEPARENT))
    assert message.trace_id == _TRACE
    with pytest.raises(ValidationError, match=r"trace_id does not match headers\.traceparent"):
        Message(payload="p", headers=Headers(tenant="t", traceparent=_TRACEPARENT), trace_id=_OTHER_TRACE)

    copied = message.model_copy(update={"trace_id": _OTHER_TRACE})

    assert copied.trace_id == _OTHER_TRACE
    assert copied.headers.traceparent == _TRACEPARENT
    assert message.trace_id == _TRACE
