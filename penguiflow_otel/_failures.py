"""Failed attempts: retry decisions, terminal failures (``FlowError``), deadlines (F11), routing
failures (F4). One ``except`` in the attempt loop hands every failure to :func:`after_failure`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ._dispatch import exception_repr, exception_text
from ._errors import FlowError, FlowErrorCode
from ._message import WM, FinalAnswer, Message
from ._retry import backoff_delay, should_retry
from ._worker_state import DONE, HELD, ROUTE, NodeRuntime, WorkerState, attempt_ended, egress_floe

if TYPE_CHECKING:
    from ._node import Node
    from ._runner import PenguiFlow
    from ._traces import TraceRecord

__all__ = ["after_failure", "deadline_passed", "deliver_final", "routing_failed"]

_perf = time.perf_counter
_INFO, _WARNING, _ERROR = logging.INFO, logging.WARNING, logging.ERROR


async def after_failure(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    exc: Exception,
    outcome: str,
    attempt: int,
    elapsed_ms: float,
    fired_timeout: float | None,
) -> float | None:
    """Report a failed attempt; return the backoff delay when it will be retried, else None."""
    node = rt.node
    policy = node.policy
    trace_id = getattr(item, "trace_id", None)
    is_wm = isinstance(item, Message) and isinstance(item.payload, WM)
    delay: float | None = None
    code: FlowErrorCode | None = None
    if outcome == "deadline":
        code = None if is_wm else FlowErrorCode.DEADLINE_EXCEEDED
    else:
        retryable, predicate_failed = should_retry(policy, exc)
        if predicate_failed:
            flow._consumer_failed("retry_on")
        if retryable and attempt < policy.max_retries:
            delay = backoff_delay(policy, attempt + 1)
        else:
            code = FlowErrorCode.NODE_TIMEOUT if outcome == "timeout" else FlowErrorCode.NODE_EXCEPTION
    if flow._hooks_on:
        flow._safe_hook(
            attempt_ended, flow, ws.handle, outcome, exc, delay, code.value if code else None, fired_timeout
        )
    ws.phase = HELD
    event_type = "node_error" if outcome == "error" else "node_timeout"
    if flow._events.wants(_WARNING):
        extra: dict[str, Any] = {"exception": exception_repr(exc)}
        if outcome == "deadline":
            extra["deadline_s"] = item.deadline_s  # type: ignore[attr-defined]
        await flow._event(
            event_type, node, trace_id, _WARNING, attempt=attempt, latency_ms=elapsed_ms, extra=extra
        )
    if delay is not None:
        if flow._events.wants(_INFO):
            await flow._event(
                "node_retry",
                node,
                trace_id,
                _INFO,
                attempt=attempt + 1,
                extra={"sleep_s": delay, "exception": exception_repr(exc)},
            )
        return delay
    if code is None:  # a controller (WM) message past its deadline ends with a FinalAnswer
        await deliver_final(flow, rt, ws, item, record, "Deadline exceeded")
        return None
    error = _flow_error(node, item, code, exc, attempt, elapsed_ms, fired_timeout)
    await _terminal(flow, rt, ws, item, record, error, exc)
    return None


def _flow_error(
    node: Node,
    item: object,
    code: FlowErrorCode,
    exc: BaseException | None,
    attempt: int,
    latency_ms: float | None,
    fired_timeout: float | None,
    elapsed_s: float | None = None,
) -> FlowError:
    metadata: dict[str, Any] = {"attempt": attempt}
    if latency_ms is not None:
        metadata["latency_ms"] = latency_ms
    name = node.name
    if code is FlowErrorCode.NODE_TIMEOUT:
        timeout_s = node.policy.timeout_s
        metadata["timeout_s"] = timeout_s
        if timeout_s is not None:
            message = f"Node '{name}' timed out after {timeout_s:.2f}s"
        else:
            message = exception_text(exc) if exc is not None else "timed out"
    elif code is FlowErrorCode.DEADLINE_EXCEEDED:
        metadata["deadline_s"] = getattr(item, "deadline_s", None)
        seconds = elapsed_s if elapsed_s is not None else (latency_ms or 0.0) / 1000
        message = f"Node '{name}' exceeded its deadline after {seconds:.2f}s"
    else:
        assert exc is not None
        metadata["exception_repr"] = exception_repr(exc)
        message = f"Node '{name}' raised {type(exc).__name__}: {exception_text(exc)}"
    return FlowError(
        trace_id=getattr(item, "trace_id", None),
        node_name=name,
        node_id=node.node_id,
        code=code,
        message=message,
        original_exc=exc,
        metadata=metadata,
    )


async def _terminal(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    error: FlowError,
    exc: BaseException | None,
) -> None:
    """Report a terminal failure (``node_failed``) and deliver the error if errors go to the Rookery."""
    if flow._events.wants(_ERROR):
        extra = flow._item_extra(item)
        extra["exception"] = exception_repr(exc) if exc is not None else error.message
        extra["flow_error"] = error.to_payload()
        await flow._event(
            "node_failed",
            rt.node,
            error.trace_id,
            _ERROR,
            attempt=int(error.metadata.get("attempt", 0)),
            latency_ms=error.metadata.get("latency_ms"),
            extra=extra,
            exc=exc,
        )
    if flow._emit_errors_to_rookery:
        ws.phase = ROUTE
        await flow._deliver(egress_floe(rt), rt.node, error, record, ws.stamp, ws)
    ws.phase = DONE


async def deadline_passed(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    attempt: int,
    held_since: float,
) -> None:
    """F11: an attempt due to start after the deadline does not start."""
    if isinstance(item, Message) and isinstance(item.payload, WM):
        await deliver_final(flow, rt, ws, item, record, "Deadline exceeded")
        return
    error = _flow_error(
        rt.node,
        item,
        FlowErrorCode.DEADLINE_EXCEEDED,
        None,
        attempt,
        None,
        None,
        elapsed_s=_perf() - held_since,
    )
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.failed, rt.node, ws.stamp, None, error.code, None, None)
    await _terminal(flow, rt, ws, item, record, error, None)


async def deliver_final(
    flow: PenguiFlow, rt: NodeRuntime, ws: WorkerState, item: object, record: TraceRecord | None, text: str
) -> None:
    assert isinstance(item, Message)
    ws.phase = ROUTE
    result = item.model_copy(update={"payload": FinalAnswer(text=text)})
    await flow._deliver(egress_floe(rt), rt.node, result, record, ws.handle, ws)
    ws.phase = DONE


async def routing_failed(
    flow: PenguiFlow,
    rt: NodeRuntime,
    ws: WorkerState,
    item: object,
    record: TraceRecord | None,
    exc: Exception,
    attempt: int,
    invoked_ms: float,
) -> None:
    node = rt.node
    error = _flow_error(node, item, FlowErrorCode.NODE_EXCEPTION, exc, attempt, invoked_ms, None)
    error.metadata["phase"] = "route"
    if flow._hooks_on:
        flow._safe_hook(flow._hooks.failed, node, ws.stamp, ws.handle, error.code, exc, "route")
    ws.phase = HELD
    if flow._events.wants(_WARNING):
        await flow._event(
            "node_error",
            node,
            getattr(item, "trace_id", None),
            _WARNING,
            attempt=attempt,
            latency_ms=invoked_ms,
            extra={"exception": exception_repr(exc), "phase": "route"},
        )
    await _terminal(flow, rt, ws, item, record, error, exc)
