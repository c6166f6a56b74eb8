"""What spans may carry beyond names and numbers: exceptions (with the semconv exception-signal
opt-in) and, only with a redactor, captured message content. Texts of a pydantic ``ValidationError`` never
include input values.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["captured", "exception_signal", "exception_texts", "record_exception"]

_logger = logging.getLogger("penguiflow_otel.telemetry")
_CAPTURE_LIMIT = 16_384


def record_exception(span: Span, exc: BaseException, *, on_span: bool, as_log: bool) -> None:
    """The exception as a span event, a log record on ``penguiflow_otel.telemetry``, or both."""
    if on_span:
        if isinstance(exc, ValidationError):
            message, stacktrace = exception_texts(exc)
            attributes = {"exception.message": message, "exception.stacktrace": stacktrace}
            span.record_exception(exc, attributes=attributes)
        else:
            span.record_exception(exc)
    if as_log:
        message, stacktrace = exception_texts(exc)
        ctx = span.get_span_context()
        _logger.error(
            "exception",
            extra={
                "exception.type": type(exc).__qualname__,
                "exception.message": message,
                "exception.stacktrace": stacktrace,
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
            },
        )


def exception_texts(exc: BaseException) -> tuple[str, str]:
    """``exception.message`` and ``exception.stacktrace``; a ``ValidationError`` without input values."""
    if not isinstance(exc, ValidationError):
        return str(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    from .._dispatch import exception_text

    text = exception_text(exc)
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return text, f"Traceback (most recent call last):\n{frames}{type(exc).__qualname__}: {text}\n"


def exception_signal() -> tuple[bool, bool]:
    """Whether exceptions go on the span and/or to a log record (``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``)."""
    raw = os.environ.get("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "")
    values = {part.strip().lower() for part in raw.split(",")}
    if "logs/dup" in values:
        return True, True
    if "logs" in values:
        return False, True
    return True, False


def captured(value: object) -> str:
    """A redactor's value as JSON (else ``repr``), truncated to the capture limit."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except Exception:  # not JSON-serialisable (or circular): its repr
        try:
            text = repr(value)
        except Exception:
            text = f"<unrepresentable {type(value).__name__}>"
    return text[:_CAPTURE_LIMIT]
