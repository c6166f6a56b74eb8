"""The message envelope, its headers, and the payload types the controller loop understands."""

from __future__ import annotations

import random
import time
from typing import Any, Generic, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypeVar

from .telemetry._w3c import parse_traceparent

__all__ = [
    "FinalAnswer",
    "Headers",
    "Message",
    "PlanStep",
    "StreamChunk",
    "Thought",
    "WM",
    "new_trace_id",
    "trace_id_was_minted",
]

T = TypeVar("T", default=Any)

_getrandbits = random.getrandbits


def new_trace_id() -> str:
    """A fresh random trace id: 32 lowercase hex characters, never all zeros (a W3C trace id)."""
    value = _getrandbits(128)
    while not value:  # pragma: no cover - probability 2**-128
        value = _getrandbits(128)
    return f"{value:032x}"


class Headers(BaseModel):
    """Routing and trace-context headers of a :class:`Message`."""

    model_config = ConfigDict(defer_build=True)

    tenant: str
    topic: str | None = None
    priority: int = 0
    traceparent: str | None = None
    tracestate: str | None = None


class Message(BaseModel, Generic[T]):
    """The envelope every traced item travels in.

    A valid ``headers.traceparent`` with no explicit ``trace_id`` sets ``trace_id`` to the
    traceparent's trace id; a given ``trace_id`` that contradicts it is a validation error. A
    malformed traceparent is kept as given and ignored.
    """

    model_config = ConfigDict(defer_build=True)

    payload: T
    headers: Headers
    trace_id: str = Field(default_factory=new_trace_id)
    ts: float = Field(default_factory=time.time)
    deadline_s: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _follow_traceparent(self) -> Message[T]:
        traceparent = self.headers.traceparent
        if traceparent is None:
            return self
        parsed = parse_traceparent(traceparent)
        if parsed is None:
            return self
        if "trace_id" in self.model_fields_set:
            if self.trace_id != parsed.trace_id:
                raise ValueError("trace_id does not match headers.traceparent")
            return self
        self.trace_id = parsed.trace_id
        return self


def trace_id_was_minted(message: Message[Any]) -> bool:
    """Whether the message's trace id is one the runtime minted (not supplied by a user or caller)."""
    return "trace_id" not in message.model_fields_set


class StreamChunk(BaseModel):
    """One chunk of a token or status stream."""

    model_config = ConfigDict(defer_build=True)

    stream_id: str
    seq: int
    text: str
    done: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)


class WM(BaseModel):
    """Working memory of a controller loop: hops and token budgets."""

    model_config = ConfigDict(defer_build=True)

    query: str
    facts: list[Any] = Field(default_factory=list)
    hops: int = 0
    budget_hops: int | None = 8
    tokens_used: int = 0
    budget_tokens: int | None = None
    confidence: float = 0.0


class FinalAnswer(BaseModel):
    """A final answer; delivered to the Rookery, skipping successors."""

    model_config = ConfigDict(defer_build=True)

    text: str
    citations: list[str] = Field(default_factory=list)


class PlanStep(BaseModel):
    """A planning step (not used by the runtime)."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["retrieve", "web", "sql", "summarize", "route", "stop"]
    args: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int = 1


class Thought(BaseModel):
    """A set of plan steps with a rationale (not used by the runtime)."""

    model_config = ConfigDict(defer_build=True)

    steps: list[PlanStep]
    rationale: str
    done: bool = False
