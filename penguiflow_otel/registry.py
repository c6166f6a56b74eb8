"""Model registry: per-node validation models."""

from ._registry import ModelRegistry as ModelRegistry

__all__ = ["ModelRegistry"]
