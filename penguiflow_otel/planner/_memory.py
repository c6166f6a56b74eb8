"""Optional short-term memory: recent turns of a session, shown to the LLM as read-only context."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "InMemoryShortTermMemory",
    "MemoryBudget",
    "MemoryIsolation",
    "MemoryKey",
    "ShortTermMemory",
    "ShortTermMemoryConfig",
    "resolve_memory_key",
]

_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class MemoryKey:
    """Whose memory: a tenant, a user and a session."""

    tenant_id: str
    user_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """How much memory is kept: recent turns, and a token ceiling (tokens ≈ characters / 4)."""

    full_zone_turns: int = 5
    total_max_tokens: int = 10_000
    overflow_policy: Literal["truncate_oldest", "error"] = "truncate_oldest"


@dataclass(frozen=True, slots=True)
class MemoryIsolation:
    """Which ``tool_context`` keys make a :class:`MemoryKey`; without a full key memory is off."""

    tenant_key: str = "tenant_id"
    user_key: str = "user_id"
    session_key: str = "session_id"
    require_explicit_key: bool = True


@dataclass(frozen=True, slots=True)
class ShortTermMemoryConfig:
    """Short-term memory settings; ``strategy="none"`` keeps memory off."""

    strategy: Literal["none", "truncation"] = "truncation"
    budget: MemoryBudget = field(default_factory=MemoryBudget)
    isolation: MemoryIsolation = field(default_factory=MemoryIsolation)
    include_trajectory_digest: bool = True


@runtime_checkable
class ShortTermMemory(Protocol):
    """A memory the planner reads before a run and writes after an ``answer_complete``."""

    async def add_turn(self, key: MemoryKey, turn: Mapping[str, Any]) -> None: ...

    async def get_llm_context(self, key: MemoryKey) -> Mapping[str, Any]: ...

    async def flush(self) -> None: ...


def _tokens(turn: Mapping[str, Any]) -> int:
    return len(json.dumps(turn, ensure_ascii=False, default=str)) // 4


class InMemoryShortTermMemory:
    """Turns per :class:`MemoryKey` in process memory, at most 10 000 keys (least recently used go)."""

    def __init__(self, config: ShortTermMemoryConfig) -> None:
        self.config = config
        self._turns: OrderedDict[MemoryKey, list[dict[str, Any]]] = OrderedDict()

    async def add_turn(self, key: MemoryKey, turn: Mapping[str, Any]) -> None:
        """Append a turn, keeping ``full_zone_turns`` turns within ``total_max_tokens``.

        Raises:
            ValueError: The turn does not fit and ``overflow_policy="error"``.
        """
        budget = self.config.budget
        stored = dict(turn)
        if not self.config.include_trajectory_digest:
            stored.pop("trajectory_digest", None)
        turns = [*self._turns.get(key, []), stored]
        turns = turns[-budget.full_zone_turns :] if budget.full_zone_turns > 0 else []
        while turns and sum(_tokens(t) for t in turns) > budget.total_max_tokens:
            if budget.overflow_policy == "error":
                raise ValueError("short-term memory is over total_max_tokens (overflow_policy='error')")
            turns.pop(0)
        self._turns[key] = turns
        self._turns.move_to_end(key)
        while len(self._turns) > _MAX_KEYS:
            self._turns.popitem(last=False)

    async def get_llm_context(self, key: MemoryKey) -> Mapping[str, Any]:
        """``{"recent_turns": [...]}`` for ``key`` (empty when it has none)."""
        turns = self._turns.get(key)
        if turns is None:
            return {}
        self._turns.move_to_end(key)
        return {"recent_turns": [dict(t) for t in turns]}

    async def flush(self) -> None:
        """Nothing to flush: turns are in memory."""


def resolve_memory_key(
    explicit: MemoryKey | None, tool_context: Mapping[str, Any], isolation: MemoryIsolation
) -> MemoryKey | None:
    """The key of this call: the argument, else from ``tool_context``; ``None`` means memory is off."""
    if explicit is not None:
        return explicit
    values = [tool_context.get(k) for k in (isolation.tenant_key, isolation.user_key, isolation.session_key)]
    if all(isinstance(v, str) and v for v in values):
        return MemoryKey(*(str(v) for v in values))
    if isolation.require_explicit_key:
        return None  # fail closed: never mix memories of different users
    tenant, user, session = (str(v) if v else "default" for v in values)
    return MemoryKey(tenant, user, session)
