"""``penguiflow_otel.propagation``: trace context from inbound carriers into ``Headers``, and back out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from penguiflow_otel.propagation import headers_from_carrier, inject
from penguiflow_otel.telemetry import names
from penguiflow_otel.testing import TelemetryCapture, capture_telemetry
from penguiflow_otel.types import Headers, Message

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"
INVALID_TOTAL = names.METRIC_PROPAGATION_INVALID.prometheus


def _padded(length: int) -> str:
    prefix = f"01-{TRACE_ID}-{SPAN_ID}-01-"
    return prefix + "a" * (length - len(prefix))


# (case, traceparent, valid under telemetry.md section 4.1)
VALIDITY_RULES: list[tuple[str, str, bool]] = [
    ("sampled", VALID, True),
    ("not sampled", f"00-{TRACE_ID}-{SPAN_ID}-00", True),
    ("spaces and tabs around it", f" \t{VALID}\t ", True),
    ("later version, four fields", f"01-{TRACE_ID}-{SPAN_ID}-01", True),
    ("later version, more fields", f"cc-{TRACE_ID}-{SPAN_ID}-01-what-the-future-holds", True),
    ("exactly 512 characters", _padded(512), True),
    ("513 characters", _padded(513), False),
    ("uppercase trace id", f"00-{TRACE_ID.upper()}-{SPAN_ID}-01", False),
    ("uppercase flags", f"00-{TRACE_ID}-{SPAN_ID}-0A", False),
    ("short trace id", f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01", False),
    ("long parent id", f"00-{TRACE_ID}-{SPAN_ID}0-01", False),
    ("all-zero trace id", f"00-{'0' * 32}-{SPAN_ID}-01", False),
    ("all-zero parent id", f"00-{TRACE_ID}-{'0' * 16}-01", False),
    ("version ff", f"ff-{TRACE_ID}-{SPAN_ID}-01", False),
    ("version 00 with a fifth field", f"{VALID}-extra", False),
    ("version 00 with a trailing dash", f"{VALID}-", False),
    ("non-hex version", f"0g-{TRACE_ID}-{SPAN_ID}-01", False),
    ("one-digit flags", f"00-{TRACE_ID}-{SPAN_ID}-1", False),
    ("space inside", f"00-{TRACE_ID} -{SPAN_ID}-01", False),
    ("missing field", f"00-{TRACE_ID}-01", False),
    ("empty", "", False),
    ("not a traceparent", "not a traceparent", False),
    ("trailing newline", f"{VALID}\n", False),
]

OTEL_DIVERGES = {"trailing newline"}
"""Rows where the OTel propagator disagrees with section 4.1: its pattern ends in ``$``, which also
matches before a final newline, so it accepts what the rules call "other whitespace"."""


def _otel_accepts(traceparent: str) -> bool:
    extracted = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    return trace.get_current_span(extracted).get_span_context().is_valid


def _invalid_count(capture: TelemetryCapture) -> float:
    series = capture.series(INVALID_TOTAL)
    for labels, _ in series:
        assert "penguiflow_flow_name" not in labels
    return sum(value for _, value in series)


@pytest.fixture
def capture() -> Iterator[TelemetryCapture]:
    with capture_telemetry() as telemetry:
        yield telemetry


# Inbound -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traceparent", "valid"), [row[1:] for row in VALIDITY_RULES], ids=[r[0] for r in VALIDITY_RULES]
)
def test_traceparent_validity_agrees_between_message_headers_from_carrier_and_the_otel_propagator(
    traceparent: str, valid: bool, capture: TelemetryCapture
) -> None:
    """Each section 4.1 row: ``Message`` follows the rules, ``headers_from_carrier`` the OTel propagator."""
    case = next(row[0] for row in VALIDITY_RULES if row[1] == traceparent)
    otel_valid = valid != (case in OTEL_DIVERGES)
    assert _otel_accepts(traceparent) is otel_valid

    message = Message(payload=None, headers=Headers(tenant="acme", traceparent=traceparent))
    assert (message.trace_id == TRACE_ID) is valid

    headers = headers_from_carrier({"traceparent": traceparent}, tenant="acme")
    if otel_valid:
        assert headers.traceparent is not None
        assert headers.traceparent.split("-")[1:3] == [TRACE_ID, SPAN_ID]
        assert Message(payload=None, headers=headers).trace_id == TRACE_ID
    else:
        assert (headers.traceparent, headers.tracestate) == (None, None)
    assert _invalid_count(capture) == (0 if otel_valid else 1)


def test_a_malformed_traceparent_counts_one_and_a_baggage_only_carrier_counts_nothing(
    capture: TelemetryCapture,
) -> None:
    """Only a carrier with a trace-context field that yields no context counts; baggage alone does not."""
    assert headers_from_carrier({"traceparent": "00-garbage"}, tenant="acme").traceparent is None
    assert _invalid_count(capture) == 1
    headers_from_carrier({"baggage": "user=42"}, tenant="acme")
    headers_from_carrier({"content-type": "text/plain"}, tenant="acme")
    headers_from_carrier({"traceparent": VALID}, tenant="acme")
    assert _invalid_count(capture) == 1
    headers_from_carrier({"tracestate": "vendor=1"}, tenant="acme")  # a trace field, but no traceparent
    assert _invalid_count(capture) == 2


def test_nothing_is_counted_without_a_meter_provider() -> None:
    """Outside ``capture_telemetry`` and with no global provider, a malformed header is simply ignored."""
    headers = headers_from_carrier({"traceparent": "nonsense"}, tenant="acme", topic="orders", priority=3)
    assert headers == Headers(tenant="acme", topic="orders", priority=3)


CARRIER_SHAPES: dict[str, Any] = {
    "mixed-case mapping": {"TraceParent": VALID, "TraceState": "vendor=1"},
    "mapping of lists": {"traceparent": [VALID], "tracestate": ["vendor=1"]},
    "header list": [("Traceparent", VALID), ("Tracestate", "vendor=1")],
    "ASGI byte pairs": [(b"traceparent", VALID.encode()), (b"tracestate", b"vendor=1")],
}


@pytest.mark.parametrize("carrier", list(CARRIER_SHAPES.values()), ids=list(CARRIER_SHAPES))
def test_carriers_are_read_case_insensitively_in_every_shape(carrier: Any) -> None:
    """Dicts, header lists and ASGI byte pairs all give the same headers, whatever the case of the names."""
    headers = headers_from_carrier(carrier, tenant="acme")
    assert (headers.traceparent, headers.tracestate) == (VALID, "vendor=1")


def test_spaces_around_an_inbound_traceparent_are_normalised_away() -> None:
    """The context is written back in canonical W3C form, not copied as given."""
    assert headers_from_carrier({"traceparent": f"  {VALID}\t"}, tenant="acme").traceparent == VALID


def test_a_custom_getter_reads_a_carrier_of_another_shape() -> None:
    """With ``getter=``, the carrier is handed to it unchanged."""

    class Request:
        def __init__(self, fields: dict[str, str]) -> None:
            self.fields = fields

    class RequestGetter(Getter[Request]):
        def get(self, carrier: Request, key: str) -> list[str] | None:
            value = carrier.fields.get(key)
            return None if value is None else [value]

        def keys(self, carrier: Request) -> list[str]:
            return list(carrier.fields)

    headers = headers_from_carrier(Request({"traceparent": VALID}), tenant="acme", getter=RequestGetter())
    assert headers.traceparent == VALID


def test_the_tenant_never_comes_from_the_carrier() -> None:
    """Inbound headers and baggage that name a tenant are ignored; the argument wins."""
    carrier = {"traceparent": VALID, "tenant": "evil", "x-tenant": "evil", "baggage": "tenant=evil"}
    headers = headers_from_carrier(carrier, tenant="acme")
    assert headers.tenant == "acme"
    assert "evil" not in headers.model_dump_json()


class _PlainHeaderPropagator(TextMapPropagator):
    """A non-W3C propagator: the ids travel as ``x-trace-id`` and ``x-span-id``."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        context = context if context is not None else Context()
        trace_id, span_id = getter.get(carrier, "x-trace-id"), getter.get(carrier, "x-span-id")
        if not trace_id or not span_id:
            return context
        try:
            span_context = trace.SpanContext(
                int(trace_id[0], 16), int(span_id[0], 16), is_remote=True, trace_flags=trace.TraceFlags(1)
            )
        except ValueError:
            return context
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        raise NotImplementedError

    @property
    def fields(self) -> set[str]:
        return {"x-trace-id", "x-span-id"}


@pytest.fixture
def plain_header_propagator() -> Iterator[None]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_PlainHeaderPropagator())
    try:
        yield
    finally:
        propagate.set_global_textmap(previous)


@pytest.mark.usefixtures("plain_header_propagator")
def test_the_global_propagator_is_used_and_its_context_is_written_back_in_w3c_form(
    capture: TelemetryCapture,
) -> None:
    """Another propagator's context (B3, X-Ray, ...) lands in ``Headers`` as a W3C traceparent."""
    headers = headers_from_carrier({"X-Trace-Id": TRACE_ID, "X-Span-Id": SPAN_ID}, tenant="acme")
    assert headers.traceparent == VALID
    headers_from_carrier({"traceparent": VALID}, tenant="acme")  # not a field of this propagator
    assert _invalid_count(capture) == 0
    headers_from_carrier({"x-trace-id": "zz", "x-span-id": SPAN_ID}, tenant="acme")
    assert _invalid_count(capture) == 1


# Outbound ------------------------------------------------------------------------------------------


def _message(traceparent: str | None = None, tracestate: str | None = None) -> Message[Any]:
    return Message(
        payload="order-1", headers=Headers(tenant="acme", traceparent=traceparent, tracestate=tracestate)
    )


def test_inject_inside_a_span_writes_that_spans_context_and_baggage(capture: TelemetryCapture) -> None:
    """The current span wins over the message's own traceparent; baggage rides along; the tenant never."""
    tracer = capture.tracer_provider.get_tracer("test")
    token = otel_context.attach(baggage.set_baggage("plan", "gold"))
    try:
        with tracer.start_as_current_span("outbound") as span:
            carrier: dict[str, str] = {}
            inject(_message(VALID), carrier)
    finally:
        otel_context.detach(token)
    ids = span.get_span_context()
    assert ids.trace_flags.sampled
    assert carrier == {
        "traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}",
        "baggage": "plan=gold",
    }


def test_inject_outside_a_span_passes_the_messages_trace_context_through() -> None:
    """With no current span, ``headers.traceparent`` and ``tracestate`` go out unchanged."""
    carrier: dict[str, str] = {}
    inject(_message(f"00-{TRACE_ID}-{SPAN_ID}-00", "vendor=1,other=2"), carrier)
    assert carrier == {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00", "tracestate": "vendor=1,other=2"}


@pytest.mark.parametrize(
    "traceparent", [None, "00-garbage", f"{VALID}\n"], ids=["absent", "malformed", "newline"]
)
def test_inject_writes_nothing_without_a_span_or_a_valid_traceparent(traceparent: str | None) -> None:
    """No current span and no valid traceparent of the message: the carrier is left untouched."""
    carrier = {"accept": "application/json"}
    inject(_message(traceparent), carrier)
    assert carrier == {"accept": "application/json"}


def test_inject_with_a_setter_fills_a_carrier_of_another_shape() -> None:
    """With ``setter=``, any carrier works, here a list of header pairs."""

    class ListSetter(Setter[list[tuple[str, str]]]):
        def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
            carrier.append((key, value))

    pairs: list[tuple[str, str]] = []
    inject(_message(VALID), pairs, setter=ListSetter())
    assert pairs == [("traceparent", VALID)]


def test_inject_without_a_setter_needs_a_mutable_mapping() -> None:
    """A carrier the default setter cannot write is a ``TypeError`` naming what to pass."""
    with pytest.raises(TypeError, match=r"inject\(\) needs a mutable mapping or a setter; got tuple"):
        inject(_message(VALID), ())


def test_trace_context_round_trips_from_an_inbound_carrier_to_an_outbound_one() -> None:
    """``headers_from_carrier`` then ``inject`` outside any span keeps the inbound context intact."""
    inbound: Iterable[tuple[bytes, bytes]] = [(b"traceparent", VALID.encode()), (b"tracestate", b"vendor=1")]
    message = Message(payload={"q": 1}, headers=headers_from_carrier(inbound, tenant="acme"))
    assert message.trace_id == TRACE_ID
    outbound: dict[str, str] = {}
    inject(message, outbound)
    assert outbound == {"traceparent": VALID, "tracestate": "vendor=1"}


def _mapping_type_check(carrier: Mapping[str, str]) -> Headers:
    """Typed usage: a plain mapping needs no getter."""
    return headers_from_carrier(carrier, tenant="acme")
