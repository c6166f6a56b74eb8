"""One LLM call inside a ``plan`` step: the ``chat`` span, deadline, usage and stream events."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from ..llm._types import LLMResponse, normalise_reply
from ..telemetry import names as n
from ._errors import LLMError
from ._prompt import Message
from ._telemetry import describe, genai_messages, record_exception

if TYPE_CHECKING:
    from ._run import PlannerRun

__all__ = ["LLMCallFailed", "call_llm"]

FailureCode: TypeAlias = Literal["llm_unavailable", "llm_error", "deadline"]


class LLMCallFailed(Exception):
    """The LLM call failed for good (after the client's own retries), or the deadline interrupted it."""

    def __init__(self, code: FailureCode, last_error: str, error_type: str) -> None:
        super().__init__(last_error)
        self.code: FailureCode = code
        self.last_error = last_error
        self.error_type = error_type


@dataclass(slots=True)
class _Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


class _StreamObserver:
    """The synchronous ``on_stream_chunk``: first-chunk timing and ``llm_stream_chunk`` events only."""

    _FINAL = re.compile(r'"next_node"\s*:\s*"final_response"')
    _ANSWER = re.compile(r'"answer"\s*:\s*"')

    def __init__(self, run: PlannerRun, span: Span, started: float) -> None:
        self._run, self._span, self._started = run, span, started
        self._buffer = ""
        self._emitted = 0
        self.first_chunk_s: float | None = None

    def __call__(self, text: str, done: bool) -> None:
        if text and self.first_chunk_s is None:
            self.first_chunk_s = time.perf_counter() - self._started
            if self._span.is_recording():
                self._span.set_attribute(n.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, self.first_chunk_s)
        self._buffer += text
        answer = self._answer_delta()
        channel, piece = ("answer", answer) if answer else ("action", text)
        if piece or done:
            self._run.emit("llm_stream_chunk", span=self._span, text=piece, done=done, channel=channel)

    def _answer_delta(self) -> str:
        if not self._FINAL.search(self._buffer):
            return ""
        match = self._ANSWER.search(self._buffer)
        if match is None:
            return ""
        decoded = _decode_partial_string(self._buffer, match.end())
        delta = decoded[self._emitted :]
        self._emitted = len(decoded)
        return delta


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _decode_partial_string(text: str, start: int) -> str:
    """Decode a JSON string body from ``start`` up to its closing quote or the end of what arrived."""
    out: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char == '"':
            break
        if char != "\\":
            out.append(char)
            index += 1
            continue
        if index + 1 >= len(text):
            break  # an escape cut by the chunk boundary: wait for the next chunk
        code = text[index + 1]
        if code == "u":
            digits = text[index + 2 : index + 6]
            if len(digits) < 4:
                break
            out.append(chr(int(digits, 16)) if all(c in "0123456789abcdefABCDEF" for c in digits) else "")
            index += 6
            continue
        out.append(_ESCAPES.get(code, code))
        index += 2
    return "".join(out)


def _chat_attributes(run: PlannerRun, attempt: int) -> dict[str, Any]:
    info = run.telemetry.info
    attributes: dict[str, Any] = {
        n.ATTR_GEN_AI_OUTPUT_TYPE: n.GEN_AI_OUTPUT_TYPE_JSON,
        n.ATTR_PLANNER_REPAIR_ATTEMPT: attempt,
        n.ATTR_LLM_RESPONSE_FORMAT: str(run.config.response_format.get("type", "none")),
    }
    if run.config.stream:
        attributes[n.ATTR_GEN_AI_REQUEST_STREAM] = True
    if info.temperature is not None:
        attributes[n.ATTR_GEN_AI_REQUEST_TEMPERATURE] = info.temperature
    if info.server_address is not None:
        attributes[n.ATTR_SERVER_ADDRESS] = info.server_address
    if info.server_port is not None:
        attributes[n.ATTR_SERVER_PORT] = info.server_port
    if run.session_id is not None:
        attributes[n.ATTR_GEN_AI_CONVERSATION_ID] = run.session_id
    return attributes


def _classify(exc: Exception, deadline_hit: bool) -> LLMCallFailed:
    if deadline_hit:
        return LLMCallFailed("deadline", "the run deadline passed during the LLM call", n.ERROR_TYPE_TIMEOUT)
    if isinstance(exc, LLMError):
        code: FailureCode = "llm_unavailable" if exc.retryable else "llm_error"
        return LLMCallFailed(code, exc.describe(), type(exc).__name__)
    return LLMCallFailed("llm_error", f"{type(exc).__name__}: {describe(exc)}", type(exc).__name__)


async def call_llm(
    run: PlannerRun, plan_span: Span, messages: list[Message], attempt: int, llm: dict[str, Any]
) -> LLMResponse:
    """Make one ``complete()`` call under a ``chat`` span that is current while the client runs.

    Raises:
        LLMCallFailed: The client failed, or the run deadline interrupted the call.
    """
    telemetry = run.telemetry
    model = telemetry.info.request_model
    plan_ctx = trace.set_span_in_context(plan_span, run.agent_ctx)
    span = telemetry.start_span(
        f"chat {model}" if model else n.SPAN_CHAT_UNKNOWN_MODEL,
        n.GEN_AI_OPERATION_CHAT,
        plan_ctx,
        kind=SpanKind.CLIENT,
        attributes=_chat_attributes(run, attempt),
    )
    if telemetry.capture:
        system = [m for m in messages if m["role"] == "system"]
        telemetry.set_content(span, n.ATTR_GEN_AI_SYSTEM_INSTRUCTIONS, genai_messages(system))
        telemetry.set_content(
            span, n.ATTR_GEN_AI_INPUT_MESSAGES, genai_messages([m for m in messages if m["role"] != "system"])
        )
    run.emit("llm_call_start", span=span, attempt=attempt)
    started, started_at = time.perf_counter(), run.config.wall()
    observer = _StreamObserver(run, span, started) if run.config.stream else None
    metric_attrs = telemetry.info.client_metric_attributes()
    try:
        response = await _complete(run, span, plan_ctx, messages, observer)
    except LLMCallFailed as failed:
        _end_failed_chat(run, span, failed, started, started_at, llm, metric_attrs)
        raise
    except BaseException:
        span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_CANCELLED)
        span.end()
        raise
    _end_chat(run, span, response, started, started_at, llm, metric_attrs, observer)
    return response


async def _complete(
    run: PlannerRun,
    span: Span,
    plan_ctx: otel_context.Context,
    messages: list[Message],
    observer: _StreamObserver | None,
) -> LLMResponse:
    timeout = run.deadline_timeout()
    token = otel_context.attach(trace.set_span_in_context(span, plan_ctx))
    try:
        async with timeout:
            raw = await run.config.client.complete(
                messages=messages,
                response_format=run.config.response_format,
                stream=run.config.stream,
                on_stream_chunk=observer,
            )
        return normalise_reply(raw)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failed = _classify(exc, timeout.expired())
        if not timeout.expired():
            record_exception(span, exc)
        raise failed from exc
    finally:
        otel_context.detach(token)


def _record_attempt(
    llm: dict[str, Any], started_at: float, ended_at: float, usage: _Usage, error_type: str | None
) -> None:
    llm["calls"] += 1
    for key in ("input_tokens", "output_tokens"):
        value = getattr(usage, key)
        if value is not None:
            llm[key] = (llm[key] or 0) + value
    llm["attempts"].append(
        {
            "started_at": started_at,
            "ended_at": ended_at,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "error_type": error_type,
        }
    )


def _end_failed_chat(
    run: PlannerRun,
    span: Span,
    failed: LLMCallFailed,
    started: float,
    started_at: float,
    llm: dict[str, Any],
    metric_attrs: dict[str, Any],
) -> None:
    duration = time.perf_counter() - started
    run.telemetry.fail(span, failed.error_type, failed.last_error)
    span.end()
    _record_attempt(llm, started_at, run.config.wall(), _Usage(), failed.error_type)
    run.telemetry.record("client_duration", duration, {**metric_attrs, n.ATTR_ERROR_TYPE: failed.error_type})
    run.emit(
        "llm_call_end",
        span=span,
        latency_ms=duration * 1000,
        error=failed.last_error,
        error_type=failed.error_type,
    )


def _end_chat(
    run: PlannerRun,
    span: Span,
    response: LLMResponse,
    started: float,
    started_at: float,
    llm: dict[str, Any],
    metric_attrs: dict[str, Any],
    observer: _StreamObserver | None,
) -> None:
    duration = time.perf_counter() - started
    usage = _Usage(*(response.usage.input_tokens, response.usage.output_tokens) if response.usage else ())
    if span.is_recording():
        attributes: dict[str, Any] = {
            n.ATTR_GEN_AI_RESPONSE_MODEL: response.model,
            n.ATTR_GEN_AI_RESPONSE_ID: response.response_id,
            n.ATTR_GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            n.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            n.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: (
                response.usage.cache_read_input_tokens if response.usage else None
            ),
        }
        span.set_attributes({key: value for key, value in attributes.items() if value is not None})
        if response.finish_reason:
            span.set_attribute(n.ATTR_GEN_AI_RESPONSE_FINISH_REASONS, [response.finish_reason])
        run.telemetry.set_content(
            span,
            n.ATTR_GEN_AI_OUTPUT_MESSAGES,
            genai_messages([{"role": "assistant", "content": response.content}]),
        )
    span.end()
    if response.cost_usd is not None:
        llm["cost_usd"] = (llm["cost_usd"] or 0.0) + response.cost_usd
    _record_attempt(llm, started_at, run.config.wall(), usage, None)
    attrs = dict(metric_attrs)
    if response.model:
        attrs[n.ATTR_GEN_AI_RESPONSE_MODEL] = response.model
    run.telemetry.record("client_duration", duration, attrs)
    if observer is not None and observer.first_chunk_s is not None:
        run.telemetry.record("time_to_first_chunk", observer.first_chunk_s, attrs)
    for token_type, count in (
        (n.GEN_AI_TOKEN_TYPE_INPUT, usage.input_tokens),
        (n.GEN_AI_TOKEN_TYPE_OUTPUT, usage.output_tokens),
    ):
        if count is not None:
            run.telemetry.record_tokens(token_type, count, attrs)
    run.emit(
        "llm_call_end",
        span=span,
        latency_ms=duration * 1000,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        model=response.model,
    )
