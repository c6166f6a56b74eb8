"""Retry policy around one scoped attempt: backoff, jitter and ``retry_on``."""

from __future__ import annotations

import logging
import random

from ._node import NodePolicy

__all__ = ["backoff_delay", "should_retry"]

_logger = logging.getLogger("penguiflow_otel.core")


def backoff_delay(policy: NodePolicy, attempt: int, rand: float | None = None) -> float:
    """The delay before ``attempt`` (1-based retry number), capped, then jittered.

    The slept delay is ``d * (1 - jitter * U)`` with ``U`` uniform in [0, 1), so it never
    exceeds the computed, capped ``d``.
    """
    delay = policy.backoff_base * (policy.backoff_mult ** (attempt - 1))
    if policy.max_backoff is not None:
        delay = min(delay, policy.max_backoff)
    if policy.jitter:
        u = random.random() if rand is None else rand
        delay *= 1.0 - policy.jitter * u
    return max(delay, 0.0)


def should_retry(policy: NodePolicy, exc: BaseException) -> tuple[bool, bool]:
    """Whether ``exc`` is retryable under ``policy.retry_on``; second value: the predicate raised.

    ``None`` retries every ``Exception``; a type or tuple is checked with ``isinstance``; a
    predicate by its result. A predicate that raises means "not retryable" and is logged.
    """
    retry_on = policy.retry_on
    if retry_on is None:
        return isinstance(exc, Exception), False
    if isinstance(retry_on, type | tuple):
        return isinstance(exc, retry_on), False
    try:
        return bool(retry_on(exc)), False
    except Exception:
        _logger.warning("retry_on_failed", exc_info=True)
        return False, True
