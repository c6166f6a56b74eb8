"""OpenTelemetry for penguiflow_otel: ``configure()``, ``shutdown()``, ``metrics_asgi_app()`` and the hooks.

This facade stays light: ``configure``, ``shutdown`` and ``metrics_asgi_app`` live in ``_setup``, which
imports the OTel SDK, the exporters and ``prometheus_client``; it is loaded on first use of one of
those names (module ``__getattr__``), never by ``import penguiflow_otel.telemetry``. The catalog of
names is the submodule :mod:`penguiflow_otel.telemetry.names`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._protocol import NoOpHooks, TelemetryHooks

if TYPE_CHECKING:
    from ._handle import TelemetryHandle
    from ._setup import configure, metrics_asgi_app, shutdown

__all__ = ["NoOpHooks", "TelemetryHandle", "TelemetryHooks", "configure", "metrics_asgi_app", "shutdown"]

# Loaded on first use. ``TelemetryHandle`` is only produced by ``configure()``, so ``import
# penguiflow_otel`` does not build its dataclass (``@dataclass`` compiles code); ``_handle`` sets its
# ``__module__`` to this facade.
_LAZY = {
    "configure": "_setup",
    "metrics_asgi_app": "_setup",
    "shutdown": "_setup",
    "TelemetryHandle": "_handle",
}

for _public in (NoOpHooks, TelemetryHooks):
    _public.__module__ = __name__
del _public


def __getattr__(name: str) -> object:
    submodule = _LAZY.get(name)
    if submodule is not None:
        from importlib import import_module

        value: object = getattr(import_module(f"{__name__}.{submodule}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
