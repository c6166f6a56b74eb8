"""FlowEvent (penguiflow_otel.metrics) and format_flow_event (penguiflow_otel.debug)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from penguiflow_otel.debug import format_flow_event
from penguiflow_otel.metrics import FlowEvent


def make_event(**overrides: Any) -> FlowEvent:
    """A node_success event with distinct values in every field, changed by ``overrides``."""
    fields: dict[str, Any] = {
        "event_type": "node_success",
        "ts": 1_700_000_000.5,
        "node_name": "worker",
        "node_id": "worker-id",
        "trace_id": "a" * 32,
        "attempt": 2,
        "latency_ms": 12.5,
        "queue_depth_in": 3,
        "queue_depth_out": 4,
        "outgoing_edges": 1,
        "queue_maxsize": 64,
        "trace_pending": None,
        "trace_inflight": 1,
        "trace_cancelled": False,
    }
    fields.update(overrides)
    return FlowEvent(**fields)


def test_fields_keep_the_upstream_order() -> None:
    """Positional construction depends on the field order, extra last."""
    assert [field.name for field in dataclasses.fields(FlowEvent)] == [
        "event_type",
        "ts",
        "node_name",
        "node_id",
        "trace_id",
        "attempt",
        "latency_ms",
        "queue_depth_in",
        "queue_depth_out",
        "outgoing_edges",
        "queue_maxsize",
        "trace_pending",
        "trace_inflight",
        "trace_cancelled",
        "extra",
    ]


def test_event_is_frozen_and_slotted() -> None:
    """Fields cannot be reassigned and instances carry no __dict__."""
    event = make_event()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.attempt = 3  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_extra_defaults_to_an_empty_mapping() -> None:
    """Without extra, the event has an empty read-only mapping."""
    event = make_event()
    assert dict(event.extra) == {}
    with pytest.raises(TypeError):
        event.extra["k"] = "v"  # type: ignore[index]


def test_extra_is_a_read_only_copy() -> None:
    """Later changes to the caller's dict do not show, and the mapping refuses writes."""
    source: dict[str, Any] = {"exception": "boom"}
    event = make_event(extra=source)
    source["exception"] = "changed"
    source["new"] = 1
    assert dict(event.extra) == {"exception": "boom"}
    with pytest.raises(TypeError):
        event.extra["exception"] = "x"  # type: ignore[index]


def test_error_payload_is_a_read_only_copy_of_flow_error() -> None:
    """A mapping under extra["flow_error"] comes back as an equal, read-only copy."""
    error = {"code": "NODE_EXCEPTION", "message": "boom"}
    payload = make_event(extra={"flow_error": error}).error_payload
    assert payload == error
    assert payload is not error
    with pytest.raises(TypeError):
        payload["code"] = "x"  # type: ignore[index]


@pytest.mark.parametrize("extra", [{}, {"flow_error": "NODE_EXCEPTION"}, {"flow_error": None}])
def test_error_payload_is_none_without_a_mapping(extra: dict[str, Any]) -> None:
    """A missing or non-mapping flow_error gives no error payload."""
    assert make_event(extra=extra).error_payload is None


def test_queue_depth_sums_in_and_out() -> None:
    """queue_depth is queue_depth_in plus queue_depth_out."""
    assert make_event(queue_depth_in=3, queue_depth_out=4).queue_depth == 7


def test_to_payload_lists_the_core_keys_in_order() -> None:
    """Without trace_pending or extra, the payload holds exactly the fourteen core keys."""
    payload = make_event().to_payload()
    assert list(payload.items()) == [
        ("ts", 1_700_000_000.5),
        ("event", "node_success"),
        ("node_name", "worker"),
        ("node_id", "worker-id"),
        ("trace_id", "a" * 32),
        ("latency_ms", 12.5),
        ("q_depth_in", 3),
        ("q_depth_out", 4),
        ("q_depth_total", 7),
        ("outgoing", 1),
        ("queue_maxsize", 64),
        ("attempt", 2),
        ("trace_inflight", 1),
        ("trace_cancelled", False),
    ]


def test_to_payload_adds_trace_pending_then_extra_at_top_level() -> None:
    """trace_pending follows the core keys when set, then extra keys are merged in."""
    payload = make_event(trace_pending=5, extra={"exception": "boom", "latency_ms": 99.0}).to_payload()
    assert list(payload)[-3:] == ["trace_cancelled", "trace_pending", "exception"]
    assert payload["trace_pending"] == 5
    assert payload["exception"] == "boom"
    assert payload["latency_ms"] == 99.0


def test_to_payload_returns_a_fresh_dict() -> None:
    """Changing one payload does not change the next."""
    event = make_event()
    event.to_payload()["event"] = "changed"
    assert event.to_payload()["event"] == "node_success"


def test_metric_samples_cover_depths_attempt_and_trace_state() -> None:
    """Without optional values, the samples are the six always-present floats."""
    samples = make_event(latency_ms=None, trace_cancelled=True).metric_samples()
    assert samples == {
        "queue_depth_in": 3.0,
        "queue_depth_out": 4.0,
        "queue_depth_total": 7.0,
        "attempt": 2.0,
        "trace_inflight": 1.0,
        "trace_cancelled": 1.0,
    }


def test_metric_samples_include_trace_pending_and_latency_when_present() -> None:
    """trace_pending and latency_ms are sampled when set, and a live trace counts as 0."""
    samples = make_event(trace_pending=6).metric_samples()
    assert samples["trace_pending"] == 6.0
    assert samples["latency_ms"] == 12.5
    assert samples["trace_cancelled"] == 0.0


@pytest.mark.parametrize(("override", "expected"), [(40, 40.0), ("7.25", 7.25), (True, 1.0)])
def test_metric_samples_take_latency_from_extra(override: object, expected: float) -> None:
    """A float-convertible extra["latency_ms"], numeric strings included, overrides latency_ms."""
    samples = make_event(latency_ms=None, extra={"latency_ms": override}).metric_samples()
    assert samples["latency_ms"] == expected


@pytest.mark.parametrize("override", [None, "fast", [1.0], 10**400])
def test_metric_samples_ignore_an_unconvertible_extra_latency(override: object) -> None:
    """An extra latency that float() refuses leaves the field's latency in place."""
    samples = make_event(extra={"latency_ms": override}).metric_samples()
    assert samples["latency_ms"] == 12.5


def test_tag_values_omit_the_trace_id() -> None:
    """The trace id never becomes a tag (F7: unbounded cardinality)."""
    tags = make_event().tag_values()
    assert tags == {"event_type": "node_success", "node_name": "worker", "node_id": "worker-id"}


def test_tag_values_leave_out_unset_node_fields() -> None:
    """Without a node name or id, only the event type is tagged."""
    assert make_event(node_name=None, node_id=None).tag_values() == {"event_type": "node_success"}


def test_tag_values_stringify_scalar_extra_values_only() -> None:
    """str, int, float and bool extra values become strings; others are skipped."""
    extra = {"s": "x", "i": 3, "f": 0.5, "b": True, "none": None, "list": [1], "map": {"k": 1}}
    tags = make_event(node_name=None, node_id=None, extra=extra).tag_values()
    assert tags == {"event_type": "node_success", "s": "x", "i": "3", "f": "0.5", "b": "True"}


def test_format_flow_event_is_the_payload_when_there_is_no_error() -> None:
    """Without a flow_error mapping, format_flow_event equals to_payload()."""
    event = make_event(extra={"flow_error": "text"})
    assert format_flow_event(event) == event.to_payload()


def test_format_flow_event_flattens_the_error_payload() -> None:
    """An error payload is kept as a dict under flow_error and spread as flow_error_<key>."""
    error = {"code": "NODE_TIMEOUT", "message": "slow", "metadata": {"attempt": 1}}
    formatted = format_flow_event(make_event(event_type="node_failed", extra={"flow_error": error}))
    assert type(formatted["flow_error"]) is dict
    assert formatted["flow_error"] == error
    assert formatted["flow_error_code"] == "NODE_TIMEOUT"
    assert formatted["flow_error_message"] == "slow"
    assert formatted["flow_error_metadata"] == {"attempt": 1}
    assert formatted["event"] == "node_failed"
