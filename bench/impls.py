"""The implementations compared, and the interpreter and environment each runs under."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .api_flows import REQUIRED_NAMES
from .upstream_env import ensure_upstream_env

__all__ = ["IMPLS", "ROOT", "Impl", "Interpreter", "resolve"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Impl:
    """One implementation under test.

    Attributes:
        name: ``otel``, ``upstream`` or ``asyncio``.
        module: What the import scenario imports in a fresh interpreter.
        required: Names that module must have for its import time to count (empty for the floor).
        env: ``project`` runs under this interpreter (``sys.executable``); ``upstream`` under its own venv.
    """

    name: str
    module: str
    required: tuple[str, ...]
    env: Literal["project", "upstream"]


IMPLS: dict[str, Impl] = {
    impl.name: impl
    for impl in (
        Impl("otel", "penguiflow_otel", REQUIRED_NAMES, "project"),
        Impl("upstream", "penguiflow", REQUIRED_NAMES, "upstream"),
        Impl("asyncio", "asyncio", (), "project"),
    )
}


@dataclass(frozen=True, slots=True)
class Interpreter:
    """How to start a fresh process for one implementation."""

    python: Path
    env: dict[str, str]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    # `bench` must import under upstream's interpreter too; it needs only the standard library there.
    env["PYTHONPATH"] = str(ROOT)
    return env


def resolve(impl: Impl) -> Interpreter:
    """The interpreter for ``impl``; builds upstream's environment on first use.

    Raises:
        UpstreamEnvError: upstream's environment cannot be built.
    """
    if impl.env == "project":
        return Interpreter(Path(sys.executable), _child_env())
    return Interpreter(ensure_upstream_env(), _child_env())
