"""Building FlowEvents lazily and dispatching them to the logger, the state store and middlewares.

An event is built only when someone consumes it (F13): a middleware is registered, a state store
is set, or the ``penguiflow_otel.core`` logger is enabled for the event's level. Store saves are
serialised in ``seq`` order (F17); consumer failures are logged and swallowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ._events import FlowEvent
from ._state import StoredEvent

if TYPE_CHECKING:
    from ._middlewares import Middleware
    from ._state import StateStore

__all__ = ["CORE_LOGGER", "EventSink", "exception_repr", "exception_text"]

CORE_LOGGER = logging.getLogger("penguiflow_otel.core")

Redactor = Callable[[str, Any], Any]


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, except that a pydantic ``ValidationError`` is rendered without input values."""
    if isinstance(exc, ValidationError):
        details = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        return f"{exc.error_count()} validation error(s) for {exc.title}: {details}"
    return str(exc)


def exception_repr(exc: BaseException) -> str:
    """``repr(exc)``, with a ``ValidationError`` rendered without input values."""
    if isinstance(exc, ValidationError):
        return f"ValidationError({exception_text(exc)!r})"
    return repr(exc)


class EventSink:
    """Where one flow's FlowEvents go."""

    def __init__(
        self,
        middlewares: list[Middleware],
        state_store: StateStore | None,
        on_failure: Callable[[str], None],
    ) -> None:
        self.middlewares = middlewares
        self.state_store = state_store
        self._on_failure = on_failure
        self._seq = 0
        self._save_lock = asyncio.Lock()
        self.store_failures = 0

    def wants(self, level: int) -> bool:
        """Whether an event at ``level`` would be consumed, so is worth building."""
        return bool(self.middlewares) or self.state_store is not None or CORE_LOGGER.isEnabledFor(level)

    async def dispatch(self, event: FlowEvent, level: int, exc_info: BaseException | None = None) -> None:
        """Log, persist, then hand ``event`` to each middleware in registration order."""
        if CORE_LOGGER.isEnabledFor(level):
            CORE_LOGGER.log(
                level,
                event.event_type,
                extra=event.to_payload(),
                exc_info=(type(exc_info), exc_info, exc_info.__traceback__) if exc_info else None,
            )
        if self.state_store is not None:
            await self._save(event)
        for middleware in list(self.middlewares):
            try:
                await middleware(event)
            except Exception:
                CORE_LOGGER.exception("middleware_error", extra={"event_type": event.event_type})
                self._on_failure("middleware")

    async def _save(self, event: FlowEvent) -> None:
        store = self.state_store
        assert store is not None
        self._seq += 1
        stored = StoredEvent.from_flow_event(event, seq=self._seq)
        async with self._save_lock:
            try:
                await store.save_event(stored)
            except Exception:
                self.store_failures += 1
                CORE_LOGGER.exception("state_store_save_failed", extra={"trace_id": event.trace_id})
                self._on_failure("state_store")


def redact(
    redactor: Redactor | None, kind: str, value: object, warn_once: Callable[[], None]
) -> tuple[bool, object]:
    """Apply the redactor; ``(False, None)`` omits the field (no redactor, ``None``, or it raised)."""
    if redactor is None:
        return False, None
    try:
        out = redactor(kind, value)
    except Exception:
        warn_once()
        return False, None
    return out is not None, out


def merged(base: Mapping[str, Any] | None, **more: Any) -> dict[str, Any]:
    """A new dict of ``base`` updated with ``more``."""
    result = dict(base or {})
    result.update(more)
    return result
