"""Re-exported objects name their public module, so tracebacks and docs show ``penguiflow_otel.node.Node``."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping

__all__ = ["publish"]


def publish(module_name: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Set ``__module__`` to ``module_name`` on each named class or function still in a private module.

    The first public facade that re-exports an object becomes its home; later ones leave it alone.
    """
    for name in names:
        obj = namespace[name]
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        current = getattr(obj, "__module__", "")
        if current.startswith("penguiflow_otel") and any(part.startswith("_") for part in current.split(".")):
            try:
                obj.__module__ = module_name
            except (AttributeError, TypeError):  # pragma: no cover - builtins and extension types
                continue
