"""Model registry: per-node validation models."""

from ._registry import ModelRegistry as ModelRegistry

__all__ = ["ModelRegistry"]

from ._public import publish

publish(__name__, globals(), __all__)
