"""``ScriptedLLM``: a ``JSONLLMClient`` that replays a script, like an HTTP mock transport's handler."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..llm._types import LLMResponse, LLMUsage, StreamCallback

__all__ = ["Reply", "ScriptExhaustedError", "ScriptedCall", "ScriptedLLM"]

Reply: TypeAlias = "str | Mapping[str, Any] | LLMResponse | BaseException"
ReplyFunction: TypeAlias = Callable[[list[dict[str, str]]], "Reply | Awaitable[Reply]"]
UsageFunction: TypeAlias = Callable[[list[dict[str, str]], str], "LLMUsage | tuple[int, int]"]


class ScriptExhaustedError(AssertionError):
    """The LLM was called more times than the script has replies."""


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One call the planner made: what it sent and what the script answered."""

    messages: list[dict[str, str]]
    response_format: Mapping[str, Any] | None
    stream: bool
    started_at: float
    reply: Any


class ScriptedLLM:
    """A scripted LLM client for tests and offline demos.

    Args:
        script: Replies in order (a ``str`` as is, a ``Mapping`` JSON-encoded, an ``LLMResponse``,
            or an exception instance, raised), or a function ``(messages) -> reply`` (sync or
            async) called on every request.
        usage: ``None`` for deterministic fake usage (characters / 4, rounded up), a pair
            ``(input, output)``, or a function of ``(messages, reply_text)``.
        chunk_size: Characters per streamed chunk (default: the whole reply in one chunk).
        delay_s: Seconds to wait before each reply (for deadlines and cancellation).
    """

    def __init__(
        self,
        script: Sequence[Reply] | ReplyFunction,
        *,
        usage: tuple[int, int] | UsageFunction | None = None,
        model: str = "scripted-model",
        provider_name: str = "scripted",
        chunk_size: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        if isinstance(script, str | bytes) or not (callable(script) or isinstance(script, Sequence)):
            raise TypeError("script must be a sequence of replies or a function (messages) -> reply")
        self._function: ReplyFunction | None = script if callable(script) else None
        self._replies: list[Reply] = [] if callable(script) else list(script)
        self._position = 0
        self._usage = usage
        self.model = model
        self.provider_name = provider_name
        self.chunk_size = chunk_size
        self.delay_s = delay_s
        self.calls: list[ScriptedCall] = []

    def __repr__(self) -> str:
        return f"ScriptedLLM(calls={len(self.calls)}, remaining={self.remaining})"

    @property
    def remaining(self) -> int:
        """Replies not used yet (0 for a function script)."""
        return len(self._replies) - self._position

    # Reply builders -------------------------------------------------------------------------

    @staticmethod
    def call(tool: str, **args: Any) -> dict[str, Any]:
        """A reply calling ``tool`` with ``args``."""
        return {"next_node": tool, "args": args}

    @staticmethod
    def final(answer: str, **extra: Any) -> dict[str, Any]:
        """A reply finishing with ``answer`` (and optional final-response fields)."""
        return {"next_node": "final_response", "args": {"answer": answer, **extra}}

    @staticmethod
    def parallel(
        steps: Sequence[tuple[str, Mapping[str, Any]] | Mapping[str, Any]],
        join: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A parallel plan; each step is ``(tool, args)`` or ``{"node": ..., "args": ...}``."""
        rendered = [
            {"node": step[0], "args": dict(step[1])} if isinstance(step, tuple) else dict(step)
            for step in steps
        ]
        return {"next_node": "parallel", "args": {"steps": rendered, "join": dict(join) if join else None}}

    # The client -----------------------------------------------------------------------------

    async def _next_reply(self, messages: list[dict[str, str]]) -> Reply:
        if self._function is not None:
            reply = self._function(messages)
            return await reply if inspect.isawaitable(reply) else reply
        if self._position >= len(self._replies):
            raise ScriptExhaustedError(
                f"ScriptedLLM was called {len(self.calls)} times "
                f"but its script has {len(self._replies)} replies"
            )
        reply = self._replies[self._position]
        self._position += 1
        return reply

    def _fake_usage(self, messages: list[dict[str, str]], text: str) -> LLMUsage:
        if self._usage is None:
            prompt = sum(len(m.get("content", "")) for m in messages)
            return LLMUsage(math.ceil(prompt / 4), math.ceil(len(text) / 4))
        if isinstance(self._usage, tuple):
            return LLMUsage(*self._usage)
        produced = self._usage(messages, text)
        return produced if isinstance(produced, LLMUsage) else LLMUsage(*produced)

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
    ) -> LLMResponse:
        """Answer with the next scripted reply.

        Raises:
            ScriptExhaustedError: The list script has no reply left.
            BaseException: A scripted exception instance.
        """
        sent = [dict(message) for message in messages]
        started_at = time.time()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        try:
            reply = await self._next_reply(sent)
        except ScriptExhaustedError as exc:
            self.calls.append(ScriptedCall(sent, response_format, stream, started_at, exc))
            raise
        self.calls.append(ScriptedCall(sent, response_format, stream, started_at, reply))
        if isinstance(reply, BaseException):
            raise reply
        response = self._response(sent, reply)
        if stream and on_stream_chunk is not None:
            size = self.chunk_size or max(len(response.content), 1)
            for start in range(0, len(response.content), size):
                on_stream_chunk(response.content[start : start + size], False)
            on_stream_chunk("", True)
        return response

    def _response(self, messages: list[dict[str, str]], reply: Reply) -> LLMResponse:
        if isinstance(reply, LLMResponse):
            return reply
        text = reply if isinstance(reply, str) else json.dumps(dict(reply))  # type: ignore[arg-type]
        return LLMResponse(content=text, usage=self._fake_usage(messages, text), model=self.model)
