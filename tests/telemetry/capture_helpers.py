"""Helpers for the tests that run flows inside ``capture_telemetry()``.

Readers for what a capture collected (span ids, parents, attributes, summed metric samples) and
builders for the nodes those flows are made of.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from flowkit import passthrough
from opentelemetry.sdk.trace import ReadableSpan

from penguiflow_otel import Context, Node, NodePolicy
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import TelemetryCapture


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict."""
    return dict(span.attributes or {})


def only(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    """The single span of ``spans``."""
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def span_id(span: ReadableSpan) -> int:
    """The span's own id."""
    assert span.context is not None
    return int(span.context.span_id)


def trace_of(span: ReadableSpan) -> int:
    """The span's OTel trace id."""
    assert span.context is not None
    return int(span.context.trace_id)


def parent_of(span: ReadableSpan) -> int | None:
    """The parent span id, or None for a root."""
    return int(span.parent.span_id) if span.parent is not None else None


def by_attempt(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """Attempt spans ordered by ``penguiflow.node.attempt``."""
    return sorted(spans, key=lambda span: int(attrs(span)[names.ATTR_NODE_ATTEMPT]))


def value(tel: TelemetryCapture, prometheus_name: str, **labels: str) -> float:
    """The summed value of the samples named ``prometheus_name`` whose labels include ``labels``.

    A label the sample lacks reads as ``""``, as in the Prometheus exposition.
    """
    return sum(
        sample_value
        for sample_labels, sample_value in tel.series(prometheus_name)
        if all(sample_labels.get(key, "") == wanted for key, wanted in labels.items())
    )


def node(name: str, func: Callable[[Any, Context], Any] = passthrough, **policy: Any) -> Node:
    """A node named ``name`` running ``func`` (default: return the input) with the given policy fields."""

    async def body(msg: Any, ctx: Context) -> Any:
        return await func(msg, ctx)

    return Node(body, name=name, policy=NodePolicy(**policy))


class Gate:
    """Node bodies that signal each arrival and then wait until the gate opens, counting the calls."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.open = asyncio.Event()
        self.calls = 0

    def node(self, name: str) -> Node:
        """A node named ``name`` whose every invocation passes through the gate."""

        async def gated(msg: Any, ctx: Context) -> Any:
            self.calls += 1
            self.arrived.set()
            await self.open.wait()
            return msg

        return Node(gated, name=name)
