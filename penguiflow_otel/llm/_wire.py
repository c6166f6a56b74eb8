"""The chat-completions wire format: status mapping, ``Retry-After``, bodies and SSE streams."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from ..planner._errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMServerError,
)
from ._types import LLMResponse, LLMUsage, StreamCallback

__all__ = ["StreamAccumulator", "error_for_status", "parse_completion", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_BODY_EXCERPT = 300


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta seconds or an HTTP date; ``None`` if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_for_status(status: int, body: str, headers: Mapping[str, str]) -> LLMError:
    """The :class:`LLMError` for a non-2xx answer; the message carries a short excerpt of the body."""
    excerpt = " ".join(body.split())[:_BODY_EXCERPT]
    message = f"HTTP {status} from the chat-completions endpoint: {excerpt or '<empty body>'}"
    retry_after = parse_retry_after(headers.get("retry-after"))
    error_class: type[LLMError]
    if status in (401, 403):
        error_class = LLMAuthError
    elif status == 429:
        error_class = LLMRateLimitError
    elif status >= 500:
        error_class = LLMServerError
    else:
        error_class = LLMBadRequestError
    return error_class(
        message, status_code=status, retryable=status in RETRYABLE_STATUSES, retry_after_s=retry_after
    )


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def _usage(raw: object) -> LLMUsage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return LLMUsage(prompt, completion, cached if isinstance(cached, int) else None)


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_completion(body: bytes, status: int) -> LLMResponse:
    """Read a non-streamed chat completion.

    Raises:
        LLMResponseError: The body is not JSON, or has no choices.
    """
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise LLMResponseError(
            f"the endpoint's reply is not JSON (HTTP {status}, {len(body)} bytes)", status_code=status
        ) from exc
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMResponseError("the endpoint's reply has no choices", status_code=status)
    message = choices[0].get("message")
    content = _text_of(message.get("content")) if isinstance(message, dict) else ""
    return LLMResponse(
        content=content,
        usage=_usage(data.get("usage")),
        model=_optional_str(data.get("model")),
        response_id=_optional_str(data.get("id")),
        finish_reason=_optional_str(choices[0].get("finish_reason")),
    )


class StreamAccumulator:
    """Reads SSE lines of a streamed completion, forwarding each content delta."""

    __slots__ = ("_callback", "_done", "_finish_reason", "_model", "_parts", "_response_id", "_usage")

    def __init__(self, callback: StreamCallback | None) -> None:
        self._callback = callback
        self._parts: list[str] = []
        self._usage: LLMUsage | None = None
        self._model: str | None = None
        self._response_id: str | None = None
        self._finish_reason: str | None = None
        self._done = False

    @property
    def started(self) -> bool:
        """Whether any content was already forwarded (a retry would repeat it)."""
        return bool(self._parts)

    def feed_line(self, line: str) -> None:
        """Take one line of the event stream.

        Raises:
            LLMResponseError: A ``data:`` line that is not JSON.
        """
        if self._done or not line.startswith("data:"):
            return  # blank separators, comments, event names, or trailing data after [DONE]
        payload = line[5:].strip()
        if payload == "[DONE]":
            self._done = True
            return
        try:
            chunk: Any = json.loads(payload)
        except ValueError as exc:
            raise LLMResponseError("a streamed chunk is not JSON", retryable=False) from exc
        if isinstance(chunk, dict):
            self._take(chunk)

    def _take(self, chunk: dict[str, Any]) -> None:
        self._model = _optional_str(chunk.get("model")) or self._model
        self._response_id = _optional_str(chunk.get("id")) or self._response_id
        self._usage = _usage(chunk.get("usage")) or self._usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        self._finish_reason = _optional_str(choices[0].get("finish_reason")) or self._finish_reason
        delta = choices[0].get("delta")
        text = _text_of(delta.get("content")) if isinstance(delta, dict) else ""
        if text:
            self._parts.append(text)
            if self._callback is not None:
                self._callback(text, False)

    def finish(self) -> LLMResponse:
        """Close the stream: the final ``("", True)`` callback and the assembled response."""
        if self._callback is not None:
            self._callback("", True)
        return LLMResponse(
            content="".join(self._parts),
            usage=self._usage,
            model=self._model,
            response_id=self._response_id,
            finish_reason=self._finish_reason,
        )
