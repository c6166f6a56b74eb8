"""The LLM client seam of the planner: the Protocol, its values, the errors and the built-in client.

``OpenAICompatibleClient`` speaks the chat-completions API over httpx. The ``openai`` SDK adapter
lives in :mod:`penguiflow_otel.llm.openai_sdk` (extra ``openai``). The client and the errors load on
first use, so ``penguiflow_otel.testing`` can use the value types without loading httpx or the planner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._types import JSONLLMClient, LLMResponse, LLMUsage, StreamCallback

if TYPE_CHECKING:
    from ..planner._errors import (
        LLMAuthError,
        LLMBadRequestError,
        LLMConfigError,
        LLMConnectionError,
        LLMError,
        LLMRateLimitError,
        LLMResponseError,
        LLMServerError,
        LLMTimeoutError,
    )
    from ._openai_compat import OpenAICompatibleClient, ResponseFormatMode

__all__ = [
    "JSONLLMClient",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMConfigError",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponse",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMUsage",
    "OpenAICompatibleClient",
    "ResponseFormatMode",
    "StreamCallback",
]

_LAZY = {
    "OpenAICompatibleClient": "._openai_compat",
    "ResponseFormatMode": "._openai_compat",
    **dict.fromkeys(
        (
            "LLMAuthError",
            "LLMBadRequestError",
            "LLMConfigError",
            "LLMConnectionError",
            "LLMError",
            "LLMRateLimitError",
            "LLMResponseError",
            "LLMServerError",
            "LLMTimeoutError",
        ),
        "..planner._errors",
    ),
}

for _value in (JSONLLMClient, LLMResponse, LLMUsage):
    _value.__module__ = __name__


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    if isinstance(value, type):
        value.__module__ = __name__
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
