"""Points with no FlowEvent that telemetry still counts (telemetry.md sections 7.1, 7.2 and 9.1):
WM de-duplication (``dropped{reason="duplicate", node="ingress"}``) and consumer failures
(``consumer.failures{kind}``), and the self-loop span shape of the WM controller (section 5.1).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from capture_helpers import attrs, node, parent_of, span_id, value
from flowkit import make_message, promptly, run_once

from penguiflow_otel import (
    WM,
    BusEnvelope,
    Context,
    FinalAnswer,
    FlowEvent,
    Headers,
    Message,
    Node,
    NodePolicy,
    StoredEvent,
    create,
)
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import TelemetryCapture, capture_telemetry

_DROPPED = names.METRIC_MESSAGE_DROPPED.samples[0]
_CONSUMER_FAILURES = names.METRIC_CONSUMER_FAILURES.samples[0]


def controller_flow(stop_at: int) -> Any:
    """A WM controller looping on itself until the hop count reaches ``stop_at``."""

    async def controller(message: Any, ctx: Context) -> Any:
        if message.payload.hops >= stop_at:
            return message.model_copy(update={"payload": FinalAnswer(text="done")})
        return message

    loop = Node(controller, name="controller", allow_cycle=True)
    return create(loop.to(loop))


def wm_message(**budgets: Any) -> Message[WM]:
    """A WM query message with the given budgets."""
    return Message(payload=WM(query="q", **budgets), headers=Headers(tenant="t"))


# WM de-duplication -------------------------------------------------------------------------------


async def test_re_emitting_a_fetched_wm_update_is_dropped_and_counted_as_a_duplicate() -> None:
    """A caller re-emitting the WM stream update it just fetched is dropped: dropped{duplicate, ingress} 1."""
    with capture_telemetry() as tel:
        flow = controller_flow(stop_at=3)
        flow.run()
        message = wm_message(budget_hops=None)
        await flow.emit(message, trace_id=message.trace_id)
        async with asyncio.timeout(2):
            update = await flow.fetch(trace_id=message.trace_id)
            assert update.payload.hops == 1
            await flow.emit(update)
            rest = [await flow.fetch(trace_id=message.trace_id) for _ in range(3)]
        await flow.stop()

        assert [item.payload for item in rest][-1] == FinalAnswer(text="done")
        assert [item.payload.hops for item in rest[:-1]] == [2, 3]
        assert value(tel, _DROPPED, penguiflow_drop_reason="duplicate", penguiflow_node_name="ingress") == 1
        assert value(tel, _DROPPED) == 1
        assert tel.open_spans() == []


# self-loops --------------------------------------------------------------------------------------


async def test_each_controller_hop_is_a_child_of_the_previous_hop() -> None:
    """A WM controller running 3 hops draws a chain: hop n+1's span is a child of hop n's."""
    with capture_telemetry() as tel:
        result = await run_once(controller_flow(stop_at=3), wm_message())

        assert result.payload == FinalAnswer(text="done")
        tree = tel.tree()
        assert tree == [
            (0, "flow controller"),
            (1, "node controller"),
            (2, "node controller"),
            (3, "node controller"),
            (4, "node controller"),
        ]
        hops = sorted(tel.spans("node controller"), key=lambda span: span.start_time or 0)
        for parent, child in itertools.pairwise(hops):
            assert parent_of(child) == span_id(parent)
        assert all(attrs(span)[names.ATTR_NODE_ATTEMPT] == 0 for span in hops)
        assert tel.open_spans() == []


# consumer failures -------------------------------------------------------------------------------


def consumer_failures(tel: TelemetryCapture) -> dict[str, float]:
    """consumer_failures_total per penguiflow_consumer_kind, for flow 'a'."""
    return {
        labels["penguiflow_consumer_kind"]: sample_value
        for labels, sample_value in tel.series(_CONSUMER_FAILURES)
        if labels.get("penguiflow_flow_name") == "a"
    }


async def raising_middleware(event: FlowEvent) -> None:
    """A middleware that always raises."""
    raise RuntimeError("middleware down")


class RaisingStore:
    """A state store whose saves raise."""

    async def save_event(self, event: StoredEvent) -> None:
        raise OSError("disk full")

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        return []

    async def save_remote_binding(self, binding: Any) -> None:
        raise OSError("disk full")


class RaisingBus:
    """A message bus whose publishes raise."""

    async def publish(self, envelope: BusEnvelope) -> None:
        raise ConnectionError("bus down")


def raising_redactor(kind: str, value: Any) -> Any:
    """A redactor that always raises."""
    raise ValueError("redactor bug")


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("middleware", {"middlewares": [raising_middleware]}),
        ("state_store", {"state_store": RaisingStore()}),
        ("bus", {"message_bus": RaisingBus()}),
        ("redactor", {"redactor": raising_redactor}),
    ],
)
async def test_a_raising_consumer_is_counted_by_kind_and_changes_no_outcome(
    kind: str, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A raising middleware, store, bus or redactor counts consumer_failures{kind}; the result arrives."""
    caplog.set_level(logging.CRITICAL, logger="penguiflow_otel.core")
    with capture_telemetry() as tel:
        message = make_message("through")
        result = await run_once(create(node("a").to(), **options), message)

        assert result is message
        counted = consumer_failures(tel)
        assert set(counted) == {kind}
        assert counted[kind] >= 1
        assert tel.open_spans() == []


async def test_a_raising_retry_on_predicate_is_counted_and_the_error_is_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A retry_on predicate that raises means 'do not retry' and counts consumer_failures{retry_on} once."""
    caplog.set_level(logging.CRITICAL, logger="penguiflow_otel.core")

    def broken(exc: BaseException) -> bool:
        raise TypeError("predicate bug")

    async def fail(message: Any, ctx: Context) -> Any:
        raise ValueError("node failure")

    with capture_telemetry() as tel:
        flow = create(node("a", fail, retry_on=broken, max_retries=3).to())
        flow.run()
        await flow.emit(make_message("x"))
        await promptly(lambda: bool(tel.spans("flow ")))
        await flow.stop()

        assert consumer_failures(tel) == {"retry_on": 1}
        assert len(tel.spans("node a")) == 1
        assert value(tel, names.METRIC_NODE_FAILURES.samples[0], error_type="ValueError") == 1
        assert tel.open_spans() == []


def test_every_consumer_kind_is_in_the_catalog() -> None:
    """The kinds counted here are exactly the catalog's CONSUMER_KINDS."""
    assert set(names.CONSUMER_KINDS) == {"middleware", "state_store", "bus", "redactor", "retry_on"}
    assert NodePolicy().retry_on is None
