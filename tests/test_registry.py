"""ModelRegistry (penguiflow_otel.registry)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pydantic import BaseModel, ValidationError

from penguiflow_otel.registry import ModelRegistry


class Query(BaseModel):
    text: str


class Answer(BaseModel):
    score: int


def test_a_registered_node_is_known() -> None:
    """has() is True after register() and False for other names."""
    registry = ModelRegistry()
    registry.register("rank", Query, Answer)
    assert registry.has("rank")
    assert not registry.has("other")


def test_models_returns_the_registered_classes() -> None:
    """models() gives back (in, out) as registered."""
    registry = ModelRegistry()
    registry.register("rank", Query, Answer)
    assert registry.models("rank") == (Query, Answer)


def test_adapters_validate_against_the_models() -> None:
    """The in adapter builds the in model and the out adapter rejects bad output."""
    registry = ModelRegistry()
    registry.register("rank", Query, Answer)
    in_adapter, out_adapter = registry.adapters("rank")
    assert in_adapter.validate_python({"text": "hi"}) == Query(text="hi")
    with pytest.raises(ValidationError):
        out_adapter.validate_python({"score": "many"})


def test_adapters_are_built_once() -> None:
    """Repeated adapters() calls return the same cached objects."""
    registry = ModelRegistry()
    registry.register("rank", Query, Answer)
    first = registry.adapters("rank")
    second = registry.adapters("rank")
    assert first[0] is second[0]
    assert first[1] is second[1]


def test_registering_a_name_twice_is_refused() -> None:
    """A duplicate name raises ValueError and keeps the first models."""
    registry = ModelRegistry()
    registry.register("rank", Query, Answer)
    with pytest.raises(ValueError, match=r"^Node 'rank' already registered$"):
        registry.register("rank", Answer, Query)
    assert registry.models("rank") == (Query, Answer)


@pytest.mark.parametrize(
    ("in_model", "out_model"),
    [(dict, Answer), (Query, int), ("Query", Answer), (Query, Query(text="x")), (BaseModel, None)],
)
def test_non_models_are_refused(in_model: object, out_model: object) -> None:
    """Anything but a BaseModel subclass on either side raises TypeError and registers nothing."""
    registry = ModelRegistry()
    with pytest.raises(TypeError, match=r"^Models must inherit from pydantic\.BaseModel$"):
        registry.register("rank", cast(Any, in_model), cast(Any, out_model))
    assert not registry.has("rank")


@pytest.mark.parametrize("method", ["adapters", "models"])
def test_unknown_names_raise_key_error(method: str) -> None:
    """adapters() and models() name the missing node in their KeyError."""
    registry = ModelRegistry()
    with pytest.raises(KeyError) as info:
        getattr(registry, method)("ghost")
    assert info.value.args == ("Node 'ghost' not registered",)
