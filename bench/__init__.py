"""Benchmark suite: penguiflow_otel against upstream penguiflow and a bare-asyncio floor.

Run ``uv run python -m bench`` (``--quick`` for a short run, ``--list`` for the scenarios). Modules that
run inside measurement subprocesses (``worker``, ``drive``, ``api_flows``, ``floor_flows``,
``scenarios``, ``import_probe``) use only the standard library at import time, because they also run
under upstream's interpreter.
"""
