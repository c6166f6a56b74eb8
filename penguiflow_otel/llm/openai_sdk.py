"""``OpenAISDKClient``: the planner's client contract over the official ``openai`` SDK (extra ``openai``).

Retries and timeouts are the SDK's own (``max_retries``, ``timeout`` on ``openai.AsyncOpenAI``); SDK
exceptions become the :class:`~penguiflow_otel.llm.LLMError` subclasses, and the current trace
context rides on every request's ``extra_headers``. If the SDK's own OpenTelemetry
instrumentation is also on, each call shows two ``chat`` spans: enable only one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import propagate

from ..planner._errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
)
from ._openai_compat import ResponseFormatMode
from ._types import LLMResponse, LLMUsage, StreamCallback
from ._wire import RETRYABLE_STATUSES

try:
    import openai
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "penguiflow_otel.llm.openai_sdk needs the 'openai' extra: "
        "pip install 'penguiflow-otel[openai]' (or: uv add 'penguiflow-otel[openai]')"
    ) from exc

__all__ = ["OpenAISDKClient"]

_LOGGER = logging.getLogger("penguiflow_otel.llm")
_FORMAT_WORDS = ("response_format", "json_schema", "schema")


def _map_error(exc: Exception) -> LLMError:
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(f"the OpenAI SDK timed out: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        return LLMConnectionError(f"the OpenAI SDK cannot reach the endpoint: {exc}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        error_class: type[LLMError] = LLMBadRequestError
        if status in (401, 403):
            error_class = LLMAuthError
        elif status == 429:
            error_class = LLMRateLimitError
        elif status >= 500:
            error_class = LLMServerError
        return error_class(
            f"HTTP {status}: {exc.message}", status_code=status, retryable=status in RETRYABLE_STATUSES
        )
    return LLMResponseError(f"the OpenAI SDK failed: {type(exc).__name__}: {exc}")


class OpenAISDKClient:
    """A :class:`~penguiflow_otel.llm.JSONLLMClient` over ``openai.AsyncOpenAI``.

    Args:
        client: The SDK client; ``None`` builds ``openai.AsyncOpenAI()`` from the SDK's own environment.
        model: The model string, sent verbatim.
        provider_name: ``gen_ai.provider.name`` on the planner's spans.
        response_format_mode: ``"auto"`` downgrades json_schema → json_object → none on a 400 that
            names the format (sticky); the other modes pin one level.
        **request_defaults: Sent with every request (``temperature``, ``max_tokens``, ...).
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI | None = None,
        *,
        model: str,
        provider_name: str = "openai",
        response_format_mode: ResponseFormatMode = "auto",
        **request_defaults: Any,
    ) -> None:
        self._client = client if client is not None else openai.AsyncOpenAI()
        self.model = model
        self.provider_name = provider_name
        self.base_url = str(self._client.base_url).rstrip("/")
        self.response_format_mode: ResponseFormatMode = response_format_mode
        self._defaults = dict(request_defaults)
        self._format_floor = 0

    def _effective_format(self, response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if response_format is None or self.response_format_mode == "none":
            return None
        if self.response_format_mode == "json_object":
            return {"type": "json_object"}
        if self.response_format_mode == "json_schema":
            return dict(response_format)
        level = max(1 if response_format.get("type") == "json_object" else 0, self._format_floor)
        return [dict(response_format), {"type": "json_object"}, None][level]

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: StreamCallback | None = None,
    ) -> LLMResponse:
        """One chat completion through the SDK.

        Raises:
            LLMError: The subclass matching the SDK's exception.
        """
        while True:
            try:
                return await self._request(messages, response_format, stream, on_stream_chunk)
            except openai.BadRequestError as exc:
                text = str(exc).lower()
                downgradable = self.response_format_mode == "auto" and response_format is not None
                if downgradable and self._format_floor < 2 and any(w in text for w in _FORMAT_WORDS):
                    self._format_floor += 1
                    _LOGGER.warning("the endpoint rejects the response format; downgrading (sticky)")
                    continue
                raise _map_error(exc) from exc
            except openai.OpenAIError as exc:
                raise _map_error(exc) from exc

    async def _request(
        self,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        stream: bool,
        on_stream_chunk: StreamCallback | None,
    ) -> LLMResponse:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        kwargs: dict[str, Any] = {
            **self._defaults,
            "model": self.model,
            "messages": [dict(m) for m in messages],
        }
        effective = self._effective_format(response_format)
        if effective is not None:
            kwargs["response_format"] = effective
        kwargs["extra_headers"] = {**kwargs.get("extra_headers", {}), **carrier}
        create: Any = self._client.chat.completions.create
        if not stream:
            completion = await create(**kwargs)
            return self._response(completion)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        usage: LLMUsage | None = None
        model = response_id = finish_reason = None
        async for chunk in await create(**kwargs):
            model, response_id = chunk.model or model, chunk.id or response_id
            usage = self._usage(chunk.usage) or usage
            if chunk.choices:
                finish_reason = chunk.choices[0].finish_reason or finish_reason
                text = chunk.choices[0].delta.content or ""
                if text:
                    parts.append(text)
                    if on_stream_chunk is not None:
                        on_stream_chunk(text, False)
        if on_stream_chunk is not None:
            on_stream_chunk("", True)
        return LLMResponse("".join(parts), usage, model, response_id, finish_reason)

    @staticmethod
    def _usage(raw: Any) -> LLMUsage | None:
        if raw is None:
            return None
        details = getattr(raw, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) if details is not None else None
        return LLMUsage(raw.prompt_tokens, raw.completion_tokens, cached)

    def _response(self, completion: Any) -> LLMResponse:
        if not completion.choices:
            raise LLMResponseError("the endpoint's reply has no choices")
        choice = completion.choices[0]
        return LLMResponse(
            content=choice.message.content or "",
            usage=self._usage(completion.usage),
            model=completion.model,
            response_id=completion.id,
            finish_reason=choice.finish_reason,
        )
