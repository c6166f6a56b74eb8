"""A planner's settings, resolved once at construction and shared read-only by its runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._clock import Clock
from ..llm._types import JSONLLMClient
from ._catalog import UNSET, NodeSpec
from ._clamp import ObservationGuardrailConfig
from ._events import EventCallback
from ._memory import ShortTermMemory, ShortTermMemoryConfig
from ._pause import PlannerStateStore

__all__ = ["PlannerConfig", "build_client", "clock_functions", "require_positive"]


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


def build_client(llm: str | Mapping[str, Any], **options: Any) -> JSONLLMClient:
    """The built-in OpenAI-compatible client for ``llm=`` (a model name or a settings mapping)."""
    from ..llm._openai_compat import OpenAICompatibleClient

    if isinstance(llm, str):
        return OpenAICompatibleClient(llm, **options)
    config = dict(llm)
    unknown = set(config) - {"model", "base_url", "api_base", "api_key", "headers", "provider_name"}
    if unknown:
        raise ValueError(
            f"unknown llm settings {sorted(unknown)}; use model, base_url, api_key, headers, provider_name"
        )
    return OpenAICompatibleClient(
        config.get("model"),
        base_url=config.get("base_url") or config.get("api_base"),
        api_key=config.get("api_key"),
        headers=config.get("headers"),
        provider_name=config.get("provider_name") or "openai",
        **options,
    )


def clock_functions(
    time_source: Clock | Callable[[], float] | None,
) -> tuple[Callable[[], float], Callable[[], float]]:
    """``(monotonic, wall)`` clock functions from a ``time_source``: a ``Clock``, a callable or ``None``."""
    if time_source is None:
        return time.monotonic, time.time
    if hasattr(time_source, "monotonic") and hasattr(time_source, "time"):
        return time_source.monotonic, time_source.time
    if callable(time_source):
        return time_source, time.time
    raise TypeError("time_source must be a Clock or a zero-argument callable")


def require_positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is > 0 (or ``None`` where allowed)."""
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
