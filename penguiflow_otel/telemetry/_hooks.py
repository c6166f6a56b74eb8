"""``OTelHooks``: the runtime's lifecycle hooks as OpenTelemetry spans and metrics (API only).

One instance per running flow, holding pre-bound attribute mappings for its nodes and edges.
Every method is synchronous and O(1); the runtime calls each through a guard that contains
exceptions, and spans always end (telemetry.md section 6). The handles this module returns are
opaque to the runtime:

- ``TraceHandle``: the root span ``flow {flow}`` of one flow trace and its failure/drop tallies;
- ``Stamp``: what an enqueued item carries: the producer span, the trace handle, the enqueue time;
- ``Attempt``: one node attempt: its span (or the root's non-recording span when unsampled).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .._message import Message, trace_id_was_minted
from . import names as n
from ._attr_sets import AttributeSets
from ._handles import Attempt, Stamp, TraceHandle, description, error_type_of
from ._ids import TRACE_ID_SEED, seeding_supported
from ._instruments import RuntimeInstruments, instruments_for
from ._options import current_options
from ._sampling import unsampled_roots
from ._span_content import captured, exception_signal, record_exception
from ._w3c import TraceParent, otel_trace_id, parse_traceparent

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .._runner import PenguiFlow

__all__ = ["OTelHooks"]

_logger = logging.getLogger("penguiflow_otel.telemetry")
_perf = time.perf_counter
_ATTEMPT_KEY = otel_context.create_key("penguiflow_otel.attempt")
_CAPTURE_LIMIT = 16_384
_INTERNAL = SpanKind.INTERNAL


class OTelHooks:
    """Spans and metrics for one running flow."""

    def __init__(
        self, flow: PenguiFlow, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        from .._version import __version__

        self.flow = flow
        self.flow_name = flow.name
        self.options = current_options()
        self.tracer: Tracer | None = (
            tracer_provider.get_tracer(n.SCOPE_NAME, __version__, schema_url=n.SCHEMA_URL)
            if tracer_provider is not None
            else None
        )
        self.metrics: RuntimeInstruments | None = (
            instruments_for(meter_provider) if meter_provider is not None else None
        )
        self.flow_attrs = {n.ATTR_FLOW_NAME: self.flow_name}
        self.root_name = n.SPAN_FLOW.format(flow=self.flow_name)
        self.sets = AttributeSets(self.flow_name)
        self._tenant_on_metrics = self.options.tenant == "spans+metrics"
        self._seeding = seeding_supported(self.tracer)
        self._roots = unsampled_roots(self.tracer) if self._seeding else None
        self._exception_on_span, self._exception_as_log = exception_signal()

    def _error_type(self, value: str) -> str:
        return self.metrics.error_type(value) if self.metrics is not None else value

    # Flow lifecycle --------------------------------------------------------------------------

    def flow_started(self, flow: object) -> None:
        if self.metrics is not None:
            self.metrics.add_flow(self.flow)

    def flow_stopped(self, flow: object, discarded: int) -> None:
        if self.metrics is not None:
            self.metrics.remove_flow(self.flow)

    # Traces ----------------------------------------------------------------------------------

    def trace_started(self, flow: object, item: object, producer: object) -> TraceHandle:
        tracer = self.tracer
        if tracer is None:  # metrics only: the handle still times the trace and tallies its drops
            return self._untraced_handle(item)
        trace_id = str(getattr(item, "trace_id", ""))
        wanted, mapped = otel_trace_id(trace_id)
        tenant = None
        parent_ctx = None
        links: list[Link] = []
        is_random = False
        invalid = False
        if isinstance(item, Message):
            tenant = item.headers.tenant
            is_random = trace_id_was_minted(item)
            raw = item.headers.traceparent
            if raw is not None:
                parsed = self._parse_traceparent(raw)
                invalid = parsed is None
                if parsed is not None and int(parsed.trace_id, 16) == wanted:
                    remote = SpanContext(
                        wanted,
                        int(parsed.parent_id, 16),
                        is_remote=True,
                        trace_flags=TraceFlags(parsed.flags),
                        trace_state=_trace_state(item.headers.tracestate),
                    )
                    parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote))
        caller = producer.span if isinstance(producer, Attempt) else trace.get_current_span()
        caller_ctx = caller.get_span_context()
        if caller_ctx.is_valid:
            if caller_ctx.trace_id == wanted:
                parent_ctx = trace.set_span_in_context(caller)
            else:
                links.append(Link(caller_ctx, {n.ATTR_LINK_TYPE: n.LINK_TYPE_CALLER}))
        if parent_ctx is None and self._roots is not None:
            unsampled = self._roots.unsampled(wanted, is_random)
            if unsampled is not None:
                return TraceHandle(unsampled, tenant)
        attrs = self._root_attrs(item, trace_id, mapped, invalid)
        if parent_ctx is None and not self._seeding:
            attrs.setdefault(n.ATTR_TRACE_ID, trace_id)
        if parent_ctx is None:
            token = TRACE_ID_SEED.set((wanted, is_random))
            try:
                span = tracer.start_span(
                    self.root_name,
                    context=otel_context.Context(),
                    kind=_INTERNAL,
                    attributes=attrs,
                    links=links,
                )
            finally:
                TRACE_ID_SEED.reset(token)
        else:
            span = tracer.start_span(
                self.root_name, context=parent_ctx, kind=_INTERNAL, attributes=attrs, links=links
            )
        return TraceHandle(span, tenant)

    def _untraced_handle(self, item: object) -> TraceHandle:
        """A trace's handle when no tracer is resolved: no span, but duration, outcome and drops."""
        if not isinstance(item, Message):
            return TraceHandle(trace.INVALID_SPAN, None)
        if item.headers.traceparent is not None:
            self._parse_traceparent(item.headers.traceparent)
        return TraceHandle(trace.INVALID_SPAN, item.headers.tenant)

    def _parse_traceparent(self, raw: str) -> TraceParent | None:
        """The inbound ``traceparent``; a malformed one counts in ``propagation.invalid``."""
        parsed = parse_traceparent(raw)
        if parsed is None and self.metrics is not None:
            self.metrics.propagation_invalid.add(1, self.flow_attrs)
        return parsed

    def _root_attrs(self, item: object, trace_id: str, mapped: bool, invalid: bool) -> dict[str, Any]:
        """The root span's start attributes (section 5.2)."""
        attrs: dict[str, Any] = {n.ATTR_FLOW_NAME: self.flow_name}
        if mapped:
            attrs[n.ATTR_TRACE_ID] = trace_id
        if isinstance(item, Message):
            if self.options.tenant != "off":
                attrs[n.ATTR_TENANT] = item.headers.tenant
            if item.deadline_s is not None:
                attrs[n.ATTR_MESSAGE_DEADLINE] = item.deadline_s
        if invalid:
            attrs[n.ATTR_TRACEPARENT_INVALID] = True
        return attrs

    def trace_ended(self, handle: object, reason: str) -> None:
        if not isinstance(handle, TraceHandle):
            return
        span = handle.span
        if reason == "ok":
            outcome = n.OUTCOME_ERROR if handle.error_type is not None else n.OUTCOME_OK
        else:
            outcome = n.OUTCOME_CANCELLED
        if span.is_recording():
            end_attrs: dict[str, Any] = {
                n.ATTR_OUTCOME: outcome,
                n.ATTR_TRACE_MESSAGES_DROPPED: handle.dropped,
            }
            if outcome == n.OUTCOME_CANCELLED:
                reason_attr = n.CANCEL_REASON_STOP if reason == "stopped" else n.CANCEL_REASON_TRACE_CANCEL
                end_attrs[n.ATTR_CANCEL_REASON] = reason_attr
            elif outcome == n.OUTCOME_ERROR and handle.error_type is not None:
                end_attrs[n.ATTR_ERROR_TYPE] = handle.error_type
                if handle.error_code is not None:
                    end_attrs[n.ATTR_ERROR_CODE] = handle.error_code
                span.set_status(Status(StatusCode.ERROR, handle.error_code))
            span.set_attributes(end_attrs)
        self._end(span)
        metrics = self.metrics
        if metrics is not None:
            error_type = (
                self._error_type(handle.error_type)
                if outcome == n.OUTCOME_ERROR and handle.error_type is not None
                else None
            )
            tenant = metrics.tenant(handle.tenant) if self._tenant_on_metrics and handle.tenant else None
            metrics.trace_duration.record(
                _perf() - handle.started, self.sets.trace_metric(outcome, error_type, tenant)
            )

    # Items -----------------------------------------------------------------------------------

    def enqueue_started(self, floe: Any, item: object, producer: object, handle: object) -> Stamp:
        queue = floe.name if floe is not None else n.ENDPOINT_EGRESS
        deadline = getattr(item, "deadline_s", None)
        if isinstance(producer, Attempt):
            return Stamp(producer.span, handle if isinstance(handle, TraceHandle) else None, queue, deadline)
        if isinstance(handle, TraceHandle):
            return Stamp(handle.span, handle, queue, deadline)
        if self.tracer is not None and floe is not None and floe.source.name == "OpenSea":
            root = self.tracer.start_span(self.root_name, kind=_INTERNAL, attributes=self.flow_attrs)
            stamp = Stamp(root, None, queue)
            stamp.payload_root = True
            return stamp
        current = trace.get_current_span()
        return Stamp(current if current.get_span_context().is_valid else None, None, queue)

    def enqueue_finished(self, stamp: object, waited_s: float) -> None:
        if not isinstance(stamp, Stamp):
            return
        if stamp.payload_root and stamp.parent is not None:
            stamp.parent.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_OK)
            self._end(stamp.parent)
        if waited_s > 0.0:
            stamp.queued_at = _perf()  # queue wait counts from the moment the item is in the queue
            metrics = self.metrics
            if metrics is not None:
                metrics.queue_blocked.record(waited_s, self.sets.queue_metric(stamp.queue))

    def dequeued(self, floe: Any, stamp: object) -> None:
        metrics = self.metrics
        if metrics is not None and isinstance(stamp, Stamp):
            metrics.queue_wait.record(_perf() - stamp.queued_at, self.sets.queue_metric(floe.name))

    def result_fetched(self, floe: object, stamp: object) -> None:
        metrics = self.metrics
        if metrics is not None and isinstance(stamp, Stamp):
            metrics.queue_wait.record(_perf() - stamp.queued_at, self.sets.queue_metric(stamp.queue))

    # Attempts --------------------------------------------------------------------------------

    def attempt_started(
        self, node: Any, stamp: object, attempt: int, item: object, previous: object
    ) -> Attempt:
        node_name = str(node.name)
        stamp_ = stamp if isinstance(stamp, Stamp) else None
        parent = stamp_.parent if stamp_ is not None else None
        tracer = self.tracer
        quiet = node_name in self.options.quiet_nodes
        if (
            tracer is None
            or quiet
            or (parent is not None and not parent.get_span_context().trace_flags.sampled)
        ):
            span = parent if parent is not None else trace.INVALID_SPAN
            return Attempt(span, False, stamp_, node_name)
        links = None
        if isinstance(previous, Attempt) and previous.own_span:
            links = [Link(previous.span.get_span_context(), {n.ATTR_LINK_TYPE: n.LINK_TYPE_RETRY})]
        ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.Context()
        attrs = self.sets.span_start(node_name, attempt)
        if stamp_ is not None:
            # The parent is sampled here, so under the parent-based samplers this span records.
            wait = _perf() - stamp_.queued_at
            attrs = {**attrs, n.ATTR_QUEUE_NAME: stamp_.queue, n.ATTR_QUEUE_WAIT_TIME: wait}
        span = tracer.start_span(
            self.sets.node_span_name(node_name), context=ctx, kind=_INTERNAL, attributes=attrs, links=links
        )
        if self.flow._redactor is not None and span.is_recording():
            self._captured_item(span, item)
        return Attempt(span, True, stamp_, node_name)

    def _record(self, span: Span, exc: BaseException) -> None:
        record_exception(span, exc, on_span=self._exception_on_span, as_log=self._exception_as_log)

    def _captured_item(self, span: Span, item: object) -> None:
        """``message.payload`` / ``message.meta``: what the flow's redactor returns (runtime F15)."""
        payload = item.payload if isinstance(item, Message) else item
        keep, value = self.flow._redact("payload", payload)
        if keep:
            span.set_attribute(n.ATTR_MESSAGE_PAYLOAD, captured(value))
        if isinstance(item, Message):
            keep, value = self.flow._redact("meta", item.meta)
            if keep:
                span.set_attribute(n.ATTR_MESSAGE_META, captured(value))

    def enter_attempt(self, attempt: object) -> object:
        if not isinstance(attempt, Attempt):
            return None
        span = attempt.span
        stamp = attempt.stamp
        handle = stamp.handle if stamp is not None else None
        if attempt.own_span:
            base = handle.base if handle is not None else None
            ctx = otel_context.set_value(_ATTEMPT_KEY, attempt, trace.set_span_in_context(span, base))
        elif span is trace.INVALID_SPAN:
            return None
        elif handle is not None and span is handle.span:
            # An unsampled trace: one cached context per trace, so a hop costs one attach.
            cached = handle.root_context
            if cached is None:
                cached = handle.root_context = trace.set_span_in_context(span, handle.base)
            ctx = cached
        else:
            ctx = trace.set_span_in_context(span)
        return otel_context.attach(ctx)

    def exit_attempt(self, token: object) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def attempt_ended(
        self,
        attempt: object,
        outcome: str,
        exc: BaseException | None,
        *,
        retry_delay_s: float | None,
        failure_code: str | None,
        timeout_s: float | None = None,
    ) -> None:
        if not isinstance(attempt, Attempt):
            return
        attempt.invoked_s = _perf() - attempt.started
        if outcome == "success":
            return
        span = attempt.span
        metrics = self.metrics
        if exc is not None and not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, ...
            self._end_cancelled(attempt, None)
            return
        if outcome in ("cancelled", "stopped"):
            self._end_cancelled(attempt, "stop" if outcome == "stopped" else "trace_cancel")
            return
        error_type = self._error_type(error_type_of(exc, outcome))
        if attempt.own_span:
            if span.is_recording():
                span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_ERROR)
                span.set_attribute(n.ATTR_ERROR_TYPE, error_type)
                if timeout_s is not None and outcome == "timeout":  # the policy bound, not the deadline
                    span.set_attribute(n.ATTR_NODE_TIMEOUT, timeout_s)
                if retry_delay_s is not None:
                    span.set_attribute(n.ATTR_RETRY_DELAY, retry_delay_s)
                if failure_code is not None:
                    span.set_attribute(n.ATTR_ERROR_CODE, failure_code)
                if exc is not None:
                    record_exception(
                        span, on_span=self._exception_on_span, as_log=self._exception_as_log, exc=exc
                    )
                self._stream_attrs(attempt)
            span.set_status(Status(StatusCode.ERROR, description(exc)))
            self._end(span)
        if metrics is not None:
            metrics.node_duration.record(
                attempt.invoked_s, self.sets.node_metric(attempt.node_name, n.OUTCOME_ERROR, error_type)
            )
            node_attrs = self.sets.node_metric(attempt.node_name, "", error_type)
            if retry_delay_s is not None:
                metrics.node_retries.add(1, _without_outcome(node_attrs))
            if failure_code is not None:
                metrics.node_failures.add(1, _without_outcome(node_attrs))
        if failure_code is not None and attempt.stamp is not None and attempt.stamp.handle is not None:
            attempt.stamp.handle.fail(error_type, failure_code)

    def _end_cancelled(self, attempt: Attempt, reason: str | None) -> None:
        span = attempt.span
        if attempt.own_span:
            if span.is_recording():
                span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_CANCELLED)
                if reason is not None:
                    span.set_attribute(n.ATTR_CANCEL_REASON, reason)
                self._stream_attrs(attempt)
            self._end(span)
        if self.metrics is not None:
            invoked = attempt.invoked_s if attempt.invoked_s is not None else _perf() - attempt.started
            self.metrics.node_duration.record(
                invoked, self.sets.node_metric(attempt.node_name, n.OUTCOME_CANCELLED, None)
            )

    def routed(self, attempt: object, outcome: str, blocked_s: float) -> None:
        if not isinstance(attempt, Attempt):
            return
        if outcome != "ok":
            self._end_cancelled(attempt, "stop" if outcome == "stopped" else "trace_cancel")
            return
        span = attempt.span
        if attempt.own_span:
            if span.is_recording():
                if blocked_s > 0.0:
                    span.set_attribute(n.ATTR_NODE_BLOCKED_TIME, blocked_s)
                self._stream_attrs(attempt)
                span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_OK)
            self._end(span)
        if self.metrics is not None:
            invoked = attempt.invoked_s if attempt.invoked_s is not None else _perf() - attempt.started
            self.metrics.node_duration.record(
                invoked, self.sets.node_metric(attempt.node_name, n.OUTCOME_OK, None)
            )

    def failed(
        self,
        node: Any,
        stamp: object,
        attempt: object,
        code: str,
        exc: BaseException | None,
        phase: str | None,
    ) -> None:
        node_name = str(node.name)
        error_type = self._error_type(
            n.ERROR_TYPE_DEADLINE_EXCEEDED
            if exc is None and code == "DEADLINE_EXCEEDED"
            else error_type_of(exc, "error")
        )
        if isinstance(attempt, Attempt):
            span = attempt.span
            if attempt.own_span:
                if span.is_recording():
                    span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_ERROR)
                    span.set_attribute(n.ATTR_ERROR_TYPE, error_type)
                    span.set_attribute(n.ATTR_ERROR_CODE, code)
                    if phase is not None:
                        span.set_attribute(n.ATTR_ERROR_PHASE, phase)
                    if exc is not None:
                        record_exception(
                            span, on_span=self._exception_on_span, as_log=self._exception_as_log, exc=exc
                        )
                span.set_status(Status(StatusCode.ERROR, description(exc)))
                self._end(span)
            if self.metrics is not None:
                invoked = attempt.invoked_s if attempt.invoked_s is not None else _perf() - attempt.started
                self.metrics.node_duration.record(
                    invoked, self.sets.node_metric(node_name, n.OUTCOME_ERROR, error_type)
                )
        if self.metrics is not None:
            self.metrics.node_failures.add(
                1, _without_outcome(self.sets.node_metric(node_name, "", error_type))
            )
        handle = stamp.handle if isinstance(stamp, Stamp) else None
        if handle is not None:
            handle.fail(error_type, code)

    def joined(self, attempt: object, stamps: Sequence[object]) -> None:
        if not isinstance(attempt, Attempt) or not attempt.own_span or not attempt.span.is_recording():
            return
        span = attempt.span
        span.set_attribute(n.ATTR_JOIN_SIZE, len(stamps))
        for index, stamp in enumerate(stamps):
            if isinstance(stamp, Stamp) and stamp.parent is not None:
                span.add_link(
                    stamp.parent.get_span_context(),
                    {n.ATTR_LINK_TYPE: n.LINK_TYPE_PRODUCER, n.ATTR_JOIN_INDEX: index},
                )

    # Drops, cancellation, streams, consumers -------------------------------------------------

    def dropped(self, flow: object, node_name: str, stamp: object, reason: str, count: int) -> None:
        stamp_ = stamp if isinstance(stamp, Stamp) else None
        handle = stamp_.handle if stamp_ is not None else None
        if handle is not None:
            handle.dropped += count
        if self.metrics is not None:
            self.metrics.message_dropped.add(count, self.sets.drop(node_name, reason))
        if reason == n.DROP_REASON_DEADLINE:
            self._deadline_skip_span(node_name, stamp_)
            if handle is not None:
                handle.fail(n.ERROR_TYPE_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED")
        elif reason == n.DROP_REASON_JOIN_TIMEOUT and handle is not None:
            handle.fail(n.ERROR_TYPE_JOIN_TIMEOUT, "JOIN_TIMEOUT")

    def _deadline_skip_span(self, node_name: str, stamp: Stamp | None) -> None:
        parent = stamp.parent if stamp is not None else None
        if self.tracer is None or (parent is not None and not parent.get_span_context().trace_flags.sampled):
            return
        ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.Context()
        span = self.tracer.start_span(
            self.sets.node_span_name(node_name),
            context=ctx,
            kind=_INTERNAL,
            attributes=self.sets.span_start(node_name, 0),
        )
        if span.is_recording():
            span.set_attribute(n.ATTR_OUTCOME, n.OUTCOME_ERROR)
            span.set_attribute(n.ATTR_ERROR_TYPE, n.ERROR_TYPE_DEADLINE_EXCEEDED)
            if stamp is not None and isinstance(stamp.deadline, float | int):
                span.set_attribute(n.ATTR_MESSAGE_DEADLINE, float(stamp.deadline))
        span.set_status(Status(StatusCode.ERROR, "deadline exceeded before the node ran"))
        self._end(span)

    def cancel_accepted(self, handle: object, purged: int) -> None:
        if isinstance(handle, TraceHandle):
            handle.cancelled = True
            if handle.span.is_recording():
                handle.span.add_event(n.EVENT_CANCEL, {n.ATTR_CANCEL_PURGED: purged})
            tenant = handle.tenant
        else:
            tenant = None
        if self.metrics is not None:
            attrs: dict[str, Any] = dict(self.flow_attrs)
            if self._tenant_on_metrics and tenant is not None:
                attrs[n.ATTR_TENANT] = self.metrics.tenant(tenant)
            self.metrics.trace_cancellations.add(1, attrs)

    def chunk_emitted(self, owner: Any, chunk: object) -> None:
        owner_name = str(owner.name)
        node_name = n.ENDPOINT_INGRESS if owner_name == "OpenSea" else owner_name
        if self.metrics is not None:
            self.metrics.stream_chunks.add(1, {n.ATTR_FLOW_NAME: self.flow_name, n.ATTR_NODE_NAME: node_name})
        attempt = otel_context.get_value(_ATTEMPT_KEY)
        if isinstance(attempt, Attempt) and attempt.node_name == owner_name:
            attempt.chunks += 1
            if attempt.first_chunk_s is None:
                attempt.first_chunk_s = _perf() - attempt.started

    def _stream_attrs(self, attempt: Attempt) -> None:
        if attempt.chunks:
            attempt.span.set_attribute(n.ATTR_STREAM_CHUNKS, attempt.chunks)
            if attempt.first_chunk_s is not None:
                attempt.span.set_attribute(n.ATTR_STREAM_TIME_TO_FIRST_CHUNK, attempt.first_chunk_s)

    def consumer_failed(self, flow: object, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.consumer_failures.add(
                1, {n.ATTR_FLOW_NAME: self.flow_name, n.ATTR_CONSUMER_KIND: kind}
            )

    def _end(self, span: Span) -> None:
        """End ``span``; a raising span processor costs that span's export, not what the hook does next."""
        try:
            span.end()
        except Exception:
            _logger.debug("ending a span failed", exc_info=True)
            self.instrumentation_error()

    def instrumentation_error(self) -> None:
        """Count a failure inside a hook (the runtime's guard calls this)."""
        if self.metrics is not None:
            self.metrics.instrumentation_error()


def _without_outcome(attrs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if key != n.ATTR_OUTCOME}


def _trace_state(header: str | None) -> Any:
    from opentelemetry.trace.span import TraceState

    if not header:
        return TraceState()
    try:
        return TraceState.from_header([header])
    except Exception:  # an invalid tracestate is dropped, not a reason to reject the traceparent
        return TraceState()
