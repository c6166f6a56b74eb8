"""Imposing a flow's trace id on its root span: the seed context variable and the seeded generator.

``OTelHooks`` sets :data:`TRACE_ID_SEED` to the wanted id, starts the root span synchronously and
resets the variable before anything can await. :class:`SeededIdGenerator` (an SDK ``IdGenerator``,
so it is defined lazily by :func:`seeded_id_generator`) returns the seeded id when one is set.
This module imports only the standard library at import time.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = ["TRACE_ID_SEED", "seeded_id_generator"]

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
