"""The command line's one error type: a mistake the user can fix, reported in one line."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """What was wrong and how to fix it, in one line; ``exit_code`` 2 for usage, 1 for a runtime failure."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
