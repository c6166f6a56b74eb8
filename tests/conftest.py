"""Shared test configuration.

Async tests run with the event loop in debug mode (``asyncio_debug = true`` in pyproject.toml);
the soak test switches it off itself because it measures a long run.
"""
