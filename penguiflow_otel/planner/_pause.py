"""Pause records and where they are kept: the ``PlannerStateStore`` seam and its in-memory default."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

from .._clock import Clock
from ._errors import PauseTokenError, PauseTokenReason

__all__ = ["RECORD_VERSION", "InMemoryPlannerStateStore", "PlannerStateStore"]

RECORD_VERSION = 1


@runtime_checkable
class PlannerStateStore(Protocol):
    """Keeps pause records between a pause and its resume.

    ``load_planner_state`` MUST atomically remove the record it returns: a token is single use.
    It returns ``None`` for a token it does not know, or raises :class:`PauseTokenError` itself
    when it can tell why the token is unusable.
    """

    async def save_planner_state(self, token: str, record: dict[str, Any]) -> None: ...

    async def load_planner_state(self, token: str) -> dict[str, Any] | None: ...


class InMemoryPlannerStateStore:
    """Pause records in process memory.

    Enforces ``expires_at``, evicts the oldest record beyond ``max_records``, and keeps a
    tombstone of each used or expired token for the record's lifetime, so reuse reads as
    ``"consumed"`` (or ``"expired"``) rather than ``"unknown"``.
    """

    def __init__(self, max_records: int = 10_000, *, clock: Clock | None = None) -> None:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        self.max_records = max_records
        self._clock = clock
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._tombstones: OrderedDict[str, tuple[PauseTokenReason, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _now(self) -> float:
        return self._clock.time() if self._clock is not None else time.time()

    async def save_planner_state(self, token: str, record: dict[str, Any]) -> None:
        """Keep ``record`` under ``token``, evicting the oldest record beyond ``max_records``."""
        self._records[token] = record
        self._records.move_to_end(token)
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        """Remove and return the record of ``token``.

        Raises:
            PauseTokenError: ``"expired"`` past ``expires_at``; ``"consumed"`` for a used token.
        """
        now = self._now()
        record = self._records.pop(token, None)
        if record is None:
            self._check_tombstone(token, now)
            return None
        expires_at = record.get("expires_at")
        created_at = record.get("created_at", now)
        lifetime = None if expires_at is None else float(expires_at) - float(created_at)
        if expires_at is not None and now >= float(expires_at):
            self._bury(token, "expired", now + max(lifetime or 0.0, 0.0))
            raise PauseTokenError("expired")
        self._bury(token, "consumed", None if lifetime is None else now + lifetime)
        return record

    def _bury(self, token: str, reason: PauseTokenReason, until: float | None) -> None:
        self._tombstones[token] = (reason, until)
        while len(self._tombstones) > self.max_records:
            self._tombstones.popitem(last=False)

    def _check_tombstone(self, token: str, now: float) -> None:
        found = self._tombstones.get(token)
        if found is None:
            return
        reason, until = found
        if until is not None and now > until:
            del self._tombstones[token]
            return
        raise PauseTokenError(reason)
