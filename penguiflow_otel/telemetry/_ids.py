"""Imposing a flow's trace id on its root span: the seed context variable and the seeded generator.

``OTelHooks`` sets :data:`TRACE_ID_SEED` to the wanted id, starts the root span synchronously and
resets the variable before anything can await. :class:`SeededIdGenerator` (an SDK ``IdGenerator``,
so it is defined lazily by :func:`seeded_id_generator`) returns the seeded id when one is set.
This module imports only the standard library at import time.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import Tracer

__all__ = ["TRACE_ID_SEED", "seeded_id_generator", "seeding_supported"]

TRACE_ID_SEED: ContextVar[tuple[int, bool] | None] = ContextVar("penguiflow_otel_trace_id_seed", default=None)
"""``(trace id, is random)`` for the root span being started, else ``None``."""

_CLASS: Any = None


def seeded_id_generator(inner: IdGenerator | None = None) -> IdGenerator:
    """A generator answering with the seeded trace id when set, else delegating to ``inner``."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _define()
    generator: IdGenerator = _CLASS(inner)
    return generator


def _define() -> Any:
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class SeededIdGenerator(IdGenerator):
        """Returns the seeded trace id when one is set; otherwise the wrapped generator's."""

        def __init__(self, inner: IdGenerator | None) -> None:
            self.inner = inner if inner is not None else RandomIdGenerator()

        def generate_span_id(self) -> int:
            return self.inner.generate_span_id()

        def generate_trace_id(self) -> int:
            seed = TRACE_ID_SEED.get()
            return seed[0] if seed is not None else self.inner.generate_trace_id()

        def is_trace_id_random(self) -> bool:
            seed = TRACE_ID_SEED.get()
            return seed[1] if seed is not None else self.inner.is_trace_id_random()

    return SeededIdGenerator


_SEEDING_WARNED = False
_logger = logging.getLogger("penguiflow_otel.telemetry")


def seeding_supported(tracer: Tracer | None) -> bool:
    """Whether the tracer's id generator honours the seed (telemetry.md section 4.2)."""
    if tracer is None:
        return False
    generator = getattr(tracer, "id_generator", None)
    if generator is None:
        return False
    if type(generator).__name__ == "SeededIdGenerator":
        return True
    try:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    except ImportError:  # pragma: no cover - the SDK ships with the distribution
        return False
    if type(generator) is RandomIdGenerator:
        tracer.id_generator = seeded_id_generator(generator)  # type: ignore[attr-defined]
        return True
    global _SEEDING_WARNED
    if not _SEEDING_WARNED:  # once per process (telemetry.md section 4.2)
        _SEEDING_WARNED = True
        _logger.warning(
            "trace ids cannot be imposed on this tracer's id generator; roots carry penguiflow.trace_id"
        )
    return False
