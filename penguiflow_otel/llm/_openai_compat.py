"""``OpenAICompatibleClient``: chat completions over httpx, for any OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import httpx
from opentelemetry import propagate, trace

from ..planner._errors import (
    LLMBadRequestError,
    LLMConfigError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
)
from ..telemetry import names
from ._types import LLMResponse, StreamCallback
from ._wire import StreamAccumulator, error_for_status, parse_completion

__all__ = ["DEFAULT_BASE_URL", "OpenAICompatibleClient", "ResponseFormatMode"]

ResponseFormatMode: TypeAlias = Literal["auto", "json_schema", "json_object", "none"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_LOGGER = logging.getLogger("penguiflow_otel.llm")
_MODES = ("auto", "json_schema", "json_object", "none")
_JSON_SCHEMA, _JSON_OBJECT, _NO_FORMAT = 0, 1, 2
_FORMAT_WORDS = ("response_format", "json_schema", "schema")


def _env(*keys: str) -> str | None:
    for key in keys:
        value = os.environ.get(key)
        if value:
            return value
    return None


class OpenAICompatibleClient:
    """A :class:`~penguiflow_otel.llm.JSONLLMClient` for ``POST {base_url}/chat/completions``.

    Arguments come first, then the environment: ``PENGUIFLOW_OTEL_LLM_MODEL``;
    ``PENGUIFLOW_OTEL_LLM_BASE_URL`` then ``OPENAI_BASE_URL`` (else OpenAI's public endpoint);
    ``PENGUIFLOW_OTEL_LLM_API_KEY`` then ``OPENAI_API_KEY``. Retryable failures (429, 500, 502,
    503, 504, connection errors, timeouts) are retried ``max_retries`` times with full-jitter
    backoff, or after ``Retry-After``. Every attempt carries the current trace context.

    Raises:
        LLMConfigError: No model; no API key for the default endpoint; an invalid option.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        provider_name: str = "openai",
        temperature: float = 0.0,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        timeout_s: float = 360.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        response_format_mode: ResponseFormatMode = "auto",
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        resolved_model = model or _env("PENGUIFLOW_OTEL_LLM_MODEL")
        if not resolved_model:
            raise LLMConfigError("no model: pass model=... or set PENGUIFLOW_OTEL_LLM_MODEL")
        custom_base = base_url or _env("PENGUIFLOW_OTEL_LLM_BASE_URL", "OPENAI_BASE_URL")
        key = api_key or _env("PENGUIFLOW_OTEL_LLM_API_KEY", "OPENAI_API_KEY")
        if key is None and custom_base is None:
            raise LLMConfigError(
                "no API key for the default OpenAI endpoint: pass api_key=... or set "
                "PENGUIFLOW_OTEL_LLM_API_KEY (or OPENAI_API_KEY); "
                "an endpoint given by base_url may be keyless"
            )
        if response_format_mode not in _MODES:
            raise LLMConfigError(
                f"response_format_mode must be one of {_MODES}, got {response_format_mode!r}"
            )
        if max_retries < 0 or timeout_s <= 0 or connect_timeout_s <= 0:
            raise LLMConfigError("max_retries must be >= 0 and timeouts > 0")
        self.model: str = resolved_model
        self.base_url: str = (custom_base or DEFAULT_BASE_URL).rstrip("/")
        self.provider_name = provider_name
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.reasoning_effort = reasoning_effort
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.response_format_mode: ResponseFormatMode = response_format_mode
        self._api_key = key
        self._headers = dict(headers or {})
        self._extra_body = dict(extra_body or {})
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._http = http_client
        self._owns_http = http_client is None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._format_floor = _JSON_SCHEMA  # sticky downgrade level (auto mode)
        self._stream_options = True  # sticky: dropped once an endpoint rejects it

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient(model={self.model!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> OpenAICompatibleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client this instance created (a client passed in stays open)."""
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # The call -------------------------------------------------------------------------------

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
    ) -> LLMResponse:
        """One chat completion, with retries and the structured-output fallback.

        Raises:
            LLMError: The subclass for the failure, after the retries (``.attempts`` tells how many).
        """
        retries = 0
        try:
            while True:
                try:
                    return await self._attempt(messages, response_format, stream, on_stream_chunk)
                except LLMError as exc:
                    if self._downgrade(exc, response_format, stream):
                        continue  # a downgrade costs no retry budget
                    if not exc.retryable or retries >= self.max_retries:
                        exc.attempts = retries + 1
                        raise
                    delay = self._backoff(retries, exc)
                    _LOGGER.debug("LLM attempt failed (%s); retrying in %.2fs", type(exc).__name__, delay)
                    retries += 1
                    await asyncio.sleep(delay)
        finally:
            if retries:
                span = trace.get_current_span()
                if span.is_recording():
                    span.set_attribute(names.ATTR_LLM_RETRIES, retries)

    def _backoff(self, retries: int, exc: LLMError) -> float:
        if exc.retry_after_s is not None:
            return min(self.backoff_max_s, exc.retry_after_s)
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * 2**retries))

    def _downgrade(self, exc: LLMError, response_format: Mapping[str, Any] | None, stream: bool) -> bool:
        if not isinstance(exc, LLMBadRequestError) or exc.status_code != 400:
            return False
        text = str(exc).lower()
        if stream and self._stream_options and "stream_options" in text:
            self._stream_options = False
            _LOGGER.warning("the endpoint rejects stream_options; streaming without usage from now on")
            return True
        if self.response_format_mode != "auto" or response_format is None:
            return False
        if not any(word in text for word in _FORMAT_WORDS):
            return False
        level = self._format_level(response_format)
        if level >= _NO_FORMAT:
            return False
        self._format_floor = level + 1
        kind = "json_object" if self._format_floor == _JSON_OBJECT else "no response_format"
        _LOGGER.warning("the endpoint rejects the response format; falling back to %s from now on", kind)
        return True

    # One HTTP attempt -----------------------------------------------------------------------

    def _format_level(self, response_format: Mapping[str, Any]) -> int:
        level = _JSON_OBJECT if response_format.get("type") == "json_object" else _JSON_SCHEMA
        return max(level, self._format_floor)

    def _effective_format(self, response_format: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        if response_format is None or self.response_format_mode == "none":
            return None
        if self.response_format_mode == "json_object":
            return {"type": "json_object"}
        if self.response_format_mode == "json_schema":
            return response_format
        level = self._format_level(response_format)
        if level == _JSON_SCHEMA:
            return response_format
        return {"type": "json_object"} if level == _JSON_OBJECT else None

    def _body(
        self, messages: Sequence[Mapping[str, str]], response_format: Mapping[str, Any] | None, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in messages],
            "temperature": self.temperature,
        }
        effective = self._effective_format(response_format)
        if effective is not None:
            body["response_format"] = dict(effective)
        if stream:
            body["stream"] = True
            if self._stream_options:
                body["stream_options"] = {"include_usage": True}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        body.update(self._extra_body)
        return body

    def _request_headers(self, stream: bool) -> dict[str, str]:
        headers = dict(self._headers)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if stream:
            headers["Accept"] = "text/event-stream"
        propagate.inject(headers)  # traceparent / tracestate of the current (chat) span
        return headers

    def _client(self) -> httpx.AsyncClient:
        if not self._owns_http:
            assert self._http is not None
            return self._http
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            # A pooled client belongs to one event loop; a new loop (a new asyncio.run) gets its own.
            self._http = httpx.AsyncClient(timeout=self._timeout)
            self._http_loop = loop
        return self._http

    async def _attempt(
        self,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        stream: bool,
        on_stream_chunk: StreamCallback | None,
    ) -> LLMResponse:
        url = f"{self.base_url}/chat/completions"
        body = self._body(messages, response_format, stream)
        headers = self._request_headers(stream)
        http = self._client()
        try:
            if stream:
                return await self._stream(http, url, body, headers, on_stream_chunk)
            response = await http.post(url, json=body, headers=headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise LLMTimeoutError(f"no answer from {url} within the timeout ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise LLMConnectionError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise error_for_status(response.status_code, response.text, response.headers)
        return parse_completion(response.content, response.status_code)

    async def _stream(
        self,
        http: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        on_stream_chunk: StreamCallback | None,
    ) -> LLMResponse:
        async with http.stream("POST", url, json=body, headers=headers, timeout=self._timeout) as response:
            if response.status_code >= 300:
                await response.aread()
                raise error_for_status(response.status_code, response.text, response.headers)
            accumulator = StreamAccumulator(on_stream_chunk)
            try:
                async for line in response.aiter_lines():
                    accumulator.feed_line(line)
            except httpx.TimeoutException as exc:
                # Once text reached the caller, a retry would repeat it: fail instead.
                raise LLMTimeoutError(
                    f"the stream from {url} stalled", retryable=not accumulator.started
                ) from exc
            except httpx.TransportError as exc:
                raise LLMConnectionError(
                    f"the stream from {url} broke: {type(exc).__name__}", retryable=not accumulator.started
                ) from exc
            return accumulator.finish()
