"""The LLM client seam: the :class:`JSONLLMClient` Protocol and the values it returns.

This module imports nothing from the planner, so the planner and every client can depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["JSONLLMClient", "LLMResponse", "LLMUsage", "StreamCallback", "normalise_reply"]

StreamCallback = Callable[[str, bool], None]
"""``on_stream_chunk(text, done)``: called per delta, then once with ``("", True)``."""


@dataclass(frozen=True, slots=True)
class LLMUsage:
    """Token counts of one completion, as the endpoint reported them."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """One completion: its text, and what the endpoint said about it."""

    content: str
    usage: LLMUsage | None = None
    model: str | None = None
    response_id: str | None = None
    finish_reason: str | None = None
    cost_usd: float | None = None


@runtime_checkable
class JSONLLMClient(Protocol):
    """What the planner calls: one chat completion per call, with these four keyword arguments.

    Optional attributes ``model``, ``provider_name`` and ``base_url`` enrich telemetry. Clients
    create no spans: the planner's ``chat`` span is current while ``complete()`` runs.
    """

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
    ) -> LLMResponse | str | tuple[str, float]: ...


def normalise_reply(reply: object) -> LLMResponse:
    """Turn what a client returned into an :class:`LLMResponse`.

    Accepts an ``LLMResponse``, a plain ``str`` and an upstream-style ``(text, cost)`` pair.

    Raises:
        TypeError: Anything else.
    """
    if isinstance(reply, LLMResponse):
        return reply
    if isinstance(reply, str):
        return LLMResponse(content=reply)
    if (
        isinstance(reply, tuple)
        and len(reply) == 2
        and isinstance(reply[0], str)
        and isinstance(reply[1], int | float)
    ):
        return LLMResponse(content=reply[0], cost_usd=float(reply[1]))
    raise TypeError(
        f"an LLM client returned {type(reply).__name__}; complete() must return LLMResponse, str "
        "or (str, cost)"
    )
