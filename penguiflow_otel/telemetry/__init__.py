"""OpenTelemetry for penguiflow_otel: ``configure()``, ``shutdown()``, ``metrics_asgi_app()`` and the hooks.

This facade stays light: ``configure``, ``shutdown`` and ``metrics_asgi_app`` live in ``_setup``, which
imports the OTel SDK, the exporters and ``prometheus_client``; it is loaded on first use of one of
those names (module ``__getattr__``), never by ``import penguiflow_otel.telemetry``. The catalog of
names is the submodule :mod:`penguiflow_otel.telemetry.names`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._handle import TelemetryHandle
from ._protocol import NoOpHooks, TelemetryHooks

if TYPE_CHECKING:
    from ._setup import configure, metrics_asgi_app, shutdown

__all__ = ["NoOpHooks", "TelemetryHandle", "TelemetryHooks", "configure", "metrics_asgi_app", "shutdown"]

_LAZY = frozenset({"configure", "metrics_asgi_app", "shutdown"})

for _public in (NoOpHooks, TelemetryHandle, TelemetryHooks):
    _public.__module__ = __name__
del _public


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from . import _setup

        value: object = getattr(_setup, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
