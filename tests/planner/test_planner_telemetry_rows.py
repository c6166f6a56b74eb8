"""Planner telemetry rows of planner.md §6, §7 and §10 that need a dedicated scenario each.

The message deadline of a planner node, the ``chat`` span of a client without a model, the clamp
attributes of ``execute_tool``, status descriptions, the content-capture switch and its truncation,
streams closed early, and the sampling-relevant attributes seen by a sampler at span start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from flowkit import EventRecorder
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as OTelContext
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from pydantic import BaseModel
from weather_tools import CityArgs, Weather, get_weather

from penguiflow_otel import FlowError, Headers, Message, create
from penguiflow_otel.llm import LLMResponse
from penguiflow_otel.planner import (
    ObservationGuardrailConfig,
    PlannerEvent,
    PlannerFinish,
    ReactPlanner,
    ToolContext,
    planner_node,
)
from penguiflow_otel.testing import ManualClock, ScriptedLLM, capture_telemetry

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_LIMIT = 16_384
SAMPLING_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.agent.name")


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def status(span: ReadableSpan) -> tuple[str, str | None]:
    return span.status.status_code.name, span.status.description


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def steps_of(result: PlannerFinish) -> list[dict[str, Any]]:
    steps = result.metadata["trajectory"]["steps"]
    assert isinstance(steps, list)
    return steps


# §6: the message deadline of a planner node is the runtime's --------------------------------


@pytest.mark.parametrize("emit_errors_to_rookery", [True, False])
async def test_a_message_deadline_cancels_the_planner_attempt_and_fails_it_deadline_exceeded(
    recorder: EventRecorder, emit_errors_to_rookery: bool
) -> None:
    """The runtime cancels the attempt at the message deadline: planner spans end cancelled (UNSET),
    the node attempt fails DEADLINE_EXCEEDED, and the caller gets a FlowError only when errors go
    to the Rookery."""
    llm_called = asyncio.Event()

    async def never_answers(messages: list[dict[str, str]]) -> str:
        llm_called.set()
        await asyncio.Event().wait()
        raise AssertionError("the runtime deadline cancels this call")

    planner = ReactPlanner(llm_client=ScriptedLLM(never_answers), nodes=[get_weather], name="support_agent")
    clock = ManualClock()
    with capture_telemetry() as telemetry:
        flow = create(
            planner_node(planner).to(),
            clock=clock,
            middlewares=[recorder],
            emit_errors_to_rookery=emit_errors_to_rookery,
        )
        flow.run()
        message = Message(payload="weather?", headers=Headers(tenant="acme"), deadline_s=clock.time() + 0.05)
        await flow.emit(message, trace_id=message.trace_id)
        if emit_errors_to_rookery:
            async with asyncio.timeout(5):
                error = await flow.fetch(trace_id=message.trace_id)
        else:
            await recorder.wait_for("node_failed")
            assert flow.statistics().buffered_results == 0  # nothing for that trace
            error = None
        await flow.stop()
        assert llm_called.is_set()
        assert telemetry.open_spans() == []
        (root,) = telemetry.spans("flow ")
        (node_span,) = telemetry.spans("node support_agent")
        (agent,) = telemetry.spans("invoke_agent")
        (plan,) = telemetry.spans("plan")
        (chat,) = telemetry.spans("chat")
    (failed,) = recorder.of("node_failed")
    assert failed.trace_id == message.trace_id
    if emit_errors_to_rookery:
        assert isinstance(error, FlowError)
        assert (error.code, error.trace_id, error.node_name) == (
            "DEADLINE_EXCEEDED",
            message.trace_id,
            "support_agent",
        )
    assert (attrs(root)["penguiflow.outcome"], status(root)[0]) == ("error", "ERROR")
    assert attrs(node_span)["penguiflow.outcome"] == "error"
    assert attrs(node_span)["error.type"] == "deadline_exceeded"
    assert status(node_span)[0] == "ERROR"
    for span in (agent, plan, chat):
        assert attrs(span)["penguiflow.outcome"] == "cancelled", span.name
        assert status(span) == ("UNSET", None), span.name
        assert "error.type" not in attrs(span), span.name
    assert agent.parent is not None
    assert node_span.context is not None
    assert agent.parent.span_id == node_span.context.span_id


# §7.1: the chat span of a client that names no model ---------------------------------------


class AnonymousLLM:
    """A client with no ``model``, ``provider_name`` or ``base_url`` attribute."""

    def __init__(self, replies: Sequence[Mapping[str, Any]]) -> None:
        self.replies = list(replies)

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> str:
        return json.dumps(self.replies.pop(0))


async def test_the_chat_span_is_named_chat_when_the_client_has_no_model() -> None:
    """Without a model attribute the span is ``chat`` (no suffix) and no span claims a request model."""
    llm = AnonymousLLM([ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("18")])
    with capture_telemetry() as telemetry:
        result = await ReactPlanner(llm_client=llm, nodes=[get_weather], name="support_agent").run("q")
        chats = telemetry.spans("chat")
        everything = telemetry.spans()
    assert result.reason == "answer_complete"
    assert [span.name for span in chats] == ["chat", "chat"]
    assert all(span.kind == SpanKind.CLIENT for span in chats)
    for span in everything:
        assert "None" not in span.name
        assert "gen_ai.request.model" not in attrs(span), span.name


# §7.2: observation_clamped -> tool.observation.* on execute_tool ---------------------------


class Report(BaseModel):
    """A large tool result."""

    city: str
    text: str


async def long_report(args: CityArgs, ctx: ToolContext) -> Report:
    """A report far larger than the guardrail lets the LLM see."""
    return Report(city=args.city, text="x" * 5_000)


async def test_a_clamped_observation_puts_its_sizes_on_the_execute_tool_span() -> None:
    """The clamp sets clamped / original_chars / clamped_chars on its execute_tool span only."""
    events: list[PlannerEvent] = []
    llm = ScriptedLLM(
        [
            ScriptedLLM.call("long_report", city="Lima"),
            ScriptedLLM.call("get_weather", city="Lima"),
            ScriptedLLM.final("done"),
        ]
    )
    planner = ReactPlanner(
        llm_client=llm,
        nodes=[long_report, get_weather],
        observation_guardrail=ObservationGuardrailConfig(
            max_observation_chars=1_000, max_field_chars=200, preview_length=50
        ),
        event_callback=events.append,
    )
    with capture_telemetry() as telemetry:
        result = await planner.run("q")
        clamped_span, plain_span = telemetry.spans("execute_tool")
    assert isinstance(result, PlannerFinish)
    step = steps_of(result)[0]
    original, clamped = len(compact(step["observation"])), len(compact(step["llm_observation"]))
    assert clamped < 1_000 < original
    a = attrs(clamped_span)
    assert clamped_span.name == "execute_tool long_report"
    assert a["penguiflow.tool.observation.clamped"] is True
    assert a["penguiflow.tool.observation.original_chars"] == original
    assert a["penguiflow.tool.observation.clamped_chars"] == clamped
    (event,) = [e for e in events if e.event_type == "observation_clamped"]
    assert (event.extra["original_size"], event.extra["clamped_size"]) == (original, clamped)
    assert not [key for key in attrs(plain_span) if key.startswith("penguiflow.tool.observation.")]


# §7.4: status descriptions ------------------------------------------------------------------


SECRET = "SECRET-INPUT-4111"


async def test_status_descriptions_are_cut_to_256_characters() -> None:
    """A long tool error and a long client error give 256-character descriptions."""
    message = "tool broke: " + "t" * 1_000

    async def breaks(args: CityArgs, ctx: ToolContext) -> Weather:
        raise RuntimeError(message)

    llm = ScriptedLLM([ScriptedLLM.call("breaks", city="A"), RuntimeError("client broke: " + "c" * 1_000)])
    with capture_telemetry() as telemetry:
        result = await ReactPlanner(llm_client=llm, nodes=[breaks]).run("q")
        (tool_span,) = telemetry.spans("execute_tool")
        chat = telemetry.spans("chat")[-1]
    assert result.reason == "no_path"
    assert attrs(tool_span)["error.type"] == "RuntimeError"
    assert status(tool_span) == ("ERROR", message[:256])
    chat_status, chat_description = status(chat)
    assert (chat_status, attrs(chat)["error.type"]) == ("ERROR", "RuntimeError")
    assert chat_description is not None
    assert len(chat_description) == 256
    assert "client broke: ccc" in chat_description


async def test_validation_error_descriptions_carry_no_input_values() -> None:
    """Invalid tool output and a ValidationError raised by a tool are described without input values."""

    async def bad_output(args: CityArgs, ctx: ToolContext) -> Weather:
        return {"city": args.city, "temp_c": SECRET}  # type: ignore[return-value]

    async def raises_validation(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather.model_validate({"city": args.city, "temp_c": SECRET})

    llm = ScriptedLLM(
        [
            ScriptedLLM.call("bad_output", city="A"),
            ScriptedLLM.call("raises_validation", city="A"),
            ScriptedLLM.final("done"),
        ]
    )
    with capture_telemetry() as telemetry:
        await ReactPlanner(llm_client=llm, nodes=[bad_output, raises_validation]).run("q")
        invalid, raised = telemetry.spans("execute_tool")
    assert (attrs(invalid)["error.type"], attrs(raised)["error.type"]) == (
        "invalid_output",
        "ValidationError",
    )
    for span in (invalid, raised):
        code, description = status(span)
        assert code == "ERROR"
        assert description is not None
        assert "temp_c" in description
        assert SECRET not in description
        assert "input_value" not in description
        for event in span.events:
            assert SECRET not in json.dumps(dict(event.attributes or {})), (span.name, event.name)


# §7.5: the content switch and truncation ----------------------------------------------------


async def test_an_unrecognised_capture_value_warns_once_and_leaves_capture_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT value logs one warning over runs."""
    value = f"maybe-{uuid.uuid4().hex[:8]}"  # fresh, so an earlier test cannot have used up the warning
    monkeypatch.setenv(CAPTURE_ENV, value)
    caplog.set_level(logging.WARNING)
    with capture_telemetry() as telemetry:
        for _ in range(3):
            llm = ScriptedLLM([ScriptedLLM.final("done")])
            await ReactPlanner(llm_client=llm, nodes=[get_weather]).run("my secret query")
        agents = telemetry.spans("invoke_agent")
        chats = telemetry.spans("chat")
    warnings = [record for record in caplog.records if CAPTURE_ENV in record.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert value in warnings[0].getMessage()
    assert len(agents) == 3
    for span in agents + chats:
        assert not [key for key in attrs(span) if key.startswith("gen_ai.input.")], span.name


@pytest.mark.parametrize("value", ["false", "", "TRUE"])
async def test_a_recognised_capture_value_logs_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    """Recognised values (on or off) never warn."""
    monkeypatch.setenv(CAPTURE_ENV, value)
    caplog.set_level(logging.WARNING)
    await ReactPlanner(llm_client=ScriptedLLM([ScriptedLLM.final("done")]), nodes=[get_weather]).run("q")
    assert not [record for record in caplog.records if CAPTURE_ENV in record.getMessage()]


class Essay(BaseModel):
    """A very long tool result."""

    text: str


async def essay(args: CityArgs, ctx: ToolContext) -> Essay:
    """Twenty thousand characters."""
    return Essay(text="e" * 20_000)


MARKER = re.compile(r"…\[truncated (\d+) chars\]\Z")


def assert_truncated(value: object, full: str) -> None:
    """``value`` is ``full`` cut to 16 384 characters, followed by the marker naming the cut length."""
    assert isinstance(value, str)
    assert len(full) > CONTENT_LIMIT
    assert value[:CONTENT_LIMIT] == full[:CONTENT_LIMIT]
    match = MARKER.fullmatch(value[CONTENT_LIMIT:])
    assert match is not None, value[CONTENT_LIMIT:][:80]
    assert int(match.group(1)) == len(full) - CONTENT_LIMIT


async def test_captured_content_is_cut_to_16384_characters_with_a_marker() -> None:
    """A long query and a long tool result are cut to 16 384 characters plus a marker; short ones are not."""
    query = "q" * 20_000
    llm = ScriptedLLM([ScriptedLLM.call("essay", city="Lima"), ScriptedLLM.final("short answer")])
    with capture_telemetry() as telemetry:
        await ReactPlanner(llm_client=llm, nodes=[essay], capture_content=True).run(query)
        (agent,) = telemetry.spans("invoke_agent")
        (tool_span,) = telemetry.spans("execute_tool")
        first_chat = telemetry.spans("chat")[0]
    user = [{"role": "user", "parts": [{"type": "text", "content": query}]}]
    assert_truncated(attrs(agent)["gen_ai.input.messages"], json.dumps(user, ensure_ascii=False))
    assert_truncated(
        attrs(tool_span)["gen_ai.tool.call.result"], json.dumps({"text": "e" * 20_000}, ensure_ascii=False)
    )
    chat_input = attrs(first_chat)["gen_ai.input.messages"]
    assert isinstance(chat_input, str)
    assert len(chat_input) <= CONTENT_LIMIT + len("…[truncated 99999 chars]")
    assert MARKER.search(chat_input) is not None
    assert attrs(tool_span)["gen_ai.tool.call.arguments"] == '{"city": "Lima"}'
    assert "short answer" in attrs(agent)["gen_ai.output.messages"]
    assert MARKER.search(attrs(agent)["gen_ai.output.messages"]) is None


# §7.6.3: no context attached across a yield or the stream callback --------------------------


class StallingStream:
    """A streaming client: sends the start of a final answer, then stalls until cancelled.

    It records whether the OTel context changed across each ``on_stream_chunk`` call, and which
    span was current while it ran.
    """

    model = "stream-model"

    def __init__(self) -> None:
        self.context_changed: list[bool] = []
        self.current_span_ids: list[int] = []

    async def pieces(self) -> AsyncIterator[str]:
        yield '{"next_node": "final_response", '
        yield '"args": {"answer": "It is '
        await asyncio.Event().wait()  # the rest of the reply never arrives
        yield '18"}}'

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> LLMResponse:
        assert stream
        assert on_stream_chunk is not None
        text = ""
        async for piece in self.pieces():
            before: OTelContext = otel_context.get_current()
            self.current_span_ids.append(trace.get_current_span().get_span_context().span_id)
            on_stream_chunk(piece, False)
            self.context_changed.append(otel_context.get_current() is not before)
            text += piece
        on_stream_chunk("", True)
        return LLMResponse(content=text)


async def answer_chunks(planner: ReactPlanner, query: str) -> AsyncGenerator[str, None]:
    """The answer text of ``planner.run(query)``, streamed as an app would; closing cancels the run."""
    chunks: asyncio.Queue[str] = asyncio.Queue()

    def on_event(event: PlannerEvent) -> None:
        if event.event_type == "llm_stream_chunk" and event.extra.get("channel") == "answer":
            chunks.put_nowait(str(event.extra["text"]))

    run = asyncio.create_task(planner.run(query, event_callback=on_event))
    try:
        while True:
            yield await chunks.get()
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def test_a_stream_closed_early_leaves_no_open_span_and_no_attached_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closing a streamed reply early (from another task) ends every span cancelled; the stream
    callback attaches no context, and no "Failed to detach context" error is logged."""
    caplog.set_level(logging.DEBUG)
    client = StallingStream()
    planner = ReactPlanner(llm_client=client, nodes=[get_weather], stream_final_response=True)
    with capture_telemetry() as telemetry:
        stream = answer_chunks(planner, "weather?")
        assert await anext(stream) == "It is "
        await asyncio.create_task(stream.aclose())
        assert telemetry.open_spans() == []
        (agent,) = telemetry.spans("invoke_agent")
        (plan,) = telemetry.spans("plan")
        (chat,) = telemetry.spans("chat")
    assert client.context_changed == [False, False]
    assert chat.context is not None
    assert client.current_span_ids == [chat.context.span_id] * 2
    assert "gen_ai.response.time_to_first_chunk" in attrs(chat)
    for span in (agent, plan, chat):
        assert attrs(span)["penguiflow.outcome"] == "cancelled", span.name
        assert status(span)[0] == "UNSET", span.name
    assert not [record for record in caplog.records if "Failed to detach context" in record.getMessage()]


# §10: sampling-relevant attributes are there at span start ----------------------------------


class RecordingSampler(Sampler):
    """Samples everything and keeps the name and attributes of each ``should_sample`` call."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def should_sample(
        self,
        parent_context: OTelContext | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append((name, dict(attributes or {})))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


class RemoteLLM(ScriptedLLM):
    """A scripted client that says where its endpoint is."""

    base_url = "https://llm.example.com:8443/v1"


async def test_a_sampler_sees_the_sampling_attributes_at_span_start() -> None:
    """Every planner span reaches should_sample with operation, provider, model and agent; chat also
    with server.address and server.port."""
    sampler = RecordingSampler()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llm = RemoteLLM(
        [ScriptedLLM.call("get_weather", city="Lima"), ScriptedLLM.final("18")],
        model="gpt-test",
        provider_name="openai",
    )
    planner = ReactPlanner(
        llm_client=llm, nodes=[get_weather], name="support_agent", tracer_provider=provider
    )
    try:
        result = await planner.run("weather?")
    finally:
        provider.shutdown()
    assert result.reason == "answer_complete"
    assert [name for name, _ in sampler.seen] == [
        "invoke_agent support_agent",
        "plan support_agent",
        "chat gpt-test",
        "execute_tool get_weather",
        "plan support_agent",
        "chat gpt-test",
    ]
    assert [span.name for span in exporter.get_finished_spans()].count("chat gpt-test") == 2
    for name, seen in sampler.seen:
        operation = name.split(" ")[0]
        assert {key: seen.get(key) for key in SAMPLING_KEYS} == {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-test",
            "gen_ai.agent.name": "support_agent",
        }, name
        if operation == "chat":
            assert (seen.get("server.address"), seen.get("server.port")) == ("llm.example.com", 8443)
