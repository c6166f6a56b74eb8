"""OpenAICompatibleClient against a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from chat_server import Behaviour, chat_server, completion, error, stream
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from weather_tools import get_weather

from penguiflow_otel.llm import (
    LLMAuthError,
    LLMBadRequestError,
    LLMConfigError,
    LLMConnectionError,
    LLMResponse,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    OpenAICompatibleClient,
)
from penguiflow_otel.planner import PlannerFinish, ReactPlanner
from penguiflow_otel.testing import capture_telemetry

MESSAGES = [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "hi"}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "planner_action", "strict": False, "schema": {}}}


def client(base_url: str, **options: Any) -> OpenAICompatibleClient:
    options.setdefault("backoff_base_s", 0.01)
    return OpenAICompatibleClient("test-model", base_url=base_url, api_key="sk-test", **options)


def parent_of(headers: dict[str, str]) -> int:
    """The parent span id of a valid W3C traceparent header (fails on an invalid one)."""
    context = trace.get_current_span(TraceContextTextMapPropagator().extract(headers)).get_span_context()
    assert context.is_valid, headers.get("traceparent")
    return context.span_id


async def test_a_plain_completion_returns_content_usage_and_sends_trace_context() -> None:
    """A 200 reply becomes an LLMResponse; the request carries the body, the key and a traceparent."""
    async with chat_server(completion('{"next_node": "final_response"}')) as server:
        with capture_telemetry() as telemetry:
            tracer = telemetry.tracer_provider.get_tracer("test")
            async with client(server.base_url, temperature=0.2, max_tokens=50) as llm:
                with tracer.start_as_current_span("caller") as span:
                    response = await llm.complete(messages=MESSAGES, response_format=SCHEMA)
    assert response == LLMResponse(
        '{"next_node": "final_response"}',
        usage=response.usage,
        model="served-model",
        response_id="chatcmpl-1",
        finish_reason="stop",
    )
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    (request,) = server.received
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert parent_of(request.headers) == span.get_span_context().span_id
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == MESSAGES
    assert (request.body["temperature"], request.body["max_tokens"]) == (0.2, 50)
    assert request.body["response_format"] == SCHEMA
    assert "stream" not in request.body


async def test_a_streamed_completion_forwards_deltas_and_reads_the_usage_chunk() -> None:
    """SSE deltas reach on_stream_chunk in order, then ("", True); usage comes from the last chunk."""
    seen: list[tuple[str, bool]] = []
    async with chat_server(stream('{"next_', 'node": 1}')) as server, client(server.base_url) as llm:
        response = await llm.complete(
            messages=MESSAGES, stream=True, on_stream_chunk=lambda text, done: seen.append((text, done))
        )
    assert seen == [('{"next_', False), ('node": 1}', False), ("", True)]
    assert response.content == '{"next_node": 1}'
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    assert response.finish_reason == "stop"
    body = server.received[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_a_429_is_retried_after_retry_after_and_every_attempt_carries_trace_context() -> None:
    """A 429 with Retry-After waits that long, retries, succeeds, and counts one retry on the span."""
    async with chat_server(error(429, "slow down", {"Retry-After": "0.2"}), completion("ok")) as server:
        with capture_telemetry() as telemetry:
            tracer = telemetry.tracer_provider.get_tracer("test")
            async with client(server.base_url) as llm:
                with tracer.start_as_current_span("chat test-model"):
                    started = time.perf_counter()
                    response = await llm.complete(messages=MESSAGES)
                    waited = time.perf_counter() - started
            (span,) = telemetry.spans("chat")
    assert response.content == "ok"
    assert waited >= 0.2
    assert len(server.received) == 2
    assert parent_of(server.received[0].headers) == parent_of(server.received[1].headers)
    assert span.attributes is not None
    assert span.attributes["penguiflow.llm.retries"] == 1


async def test_retry_after_is_capped_by_backoff_max() -> None:
    """A huge Retry-After waits at most backoff_max_s."""
    async with (
        chat_server(error(503, headers={"Retry-After": "3600"}), completion("ok")) as server,
        client(server.base_url, backoff_max_s=0.05) as llm,
    ):
        started = time.perf_counter()
        assert (await llm.complete(messages=MESSAGES)).content == "ok"
    assert time.perf_counter() - started < 2


async def test_a_500_is_retried_then_fails_with_the_attempt_count() -> None:
    """Persistent 500s give LLMServerError after max_retries + 1 attempts."""
    async with (
        chat_server(error(500, "boom"), error(500, "boom")) as server,
        client(server.base_url, max_retries=1) as llm,
    ):
        with pytest.raises(LLMServerError) as info:
            await llm.complete(messages=MESSAGES)
    assert (info.value.status_code, info.value.attempts, info.value.retryable) == (500, 2, True)
    assert "boom" in str(info.value)
    assert len(server.received) == 2


async def test_a_hang_ends_in_a_timeout_error() -> None:
    """A server that never answers gives LLMTimeoutError after timeout_s."""
    async with (
        chat_server(Behaviour("hang")) as server,
        client(server.base_url, timeout_s=0.3, max_retries=0) as llm,
    ):
        started = time.perf_counter()
        with pytest.raises(LLMTimeoutError):
            await llm.complete(messages=MESSAGES)
    assert 0.25 < time.perf_counter() - started < 5


async def test_invalid_json_is_a_response_error_and_not_retried() -> None:
    """A 200 whose body is not JSON is LLMResponseError, with no retry."""
    async with chat_server(Behaviour("raw", body=b"<html>oops")) as server, client(server.base_url) as llm:
        with pytest.raises(LLMResponseError, match="not JSON"):
            await llm.complete(messages=MESSAGES)
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("status", "error_class"), [(400, LLMBadRequestError), (401, LLMAuthError), (403, LLMAuthError)]
)
async def test_client_errors_are_not_retried(status: int, error_class: type[Exception]) -> None:
    """400, 401 and 403 fail at once."""
    async with chat_server(error(status, "nope")) as server, client(server.base_url) as llm:
        with pytest.raises(error_class):
            await llm.complete(messages=MESSAGES)
    assert len(server.received) == 1


async def test_response_format_downgrades_json_schema_to_json_object_to_none_and_sticks() -> None:
    """A 400 naming the schema downgrades without spending retries; later calls start downgraded."""
    async with (
        chat_server(
            error(400, "response_format json_schema is not supported"),
            error(400, "response_format json_object is not supported"),
            completion("a"),
            completion("b"),
        ) as server,
        client(server.base_url, max_retries=0) as llm,
    ):
        assert (await llm.complete(messages=MESSAGES, response_format=SCHEMA)).content == "a"
        assert (await llm.complete(messages=MESSAGES, response_format=SCHEMA)).content == "b"
    formats = [r.body.get("response_format") for r in server.received]
    assert formats == [SCHEMA, {"type": "json_object"}, None, None]


async def test_a_pinned_response_format_is_never_downgraded() -> None:
    """response_format_mode="json_schema" surfaces the 400."""
    async with (
        chat_server(error(400, "json_schema unsupported")) as server,
        client(server.base_url, response_format_mode="json_schema") as llm,
    ):
        with pytest.raises(LLMBadRequestError):
            await llm.complete(messages=MESSAGES, response_format=SCHEMA)


async def test_a_rejected_stream_options_is_dropped_and_retried() -> None:
    """A 400 about stream_options retries the stream without it."""
    async with (
        chat_server(error(400, "unknown field stream_options"), stream("x")) as server,
        client(server.base_url, max_retries=0) as llm,
    ):
        assert (await llm.complete(messages=MESSAGES, stream=True)).content == "x"
    assert "stream_options" not in server.received[1].body


async def test_an_unreachable_endpoint_is_a_retryable_connection_error() -> None:
    """A closed port gives LLMConnectionError after the retries."""
    async with chat_server() as server:
        base_url = server.base_url
    async with client(base_url, max_retries=1) as llm:
        with pytest.raises(LLMConnectionError) as info:
            await llm.complete(messages=MESSAGES)
    assert info.value.attempts == 2


def test_configuration_comes_from_arguments_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model, base URL and key fall back to the PENGUIFLOW_OTEL_LLM_* then OPENAI_* variables."""
    monkeypatch.setenv("PENGUIFLOW_OTEL_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.delenv("PENGUIFLOW_OTEL_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("PENGUIFLOW_OTEL_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = OpenAICompatibleClient()
    assert (llm.model, llm.base_url) == ("env-model", "http://127.0.0.1:9/v1")
    assert "sk" not in repr(llm)


def test_missing_model_or_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No model, or no key for the default endpoint, fails at construction with the fix."""
    for name in (
        "PENGUIFLOW_OTEL_LLM_MODEL",
        "PENGUIFLOW_OTEL_LLM_BASE_URL",
        "OPENAI_BASE_URL",
        "PENGUIFLOW_OTEL_LLM_API_KEY",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LLMConfigError, match="PENGUIFLOW_OTEL_LLM_MODEL"):
        OpenAICompatibleClient()
    with pytest.raises(LLMConfigError, match="no API key for the default OpenAI endpoint"):
        OpenAICompatibleClient("gpt-4o-mini")


async def test_the_planner_over_http_makes_chat_the_parent_of_each_request() -> None:
    """Through the planner, every request's traceparent names its own chat span as parent."""
    replies = [
        completion(json.dumps({"next_node": "get_weather", "args": {"city": "Lima"}})),
        completion(json.dumps({"next_node": "final_response", "args": {"answer": "18"}})),
    ]
    async with chat_server(*replies) as server:
        with capture_telemetry() as telemetry:
            planner = ReactPlanner(
                {"model": "test-model", "base_url": server.base_url, "api_key": "k"}, nodes=[get_weather]
            )
            result = await planner.run("weather?")
            chats = telemetry.spans("chat")
            (agent,) = telemetry.spans("invoke_agent")
        await planner.llm_client.aclose()  # type: ignore[attr-defined]
    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    chat_ids = sorted(span.context.span_id for span in chats if span.context is not None)
    assert sorted(parent_of(r.headers) for r in server.received) == chat_ids
    first = chats[0]
    assert first.name == "chat test-model"
    assert first.kind == trace.SpanKind.CLIENT
    assert first.attributes is not None
    assert (first.attributes["server.address"], first.attributes["server.port"]) == ("127.0.0.1", server.port)
    assert first.attributes["gen_ai.usage.input_tokens"] == 11
    assert first.attributes["gen_ai.response.model"] == "served-model"
    assert agent.attributes is not None
    assert agent.attributes["gen_ai.request.temperature"] == 0.0


async def test_a_caller_supplied_http_client_is_used_and_left_open() -> None:
    """http_client= is used for requests and aclose() does not close it."""
    async with chat_server(completion("ok")) as server, httpx.AsyncClient() as http:
        llm = client(server.base_url, http_client=http)
        assert (await llm.complete(messages=MESSAGES)).content == "ok"
        await llm.aclose()
        assert not http.is_closed


async def test_llm_timeout_retries_and_reasoning_effort_reach_the_built_in_client() -> None:
    """llm_timeout_s, llm_max_retries and reasoning_effort configure the client built from llm=."""
    settings = {"model": "test-model", "api_key": "k"}
    defaults = ReactPlanner({**settings, "base_url": "http://127.0.0.1:9/v1"}, nodes=[get_weather])
    assert isinstance(defaults.llm_client, OpenAICompatibleClient)
    built_defaults = defaults.llm_client
    assert (built_defaults.timeout_s, built_defaults.max_retries) == (360.0, 3)
    assert built_defaults.reasoning_effort is None
    behaviours = [error(500, "busy"), error(500, "busy"), Behaviour("hang"), Behaviour("hang")]
    async with chat_server(*behaviours) as server:
        planner = ReactPlanner(
            {**settings, "base_url": server.base_url},
            nodes=[get_weather],
            llm_timeout_s=0.2,
            llm_max_retries=1,
            reasoning_effort="low",
            deadline_s=10,
        )
        llm = planner.llm_client
        assert isinstance(llm, OpenAICompatibleClient)
        assert (llm.timeout_s, llm.max_retries, llm.reasoning_effort) == (0.2, 1, "low")
        # two 500s: one attempt plus llm_max_retries=1 retry, then the run gives up
        busy = await planner.run("weather?")
        assert len(server.received) == 2
        # a hanging endpoint: each attempt ends at llm_timeout_s, long before the 10 s deadline
        hung = await planner.run("weather?")
        await llm.aclose()
    for result in (busy, hung):
        assert isinstance(result, PlannerFinish)
        assert (result.reason, result.payload["failure_reason"]) == ("no_path", "llm_unavailable")
    assert "LLMServerError (HTTP 500)" in busy.payload["last_error"]
    assert "LLMTimeoutError" in hung.payload["last_error"]
    assert len(server.received) == 4
    assert [r.body["reasoning_effort"] for r in server.received] == ["low"] * 4
