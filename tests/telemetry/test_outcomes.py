"""Status and outcome of attempt spans (telemetry.md section 6): BaseException, FlowError, ValidationError,
the cap on ``error.type`` values (section 9.4) and the exception signal opt-in.

Every flow runs inside ``capture_telemetry()`` and ends with no span left open.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from capture_helpers import attrs, only, value
from flowkit import make_message, promptly
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from penguiflow_otel import Context, FlowError, ModelRegistry, Node, create
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import capture_telemetry

_FAILURES = names.METRIC_NODE_FAILURES.samples[0]
_DURATION_COUNT = names.METRIC_NODE_DURATION.samples[2]
_TELEMETRY_ERRORS = names.METRIC_TELEMETRY_ERRORS.samples[0]


class Halt(BaseException):
    """A BaseException that is not an Exception (as KeyboardInterrupt and SystemExit are)."""


async def test_a_base_exception_from_node_code_ends_the_attempt_span_cancelled() -> None:
    """A non-Exception BaseException ends the attempt span UNSET with outcome cancelled, not error."""
    with capture_telemetry() as tel:

        async def halt(message: Any, ctx: Context) -> Any:
            raise Halt("interrupted")

        flow = create(Node(halt, name="halt").to())
        flow.run()
        await flow.emit(make_message("x"))
        await promptly(lambda: bool(tel.spans("node halt")))

        span = only(tel.spans("node halt"))
        assert span.status.status_code is StatusCode.UNSET
        assert attrs(span)[names.ATTR_OUTCOME] == names.OUTCOME_CANCELLED
        assert names.ATTR_ERROR_TYPE not in attrs(span)
        assert value(tel, _DURATION_COUNT, penguiflow_outcome="cancelled") == 1
        assert value(tel, _FAILURES) == 0
        await flow.stop()
        gc.collect()  # the dead worker's exception is reported now, not in a later test
        assert tel.open_spans() == []


async def test_a_flow_error_raised_by_node_code_reports_its_cause_as_error_type() -> None:
    """A FlowError wrapping a ValueError gives error.type=ValueError on the span and the metrics."""
    with capture_telemetry() as tel:

        async def wrapped(message: Any, ctx: Context) -> Any:
            cause = ValueError("inner cause")
            raise FlowError(
                trace_id=message.trace_id,
                node_name="wrapped",
                code="NODE_EXCEPTION",
                message="wrapped failure",
                original_exc=cause,
            )

        flow = create(Node(wrapped, name="wrapped").to())
        flow.run()
        await flow.emit(make_message("x"))
        await promptly(lambda: bool(tel.spans("flow ")))
        await flow.stop()

        span = only(tel.spans("node wrapped"))
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[names.ATTR_ERROR_TYPE] == "ValueError"
        root = only(tel.spans("flow "))
        assert attrs(root)[names.ATTR_ERROR_TYPE] == "ValueError"
        assert value(tel, _FAILURES, error_type="ValueError") == 1
        assert value(tel, _FAILURES, error_type="FlowError") == 0
        assert tel.open_spans() == []


class Card(BaseModel):
    """A model whose validation error would quote the input."""

    number: int


async def test_a_validation_error_span_shows_no_input_values() -> None:
    """A registry ValidationError: description and recorded exception omit the input value."""
    with capture_telemetry() as tel:
        registry = ModelRegistry()
        registry.register("card", Card, Card)

        async def card(message: Any, ctx: Context) -> Any:
            return message

        flow = create(Node(card, name="card").to())
        flow.run(registry=registry)
        await flow.emit({"number": "4111-SECRET-1111"})
        await promptly(lambda: bool(tel.spans("node card")))
        await flow.stop()

        span = only(tel.spans("node card"))
        assert attrs(span)[names.ATTR_ERROR_TYPE] == "ValidationError"
        description = span.status.description or ""
        assert description.startswith("1 validation error(s) for Card: number: ")
        assert len(description) <= 256
        texts = [description, *map(str, attrs(span).values())]
        for event in span.events:
            texts.extend(str(item) for item in (event.attributes or {}).values())
        assert any(event.name == "exception" for event in span.events)
        assert all("SECRET" not in text for text in texts), texts
        assert tel.open_spans() == []


async def test_error_types_past_the_cap_become_other_and_count_an_overflow() -> None:
    """Beyond 50 distinct error types a metric gets error_type="_OTHER" and the overflow is counted."""
    classes = [type(f"Failure{index:02d}", (Exception,), {}) for index in range(names.ERROR_TYPE_CAP + 5)]
    with capture_telemetry() as tel:

        async def fail(message: Any, ctx: Context) -> Any:
            raise classes[message.payload](f"unique message {message.payload}")

        flow = create(Node(fail, name="fail").to())
        flow.run()
        for index in range(len(classes)):
            await flow.emit(make_message(index))
        await promptly(lambda: len(tel.spans("flow ")) == len(classes), rounds=2000)
        await flow.stop()

        error_types = {labels["error_type"] for labels, _ in tel.series(_FAILURES)}
        assert len(error_types) == names.ERROR_TYPE_CAP + 1
        assert names.OTHER in error_types
        assert value(tel, _FAILURES, error_type=names.OTHER) == 5
        overflow = value(tel, _TELEMETRY_ERRORS, error_type=names.ERROR_TYPE_CARDINALITY_OVERFLOW)
        assert overflow >= 5
        assert tel.open_spans() == []


@pytest.mark.parametrize(
    ("setting", "on_span", "as_log"),
    [(None, True, False), ("logs", False, True), ("logs/dup", True, True)],
)
async def test_the_exception_signal_opt_in_moves_or_copies_exceptions_to_logs(
    setting: str | None,
    on_span: bool,
    as_log: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs logs exceptions instead of span events; logs/dup: both."""
    if setting is None:
        monkeypatch.delenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", setting)
    caplog.set_level(logging.ERROR, logger="penguiflow_otel.telemetry")
    with capture_telemetry() as tel:

        async def boom(message: Any, ctx: Context) -> Any:
            raise ValueError("kaboom")

        flow = create(Node(boom, name="boom").to())
        flow.run()
        await flow.emit(make_message("x"))
        await promptly(lambda: bool(tel.spans("flow ")))
        await flow.stop()

        span = only(tel.spans("node boom"))
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == (["exception"] if on_span else [])
        records = [
            record
            for record in caplog.records
            if record.name == "penguiflow_otel.telemetry" and record.getMessage() == "exception"
        ]
        assert len(records) == (1 if as_log else 0)
        if as_log:
            record = records[0]
            assert getattr(record, "exception.type") == "ValueError"
            assert getattr(record, "exception.message") == "kaboom"
            assert "ValueError: kaboom" in getattr(record, "exception.stacktrace")
            assert span.context is not None
            assert record.__dict__["span_id"] == format(span.context.span_id, "016x")
        assert tel.open_spans() == []
