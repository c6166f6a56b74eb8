"""A planner's settings, resolved once at construction and shared read-only by its runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..llm._types import JSONLLMClient
from ._catalog import UNSET, NodeSpec
from ._clamp import ObservationGuardrailConfig
from ._events import EventCallback
from ._memory import ShortTermMemory, ShortTermMemoryConfig
from ._pause import PlannerStateStore

__all__ = ["PlannerConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerConfig:
    """Everything a run reads from its planner; no per-run state."""

    name: str
    client: JSONLLMClient
    temperature: float | None
    catalog: Mapping[str, NodeSpec]
    system_prompt_extra: str | None
    response_format: Mapping[str, Any]
    max_iters: int
    repair_attempts: int
    max_consecutive_arg_failures: int
    deadline_s: float | None
    hop_budget: int | None
    absolute_max_parallel: int
    max_parallel: int
    tool_timeout_s: float | None
    pause_enabled: bool
    pause_ttl_s: float | None
    state_store: PlannerStateStore
    guardrail: ObservationGuardrailConfig
    stream: bool
    memory: ShortTermMemory | None
    memory_config: ShortTermMemoryConfig | None
    event_callback: EventCallback | None
    capture_content: bool | None
    monotonic: Callable[[], float]
    wall: Callable[[], float]

    def tool_timeout(self, spec: NodeSpec) -> float | None:
        """The per-call limit of ``spec``: its own, else the planner's ``tool_timeout_s``."""
        return self.tool_timeout_s if spec.timeout_s is UNSET else spec.timeout_s
