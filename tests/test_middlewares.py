"""log_flow_events and the middleware facade."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import penguiflow_otel.metrics
from penguiflow_otel.middlewares import FlowEvent, LatencyCallback, Middleware, log_flow_events

DEFAULT_LOGGER = "penguiflow_otel.middlewares"


def make_event(event_type: str, **overrides: Any) -> FlowEvent:
    """An event of ``event_type`` for node ``worker`` with a 12.5 ms latency."""
    fields: dict[str, Any] = {
        "event_type": event_type,
        "ts": 1.0,
        "node_name": "worker",
        "node_id": "worker-id",
        "trace_id": "t1",
        "attempt": 0,
        "latency_ms": 12.5,
        "queue_depth_in": 0,
        "queue_depth_out": 0,
        "outgoing_edges": 1,
        "queue_maxsize": 64,
        "trace_pending": 1,
        "trace_inflight": 1,
        "trace_cancelled": False,
    }
    fields.update(overrides)
    return FlowEvent(**fields)


def attrs(record: logging.LogRecord) -> dict[str, Any]:
    """The record's attributes, where logging puts ``extra``."""
    return record.__dict__


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog, capturing the default middleware logger from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger=DEFAULT_LOGGER)
    return caplog


def latency_recorder(calls: list[tuple[str, float, FlowEvent]]) -> LatencyCallback:
    """A latency callback appending its arguments to ``calls``."""

    def record(event_type: str, latency_ms: float, event: FlowEvent) -> None:
        calls.append((event_type, latency_ms, event))

    return record


def test_facade_reexports_the_metrics_flow_event() -> None:
    """middlewares.FlowEvent is the same class as metrics.FlowEvent."""
    assert FlowEvent is penguiflow_otel.metrics.FlowEvent


async def test_records_go_to_the_penguiflow_otel_middlewares_logger(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Without a logger argument, records are logged on penguiflow_otel.middlewares."""
    await log_flow_events()(make_event("node_start"))
    assert [record.name for record in logs.records] == [DEFAULT_LOGGER]


async def test_a_given_logger_is_used(caplog: pytest.LogCaptureFixture) -> None:
    """A logger passed in receives the records."""
    caplog.set_level(logging.DEBUG, logger="tests.custom")
    await log_flow_events(logging.getLogger("tests.custom"))(make_event("node_start"))
    assert [record.name for record in caplog.records] == ["tests.custom"]


async def test_each_handled_event_logs_at_its_level(logs: pytest.LogCaptureFixture) -> None:
    """node_start, node_success and node_error use their own level arguments."""
    middleware = log_flow_events(start_level=logging.DEBUG, success_level=logging.WARNING, error_level=25)
    for event_type in ("node_start", "node_success", "node_error"):
        await middleware(make_event(event_type))
    assert [(r.getMessage(), r.levelno) for r in logs.records] == [
        ("node_start", logging.DEBUG),
        ("node_success", logging.WARNING),
        ("node_error", 25),
    ]


async def test_default_levels_are_info_info_error(logs: pytest.LogCaptureFixture) -> None:
    """By default starts and successes log at INFO and errors at ERROR."""
    middleware = log_flow_events()
    for event_type in ("node_start", "node_success", "node_error"):
        await middleware(make_event(event_type))
    assert [r.levelno for r in logs.records] == [logging.INFO, logging.INFO, logging.ERROR]


@pytest.mark.parametrize("event_type", ["node_retry", "node_failed", "node_timeout", "trace_cancel_start"])
async def test_other_events_are_ignored(event_type: str, logs: pytest.LogCaptureFixture) -> None:
    """Events other than start, success and error log nothing and skip the callback."""
    calls: list[tuple[str, float, FlowEvent]] = []
    await log_flow_events(latency_callback=latency_recorder(calls))(make_event(event_type))
    assert logs.records == []
    assert calls == []


async def test_records_carry_the_payload_keys_as_attributes(logs: pytest.LogCaptureFixture) -> None:
    """Every to_payload() key becomes a record attribute with the same value."""
    event = make_event("node_success", extra={"custom": "x"})
    await log_flow_events()(event)
    (record,) = logs.records
    payload = event.to_payload()
    assert {key: attrs(record)[key] for key in payload} == payload
    assert record.exc_info is None


async def test_error_records_carry_the_error_payload(logs: pytest.LogCaptureFixture) -> None:
    """A node_error with a flow_error mapping adds error_payload as a plain dict."""
    error = {"code": "NODE_EXCEPTION", "message": "boom"}
    await log_flow_events()(make_event("node_error", extra={"flow_error": error}))
    (record,) = logs.records
    assert type(attrs(record)["error_payload"]) is dict
    assert attrs(record)["error_payload"] == error


async def test_error_records_without_a_flow_error_have_no_error_payload(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A node_error without a flow_error mapping adds no error_payload attribute."""
    await log_flow_events()(make_event("node_error", extra={"exception": "boom"}))
    (record,) = logs.records
    assert "error_payload" not in attrs(record)
    assert attrs(record)["exception"] == "boom"


async def test_latency_callback_gets_success_and_error_latencies() -> None:
    """The callback sees (event_type, latency_ms, event) for successes and errors, not starts."""
    calls: list[tuple[str, float, FlowEvent]] = []
    middleware = log_flow_events(latency_callback=latency_recorder(calls))
    start, success, error = (make_event(kind) for kind in ("node_start", "node_success", "node_error"))
    for event in (start, success, error):
        await middleware(event)
    assert calls == [("node_success", 12.5, success), ("node_error", 12.5, error)]


async def test_latency_callback_is_skipped_without_a_latency() -> None:
    """An event whose latency_ms is None does not reach the callback."""
    calls: list[tuple[str, float, FlowEvent]] = []
    await log_flow_events(latency_callback=latency_recorder(calls))(make_event("node_error", latency_ms=None))
    assert calls == []


async def test_a_raising_latency_callback_is_logged_with_its_traceback(
    logs: pytest.LogCaptureFixture,
) -> None:
    """The callback's exception is swallowed and logged at ERROR with the event's identity."""

    def explode(event_type: str, latency_ms: float, event: FlowEvent) -> None:
        raise RuntimeError("histogram down")

    await log_flow_events(latency_callback=explode)(make_event("node_success"))
    success, failure = logs.records
    assert success.getMessage() == "node_success"
    assert failure.getMessage() == "log_flow_events_latency_callback_error"
    assert failure.levelno == logging.ERROR
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], RuntimeError)
    assert {key: attrs(failure)[key] for key in ("event", "node_name", "node_id", "trace_id")} == {
        "event": "log_flow_events_latency_callback_error",
        "node_name": "worker",
        "node_id": "worker-id",
        "trace_id": "t1",
    }


async def test_a_class_with_an_async_call_is_a_middleware() -> None:
    """Any object with ``async __call__(event)`` type-checks and works as a Middleware."""
    seen: list[FlowEvent] = []

    class Recorder:
        async def __call__(self, event: FlowEvent) -> None:
            seen.append(event)

    middleware: Middleware = Recorder()
    event = make_event("node_start")
    await middleware(event)
    assert seen == [event]
