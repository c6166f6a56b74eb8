"""The planner's exception hierarchy, shared by ``penguiflow_otel.catalog``, ``.planner`` and ``.llm``.

```
Exception
 ├── LLMError                  .retryable, .status_code, .attempts
 │    ├── LLMConfigError       bad or missing client configuration (construction)
 │    ├── LLMAuthError         401, 403
 │    ├── LLMBadRequestError   any other 4xx
 │    ├── LLMRateLimitError    429 (retryable)
 │    ├── LLMServerError       5xx (500, 502, 503, 504 retryable)
 │    ├── LLMConnectionError   the endpoint could not be reached (retryable)
 │    ├── LLMTimeoutError      no answer within the timeout (retryable)
 │    └── LLMResponseError     a malformed body, or no choices
 └── InvalidLLMOutputError     repair gave up: the LLM never produced a valid action
ValueError
 └── CatalogError              a tool the catalog cannot accept; names the tool
KeyError
 └── PauseTokenError           .reason: "unknown", "expired" or "consumed"
```

The runtime's own errors live in ``penguiflow_otel._errors``. Cancellation is never one of these:
it travels as :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = [
    "CatalogError",
    "InvalidLLMOutputError",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMConfigError",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "PauseTokenError",
    "PauseTokenReason",
]

PauseTokenReason: TypeAlias = Literal["unknown", "expired", "consumed"]


class LLMError(Exception):
    """An LLM call failed.

    Attributes:
        retryable: Whether trying the same request again may succeed (rate limits, 5xx, network).
        status_code: The HTTP status, when the endpoint answered.
        attempts: How many HTTP attempts the client made before giving up.
        retry_after_s: The wait the endpoint asked for (``Retry-After``), when it gave one.
    """

    default_retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        retryable: bool | None = None,
        attempts: int = 1,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message or self.__class__.__name__)
        self.status_code = status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.attempts = attempts
        self.retry_after_s = retry_after_s

    def describe(self) -> str:
        """The class name and HTTP status, as a run's ``last_error`` reports them."""
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{type(self).__name__}{status}: {self}"


class LLMConfigError(LLMError):
    """The client cannot be built: no model, or no API key for the default endpoint."""


class LLMAuthError(LLMError):
    """The endpoint refused the credentials (401 or 403); never retried."""


class LLMBadRequestError(LLMError):
    """The endpoint rejected the request (a 4xx other than 401, 403 and 429); never retried."""


class LLMRateLimitError(LLMError):
    """The endpoint answered 429."""

    default_retryable = True


class LLMServerError(LLMError):
    """The endpoint answered 5xx."""

    default_retryable = True


class LLMConnectionError(LLMError):
    """The endpoint could not be reached."""

    default_retryable = True


class LLMTimeoutError(LLMError):
    """The endpoint did not answer within the timeout."""

    default_retryable = True


class LLMResponseError(LLMError):
    """The endpoint answered with a body that is not a usable chat completion."""


class InvalidLLMOutputError(Exception):
    """The LLM's replies never parsed as a valid action, even after repair.

    Attributes:
        last_error: The parse error of the last reply.
        raw_preview: The first 500 characters of the last reply.
    """

    def __init__(self, last_error: str, raw_preview: str) -> None:
        super().__init__(f"the LLM did not produce a valid action: {last_error}")
        self.last_error = last_error
        self.raw_preview = raw_preview


class CatalogError(ValueError):
    """A tool cannot be put in a catalog; the message names the tool and the fix.

    Attributes:
        tool: The offending tool's name (or its function's name).
    """

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(message)
        self.tool = tool


class PauseTokenError(KeyError):
    """A resume token cannot be used.

    Attributes:
        reason: ``"unknown"`` (never issued, or forgotten), ``"expired"`` or ``"consumed"``.
    """

    def __init__(self, reason: PauseTokenReason, message: str | None = None) -> None:
        text = message or _PAUSE_TOKEN_MESSAGES[reason]
        super().__init__(text)
        self.reason: PauseTokenReason = reason
        self.message = text

    def __str__(self) -> str:
        return self.message


_PAUSE_TOKEN_MESSAGES: dict[PauseTokenReason, str] = {
    "unknown": "unknown resume token: it was never issued by this state store, or was evicted",
    "expired": "resume token expired: pause records live for pause_ttl_s; start a new run",
    "consumed": "resume token already used: each pause can be resumed once",
}
