"""The planner facades' public surface: sorted ``__all__``, importable names, public module names."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module_name", ["penguiflow_otel.planner", "penguiflow_otel.catalog", "penguiflow_otel.llm"]
)
def test_all_is_sorted_and_every_name_resolves(module_name: str) -> None:
    """Each facade lists its names sorted, and each name is an attribute of the facade."""
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_public_classes_report_their_facade_module() -> None:
    """Re-exported classes show the public module in tracebacks and docs."""
    from penguiflow_otel.catalog import CatalogError, NodeSpec
    from penguiflow_otel.llm import LLMError, OpenAICompatibleClient
    from penguiflow_otel.planner import PauseTokenError, ReactPlanner

    assert ReactPlanner.__module__ == "penguiflow_otel.planner"
    assert PauseTokenError.__module__ == "penguiflow_otel.planner"
    assert (NodeSpec.__module__, CatalogError.__module__) == (
        "penguiflow_otel.catalog",
        "penguiflow_otel.catalog",
    )
    assert (LLMError.__module__, OpenAICompatibleClient.__module__) == (
        "penguiflow_otel.llm",
        "penguiflow_otel.llm",
    )


def test_the_error_hierarchy_matches_the_documented_bases() -> None:
    """CatalogError is a ValueError, PauseTokenError a KeyError, LLM errors carry retryable and status."""
    from penguiflow_otel.catalog import CatalogError
    from penguiflow_otel.llm import LLMRateLimitError, LLMTimeoutError
    from penguiflow_otel.planner import PauseTokenError
    from penguiflow_otel.testing import ScriptExhaustedError

    assert issubclass(CatalogError, ValueError)
    assert issubclass(PauseTokenError, KeyError)
    assert issubclass(ScriptExhaustedError, AssertionError)
    assert LLMRateLimitError("x", status_code=429).retryable is True
    assert LLMTimeoutError().retryable is True


def test_the_testing_package_does_not_load_the_planner_or_httpx() -> None:
    """penguiflow_otel.testing (ScriptedLLM included) stays light: no planner, no httpx."""
    code = (
        "import sys, penguiflow_otel.testing as t; t.ScriptedLLM([]);"
        "print(any(m.startswith(('penguiflow_otel.planner', 'httpx')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
