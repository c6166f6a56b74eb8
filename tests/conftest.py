"""Shared test configuration: every async test runs with the event loop in debug mode."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture
def event_loop_policy() -> Iterator[asyncio.AbstractEventLoopPolicy]:
    """The default policy; loops are put in debug mode by the hook below."""
    yield asyncio.DefaultEventLoopPolicy()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> None:
    """Turn on asyncio debug mode for async tests (never-awaited coroutines, slow callbacks)."""
    if asyncio.iscoroutinefunction(pyfuncitem.obj) and pyfuncitem.get_closest_marker("soak") is None:
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
        loop.set_debug(True)
