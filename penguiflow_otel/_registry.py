"""Per-node input and output models, with their validators built once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["ModelRegistry"]


class _Entry:
    # A plain slotted record, not a dataclass: ``@dataclass`` compiles its generated methods at
    # import time, and an entry is only ever read field by field.
    __slots__ = ("in_adapter", "in_model", "out_adapter", "out_model")

    def __init__(
        self,
        in_model: type[BaseModel],
        out_model: type[BaseModel],
        in_adapter: TypeAdapter[Any],
        out_adapter: TypeAdapter[Any],
    ) -> None:
        self.in_model = in_model
        self.out_model = out_model
        self.in_adapter = in_adapter
        self.out_adapter = out_adapter


def _is_model(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


class ModelRegistry:
    """The models a flow validates each node's input and output against, keyed by node name."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(self, node_name: str, in_model: type[BaseModel], out_model: type[BaseModel]) -> None:
        """Register ``node_name``'s models and build their ``TypeAdapter``s.

        Raises:
            ValueError: ``node_name`` is already registered.
            TypeError: A model is not a ``pydantic.BaseModel`` subclass.
        """
        if node_name in self._entries:
            raise ValueError(f"Node '{node_name}' already registered")
        if not (_is_model(in_model) and _is_model(out_model)):
            raise TypeError("Models must inherit from pydantic.BaseModel")
        from pydantic import TypeAdapter  # setup-time only: keeps pydantic.type_adapter off the import

        self._entries[node_name] = _Entry(in_model, out_model, TypeAdapter(in_model), TypeAdapter(out_model))

    def has(self, node_name: str) -> bool:
        """Whether ``node_name`` is registered."""
        return node_name in self._entries

    def adapters(self, node_name: str) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
        """The cached ``(in, out)`` adapters of ``node_name``.

        Raises:
            KeyError: ``node_name`` is not registered.
        """
        entry = self._entry(node_name)
        return entry.in_adapter, entry.out_adapter

    def models(self, node_name: str) -> tuple[type[BaseModel], type[BaseModel]]:
        """The ``(in, out)`` models of ``node_name``.

        Raises:
            KeyError: ``node_name`` is not registered.
        """
        entry = self._entry(node_name)
        return entry.in_model, entry.out_model

    def _entry(self, node_name: str) -> _Entry:
        try:
            return self._entries[node_name]
        except KeyError as exc:
            raise KeyError(f"Node '{node_name}' not registered") from exc
