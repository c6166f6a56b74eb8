"""The observation clamp: what the LLM sees of a large tool result (the trajectory keeps it all)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["ClampResult", "ObservationGuardrailConfig", "clamp_observation", "compact_json"]

ClampMethod: TypeAlias = Literal["truncate_fields", "truncate_lists", "preview"]


def compact_json(value: Any) -> str:
    """Compact JSON, as the LLM sees values."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ObservationGuardrailConfig:
    """Limits on what the LLM sees of one observation.

    Args:
        max_observation_chars: Clamp when the observation's compact JSON is longer than this.
        max_field_chars: Strings longer than this are cut first.
        preview_length: How much of a cut string (or of the whole JSON) is kept.
    """

    max_observation_chars: int = 50_000
    max_field_chars: int = 10_000
    preview_length: int = 500

    def __post_init__(self) -> None:
        if min(self.max_observation_chars, self.max_field_chars, self.preview_length) < 1:
            raise ValueError("ObservationGuardrailConfig limits must be positive")


@dataclass(frozen=True, slots=True)
class ClampResult:
    """A clamped view and how it was made (``method`` is ``None`` when nothing was cut)."""

    value: Any
    method: ClampMethod | None
    original_chars: int
    clamped_chars: int


def _cut_strings(value: Any, config: ObservationGuardrailConfig) -> Any:
    if isinstance(value, str) and len(value) > config.max_field_chars:
        cut = len(value) - config.preview_length
        return f"{value[: config.preview_length]}…[truncated {cut} chars]"
    if isinstance(value, dict):
        return {key: _cut_strings(item, config) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_strings(item, config) for item in value]
    return value


def _cut_lists(value: Any, head: int) -> Any:
    if isinstance(value, list):
        kept = [_cut_lists(item, head) for item in value[:head]]
        return [*kept, {"_truncated_items": len(value) - head}] if len(value) > head else kept
    if isinstance(value, dict):
        return {key: _cut_lists(item, head) for key, item in value.items()}
    return value


def clamp_observation(value: Any, config: ObservationGuardrailConfig) -> ClampResult:
    """Clamp ``value`` (JSON-native) to ``config.max_observation_chars`` of compact JSON.

    Steps, each only if still too large: cut long strings; cut lists to a head plus
    ``{"_truncated_items": k}``; replace the whole value by a preview.
    """
    text = compact_json(value)
    original = len(text)
    limit = config.max_observation_chars
    if original <= limit:
        return ClampResult(value, None, original, original)
    clamped = _cut_strings(value, config)
    size = len(compact_json(clamped))
    if size <= limit:
        return ClampResult(clamped, "truncate_fields", original, size)
    for head in (100, 20, 5, 1):
        listed = _cut_lists(clamped, head)
        size = len(compact_json(listed))
        if size <= limit:
            return ClampResult(listed, "truncate_lists", original, size)
    preview = {"_clamped": True, "preview": text[: config.preview_length], "original_chars": original}
    return ClampResult(preview, "preview", original, len(compact_json(preview)))
