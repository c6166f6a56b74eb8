"""OpenAISDKClient: the same contract over the openai SDK, and a clear message when the extra is missing."""

from __future__ import annotations

import importlib
import sys

import openai
import pytest
from chat_server import chat_server, completion, error, stream
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from penguiflow_otel.llm import LLMAuthError, LLMRateLimitError
from penguiflow_otel.llm.openai_sdk import OpenAISDKClient
from penguiflow_otel.testing import capture_telemetry

MESSAGES = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "planner_action", "strict": False, "schema": {}}}


def sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)


async def test_a_completion_through_the_sdk_carries_usage_and_trace_context() -> None:
    """The adapter returns an LLMResponse and injects traceparent into the request headers."""
    async with chat_server(completion("hello")) as server:
        with capture_telemetry() as telemetry:
            async with sdk(server.base_url) as client:
                llm = OpenAISDKClient(client, model="test-model")
                with telemetry.tracer_provider.get_tracer("t").start_as_current_span("chat") as span:
                    response = await llm.complete(messages=MESSAGES, response_format=SCHEMA)
    assert response.content == "hello"
    assert response.usage is not None
    assert response.usage.input_tokens == 11
    context = trace.get_current_span(TraceContextTextMapPropagator().extract(server.received[0].headers))
    assert context.get_span_context().span_id == span.get_span_context().span_id
    assert server.received[0].body["response_format"] == SCHEMA


async def test_streaming_and_error_mapping() -> None:
    """Streamed deltas reach the callback; SDK errors become LLMError subclasses; formats downgrade."""
    chunks: list[tuple[str, bool]] = []
    async with (
        chat_server(
            stream("a", "b"),
            error(429, "slow"),
            error(401, "key"),
            error(400, "response_format unsupported"),
            completion("ok"),
        ) as server,
        sdk(server.base_url) as client,
    ):
        llm = OpenAISDKClient(client, model="m")
        streamed = await llm.complete(
            messages=MESSAGES, stream=True, on_stream_chunk=lambda t, d: chunks.append((t, d))
        )
        with pytest.raises(LLMRateLimitError):
            await llm.complete(messages=MESSAGES)
        with pytest.raises(LLMAuthError):
            await llm.complete(messages=MESSAGES)
        assert (await llm.complete(messages=MESSAGES, response_format=SCHEMA)).content == "ok"
    assert streamed.content == "ab"
    assert chunks[-1] == ("", True)
    assert streamed.usage is not None
    assert streamed.usage.output_tokens == 3
    assert server.received[-1].body["response_format"] == {"type": "json_object"}


def test_a_missing_openai_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the openai package the adapter module fails with an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.delitem(sys.modules, "penguiflow_otel.llm.openai_sdk")
    with pytest.raises(ImportError, match=r"penguiflow-otel\[openai\]"):
        importlib.import_module("penguiflow_otel.llm.openai_sdk")
