"""Trace context in and out of flows (telemetry.md section 4.3).

``headers_from_carrier`` turns inbound request headers into message :class:`Headers`, so a flow
joins the caller's trace; ``inject`` writes the current trace context into outbound headers. Both
use the *global* OTel propagator (``OTEL_PROPAGATORS``, default W3C tracecontext + baggage), so B3
or X-Ray inbound context works too. ``opentelemetry.propagate`` is imported on first call, not at
import. The tenant is never read from, nor written to, a carrier.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, TypeVar, cast, overload

from opentelemetry.propagators.textmap import Getter, Setter

from ._message import Headers, Message
from .telemetry._instruments import instruments_for
from .telemetry._propagation import CARRIER_GETTER, Carrier, normalize_carrier
from .telemetry._resolve import resolve_providers
from .telemetry._w3c import parse_traceparent

__all__ = ["headers_from_carrier", "inject"]

_logger = logging.getLogger("penguiflow_otel.telemetry")

C = TypeVar("C")

_BAGGAGE_FIELD = "baggage"


@overload
def headers_from_carrier(
    carrier: Carrier, *, tenant: str, topic: str | None = None, priority: int = 0, getter: None = None
) -> Headers: ...


@overload
def headers_from_carrier(
    carrier: C, *, tenant: str, topic: str | None = None, priority: int = 0, getter: Getter[C]
) -> Headers: ...


def headers_from_carrier(
    carrier: object,
    *,
    tenant: str,
    topic: str | None = None,
    priority: int = 0,
    getter: Getter[Any] | None = None,
) -> Headers:
    """Message headers carrying the trace context extracted from ``carrier``.

    The extracted span context is written back in W3C form (``traceparent``, ``tracestate``),
    whatever propagator read it. A carrier that has a trace-context field but yields no valid
    context leaves both ``None`` and counts ``penguiflow.propagation.invalid``; a carrier with no
    such field (baggage only, say) counts nothing. Inbound baggage is never copied.

    Args:
        carrier: inbound headers: a mapping, ``(name, value)`` pairs, or ASGI byte pairs, read
            case-insensitively; anything else together with a ``getter`` that reads it.
        tenant: the tenant, always explicit: it is never read from the carrier.
        getter: an OTel ``Getter`` for a carrier of another shape.
    """
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    reader: Getter[Any] = CARRIER_GETTER if getter is None else getter
    if getter is None:
        carrier = normalize_carrier(cast(Carrier, carrier))
    propagator = propagate.get_global_textmap()
    context = propagator.extract(carrier, context=Context(), getter=reader)
    w3c: dict[str, str] = {}
    if trace.get_current_span(context).get_span_context().is_valid:
        TraceContextTextMapPropagator().inject(w3c, context=context)
    elif any(reader.get(carrier, field) for field in propagator.fields if field != _BAGGAGE_FIELD):
        _count_invalid()
    return Headers(
        tenant=tenant,
        topic=topic,
        priority=priority,
        traceparent=w3c.get("traceparent"),
        tracestate=w3c.get("tracestate"),
    )


def _count_invalid() -> None:
    meter_provider = resolve_providers().meter_provider
    if meter_provider is None:
        return
    try:
        instruments_for(meter_provider).propagation_invalid.add(1)
    except Exception:  # telemetry never fails the caller
        _logger.debug("could not count an invalid trace context", exc_info=True)


def inject(message: Message[Any], carrier: C, *, setter: Setter[C] | None = None) -> None:
    """Write ``traceparent``, ``tracestate`` and ``baggage`` into an outbound ``carrier``.

    The context written is the first of: the span current in this task (inside a node, the node's
    attempt span, so outbound calls become its children); else ``message.headers.traceparent``
    (and ``tracestate``), passed through unchanged; else nothing is written. The tenant never is.

    Args:
        carrier: outbound headers; a mutable mapping unless a ``setter`` for it is given.
        setter: an OTel ``Setter`` for a carrier of another shape.
    """
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import default_setter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if setter is None:
        if not isinstance(carrier, MutableMapping):
            raise TypeError(f"inject() needs a mutable mapping or a setter; got {type(carrier).__name__}")
        setter = cast(Setter[C], default_setter)
    current = otel_context.get_current()
    if not trace.get_current_span(current).get_span_context().is_valid:
        headers = message.headers
        if headers.traceparent is None or parse_traceparent(headers.traceparent) is None:
            return
        inbound = {"traceparent": headers.traceparent}
        if headers.tracestate:
            inbound["tracestate"] = headers.tracestate
        current = TraceContextTextMapPropagator().extract(inbound, context=current)
    propagate.inject(carrier, context=current, setter=setter)
