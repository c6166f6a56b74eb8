"""The planner's OpenTelemetry mapping (planner.md section 7), through the OpenTelemetry API only.

One :class:`RunTelemetry` per ``run()`` / ``resume()`` call. Every span it starts takes an
explicit parent context: ``invoke_agent`` the caller's current context, ``plan`` and every
``execute_tool`` the agent's, ``chat`` its ``plan``'s. Recording never raises into a run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, UpDownCounter
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer

from .._dispatch import exception_text
from .._version import __version__
from ..telemetry import names as n
from ..telemetry._resolve import Providers
from ..telemetry._span_content import record_exception as _record_exception

__all__ = [
    "AgentInfo",
    "PlannerInstruments",
    "RunTelemetry",
    "capture_enabled",
    "record_exception",
    "resume_links",
    "span_ids",
]

_LOGGER = logging.getLogger("penguiflow_otel.planner")
_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_ON = frozenset({"true", "1", "span_only", "span_and_event"})
_CAPTURE_OFF = frozenset({"", "false", "0", "none", "no_content"})
_CONTENT_LIMIT = 16_384
_DESCRIPTION_LIMIT = 256
_warned_env_values: set[str] = set()


def capture_enabled(explicit: bool | None) -> bool:
    """The content switch: the argument, else ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""
    if explicit is not None:
        return explicit
    value = os.environ.get(_CAPTURE_ENV, "").strip().lower()
    if value in _CAPTURE_ON:
        return True
    if value not in _CAPTURE_OFF and value not in _warned_env_values:
        _warned_env_values.add(value)
        _LOGGER.warning("%s=%r is not recognised; content capture stays off", _CAPTURE_ENV, value)
    return False


def truncate_content(text: str) -> str:
    """``text`` cut to 16 384 characters, with a marker when cut."""
    if len(text) <= _CONTENT_LIMIT:
        return text
    return f"{text[:_CONTENT_LIMIT]}…[truncated {len(text) - _CONTENT_LIMIT} chars]"


def content_json(value: Any) -> str:
    """A captured value as JSON; :meth:`RunTelemetry.set_content` truncates it, once."""
    return json.dumps(value, ensure_ascii=False, default=str)


def genai_messages(messages: Sequence[Mapping[str, str]]) -> str:
    """Chat messages in the GenAI message shape ``{role, parts: [{type: "text", content}]}``."""
    return content_json(
        [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in messages]
    )


def span_ids(span: Span) -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` of ``span`` in hex, or ``(None, None)`` for a non-recording no-op span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def record_exception(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span``; a pydantic ``ValidationError`` without input values, as the runtime."""
    _record_exception(span, exc, on_span=True, as_log=False)


def describe(exc: BaseException) -> str:
    """A span status description: the message (validation errors without input values), cut to 256."""
    return exception_text(exc)[:_DESCRIPTION_LIMIT]


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What every planner span says about the agent and its LLM."""

    agent_name: str
    provider_name: str
    request_model: str | None
    temperature: float | None
    server_address: str | None
    server_port: int | None

    @classmethod
    def from_client(cls, agent_name: str, client: object, temperature: float | None) -> AgentInfo:
        """Read the optional ``model``, ``provider_name`` and ``base_url`` attributes of a client."""
        model = getattr(client, "model", None)
        provider = getattr(client, "provider_name", None)
        base_url = getattr(client, "base_url", None)
        address = port = None
        if isinstance(base_url, str) and base_url:
            parts = urlsplit(base_url)
            address = parts.hostname
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                port = None
        return cls(
            agent_name=agent_name,
            provider_name=provider if isinstance(provider, str) and provider else "unknown",
            request_model=model if isinstance(model, str) and model else None,
            temperature=temperature,
            server_address=address,
            server_port=port,
        )

    def base_attributes(self, operation: str) -> dict[str, Any]:
        """The sampling-relevant attributes every planner span starts with."""
        attributes: dict[str, Any] = {
            n.ATTR_GEN_AI_OPERATION_NAME: operation,
            n.ATTR_GEN_AI_PROVIDER_NAME: self.provider_name,
            n.ATTR_GEN_AI_AGENT_NAME: self.agent_name,
        }
        if self.request_model is not None:
            attributes[n.ATTR_GEN_AI_REQUEST_MODEL] = self.request_model
        return attributes

    def client_metric_attributes(self) -> dict[str, Any]:
        """The bounded attributes of ``gen_ai.client.*`` points."""
        attributes: dict[str, Any] = {
            n.ATTR_GEN_AI_OPERATION_NAME: n.GEN_AI_OPERATION_CHAT,
            n.ATTR_GEN_AI_PROVIDER_NAME: self.provider_name,
        }
        if self.request_model is not None:
            attributes[n.ATTR_GEN_AI_REQUEST_MODEL] = self.request_model
        if self.server_address is not None:
            attributes[n.ATTR_SERVER_ADDRESS] = self.server_address
        if self.server_port is not None:
            attributes[n.ATTR_SERVER_PORT] = self.server_port
        return attributes


_CAPPED_ATTRIBUTES = (
    (n.ATTR_ERROR_TYPE, n.ERROR_TYPE_CAP),
    (n.ATTR_GEN_AI_REQUEST_MODEL, n.REQUEST_MODEL_CAP),
    (n.ATTR_GEN_AI_TOOL_NAME, n.TOOL_NAME_CAP),
)
"""Metric attributes capped per instrument (telemetry.md section 9.4); past a cap: ``_OTHER``."""


class PlannerInstruments:
    """The planner's metric instruments on one meter provider (created once, reused by every run)."""

    def __init__(self, meter: Meter, meter_provider: MeterProvider | None = None) -> None:
        self._provider = weakref.ref(meter_provider) if meter_provider is not None else None
        self._seen: dict[tuple[str, str], set[str]] = {}
        self._seen_lock = threading.Lock()
        self.client_duration = _histogram(meter, n.METRIC_GEN_AI_CLIENT_OPERATION_DURATION)
        self.token_usage = _histogram(meter, n.METRIC_GEN_AI_CLIENT_TOKEN_USAGE)
        self.inference_usage: dict[str, Counter] | None = None
        if genai_latest_opted_in():
            input_spec = n.METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS
            output_spec = n.METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS
            self.inference_usage = {
                n.GEN_AI_TOKEN_TYPE_INPUT: _counter(meter, input_spec),
                n.GEN_AI_TOKEN_TYPE_OUTPUT: _counter(meter, output_spec),
            }
        self.time_to_first_chunk = _histogram(meter, n.METRIC_GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK)
        self.agent_duration = _histogram(meter, n.METRIC_GEN_AI_INVOKE_AGENT_DURATION)
        self.tool_duration = _histogram(meter, n.METRIC_GEN_AI_EXECUTE_TOOL_DURATION)
        self.steps = _histogram(meter, n.METRIC_PLANNER_STEPS)
        spec = n.METRIC_PLANNER_RUNS_ACTIVE
        self.runs_active: UpDownCounter = meter.create_up_down_counter(
            spec.name, unit=spec.unit, description=spec.description
        )
        self.repairs = _counter(meter, n.METRIC_PLANNER_REPAIRS)
        self.pauses = _counter(meter, n.METRIC_PLANNER_PAUSES)
        self.budget_exhaustions = _counter(meter, n.METRIC_PLANNER_BUDGET_EXHAUSTIONS)

    def bounded(self, instrument_name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """``attributes`` with each capped value past its cap replaced by ``_OTHER`` (counted)."""
        bounded = dict(attributes)
        for key, cap in _CAPPED_ATTRIBUTES:
            value = bounded.get(key)
            if value is None:
                continue
            with self._seen_lock:
                seen = self._seen.setdefault((instrument_name, key), set())
                if value in seen:
                    continue
                if len(seen) < cap:
                    seen.add(value)
                    continue
            bounded[key] = n.OTHER
            self._count_overflow()
        return bounded

    def _count_overflow(self) -> None:
        provider = self._provider() if self._provider is not None else None
        if provider is None:
            return
        from ..telemetry._instruments import instruments_for as runtime_instruments_for

        runtime_instruments_for(provider).telemetry_errors.add(
            1, {n.ATTR_ERROR_TYPE: n.ERROR_TYPE_CARDINALITY_OVERFLOW}
        )


def genai_latest_opted_in() -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``.

    Read when a meter provider's planner instruments are created.
    """
    values = os.environ.get(n.SEMCONV_OPT_IN_ENV, "")
    return n.SEMCONV_OPT_IN_GENAI_LATEST in {value.strip().lower() for value in values.split(",")}


def _histogram(meter: Meter, spec: n.MetricSpec) -> Histogram:
    return meter.create_histogram(
        spec.name,
        unit=spec.unit,
        description=spec.description,
        explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
    )


def _counter(meter: Meter, spec: n.MetricSpec) -> Counter:
    return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)


_INSTRUMENTS: weakref.WeakKeyDictionary[MeterProvider, PlannerInstruments] = weakref.WeakKeyDictionary()
_INSTRUMENTS_LOCK = threading.Lock()


def instruments_for(meter_provider: MeterProvider) -> PlannerInstruments:
    """The planner instruments of ``meter_provider``, created on first use."""
    with _INSTRUMENTS_LOCK:
        found = _INSTRUMENTS.get(meter_provider)
        if found is None:
            meter = meter_provider.get_meter(n.PLANNER_SCOPE_NAME, __version__, schema_url=n.SCHEMA_URL)
            found = _INSTRUMENTS[meter_provider] = PlannerInstruments(meter, meter_provider)
        return found


class RunTelemetry:
    """Spans and metric points of one ``run()`` / ``resume()`` call."""

    def __init__(self, providers: Providers, info: AgentInfo, *, capture_content: bool) -> None:
        self.info = info
        self.capture = capture_content
        tracer_provider = providers.tracer_provider
        self.tracer: Tracer = (
            tracer_provider.get_tracer(n.PLANNER_SCOPE_NAME, __version__, schema_url=n.SCHEMA_URL)
            if tracer_provider is not None
            else trace.NoOpTracer()
        )
        meter_provider = providers.meter_provider
        self.instruments = instruments_for(meter_provider) if meter_provider is not None else None
        self._failed: set[type[BaseException]] = set()

    def record_tokens(self, token_type: str, count: int, attributes: Mapping[str, Any]) -> None:
        """One call's tokens of ``token_type``: ``gen_ai.client.token.usage``, plus the opted-in counters."""
        self.record("token_usage", count, {**attributes, n.ATTR_GEN_AI_TOKEN_TYPE: token_type})
        instruments = self.instruments
        if instruments is None or instruments.inference_usage is None:
            return
        try:
            modality = {**attributes, n.ATTR_GEN_AI_TOKEN_MODALITY: n.GEN_AI_TOKEN_MODALITY_TEXT}
            modality.pop(n.ATTR_ERROR_TYPE, None)
            counter = instruments.inference_usage[token_type]
            counter.add(count, instruments.bounded("inference_usage", modality))
        except Exception as exc:
            self._log_failure(exc)

    def record(self, instrument_name: str, value: float, attributes: Mapping[str, Any]) -> None:
        """Record one metric point; a failing SDK is logged once per error type and ignored."""
        if self.instruments is None:
            return
        try:
            instrument = getattr(self.instruments, instrument_name)
            bounded = self.instruments.bounded(instrument_name, attributes)
            if isinstance(instrument, Histogram):
                instrument.record(value, bounded)
            else:
                instrument.add(value, bounded)
        except Exception as exc:
            self._log_failure(exc)

    def _log_failure(self, exc: Exception) -> None:
        if type(exc) not in self._failed:
            self._failed.add(type(exc))
            _LOGGER.warning("planner telemetry failed (%s); ignored", type(exc).__name__, exc_info=exc)

    # Spans ----------------------------------------------------------------------------------

    def start_span(
        self,
        name: str,
        operation: str,
        parent: otel_context.Context | None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] = (),
    ) -> Span:
        """Start a span with the agent's base attributes under the explicit ``parent`` context."""
        merged = self.info.base_attributes(operation)
        merged.update(attributes or {})
        return self.tracer.start_span(name, context=parent, kind=kind, attributes=merged, links=links)

    @staticmethod
    def fail(span: Span, error_type: str, description: str, exc: BaseException | None = None) -> None:
        """Mark ``span`` ERROR with ``error.type``; the exception is recorded on this span only."""
        if not span.is_recording():
            return
        span.set_attribute(n.ATTR_ERROR_TYPE, error_type)
        if exc is not None:
            record_exception(span, exc)
        span.set_status(Status(StatusCode.ERROR, description[:_DESCRIPTION_LIMIT]))

    def set_content(self, span: Span, key: str, value: str) -> None:
        """Set a content attribute, only when capture is on."""
        if self.capture and span.is_recording():
            span.set_attribute(key, truncate_content(value))


def resume_links(record: Mapping[str, Any] | None) -> list[Link]:
    """The ``resume`` link to the paused run's agent span, from a pause record (none if absent or invalid)."""
    paused = record.get("paused_span") if record is not None else None
    if not isinstance(paused, Mapping):
        return []
    try:
        context = SpanContext(
            trace_id=int(paused["trace_id"], 16),
            span_id=int(paused["span_id"], 16),
            is_remote=True,
            trace_flags=TraceFlags(int(paused.get("trace_flags", 0))),
        )
    except (KeyError, TypeError, ValueError):
        return []
    return [Link(context, {n.ATTR_LINK_TYPE: n.LINK_TYPE_RESUME})]
