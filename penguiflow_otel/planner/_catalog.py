"""The typed tool catalog: the ``@tool`` decorator, ``NodeSpec``, ``build_catalog`` and ``ToolPolicy``."""

from __future__ import annotations

import enum
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, RootModel, ValidationError

from .._node import Node
from .._registry import ModelRegistry
from ._errors import CatalogError

__all__ = [
    "RESERVED_ACTIONS",
    "UNSET",
    "NodeSpec",
    "SideEffects",
    "ToolPolicy",
    "build_catalog",
    "check_catalog",
    "tool",
]

SideEffects: TypeAlias = Literal["pure", "read", "write", "external", "stateful"]
RESERVED_ACTIONS: Final = frozenset({"final_response", "parallel"})
"""Action names the LLM uses as opcodes; no tool may take one of them."""

_SIDE_EFFECTS: Final = ("pure", "read", "write", "external", "stateful")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_META_ATTR = "__penguiflow_tool__"
F = TypeVar("F", bound=Callable[..., Any])


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""``timeout_s`` not given: the next source in the precedence applies."""


class AnyOutput(RootModel[dict[str, Any]]):
    """The permissive output model of a tool without a return annotation."""


@dataclass(frozen=True, slots=True)
class _ToolMeta:
    desc: str | None
    name: str | None
    side_effects: SideEffects
    tags: tuple[str, ...]
    auth_scopes: tuple[str, ...]
    cost_hint: str | None
    latency_hint_ms: int | None
    safety_notes: str | None
    examples: tuple[Mapping[str, Any], ...]
    extra: Mapping[str, Any]
    timeout_s: float | _Unset | None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def tool(
    desc: str | None = None,
    *,
    name: str | None = None,
    side_effects: SideEffects = "pure",
    tags: Sequence[str] = (),
    auth_scopes: Sequence[str] = (),
    cost_hint: str | None = None,
    latency_hint_ms: int | None = None,
    safety_notes: str | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
    timeout_s: float | _Unset | None = UNSET,
) -> Callable[[F], F]:
    """Attach catalog metadata to a tool function; the function itself is returned unchanged.

    ``timeout_s=None`` means no per-tool limit; leaving it unset falls back to the ``Node``'s
    ``NodePolicy.timeout_s``, then to the planner's ``tool_timeout_s``.

    Raises:
        ValueError: ``side_effects`` is not one of ``pure``, ``read``, ``write``, ``external``, ``stateful``.
    """
    if side_effects not in _SIDE_EFFECTS:
        raise ValueError(f"side_effects must be one of {', '.join(_SIDE_EFFECTS)}; got {side_effects!r}")
    meta = _ToolMeta(
        desc=desc,
        name=name,
        side_effects=side_effects,
        tags=_unique(tags),
        auth_scopes=_unique(auth_scopes),
        cost_hint=cost_hint,
        latency_hint_ms=latency_hint_ms,
        safety_notes=safety_notes,
        examples=tuple(examples),
        extra=dict(extra or {}),
        timeout_s=timeout_s,
    )

    def decorate(func: F) -> F:
        setattr(func, _META_ATTR, meta)
        return func

    return decorate


def _json_safe(value: object) -> bool:
    if callable(value):
        return False
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One tool of a catalog: how the planner calls it and how the LLM sees it."""

    node: Callable[..., Any] | Node
    name: str
    desc: str
    args_model: type[BaseModel]
    out_model: type[BaseModel]
    side_effects: SideEffects = "pure"
    tags: tuple[str, ...] = ()
    auth_scopes: tuple[str, ...] = ()
    cost_hint: str | None = None
    latency_hint_ms: int | None = None
    safety_notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[Mapping[str, Any], ...] = ()
    timeout_s: float | _Unset | None = UNSET

    @property
    def func(self) -> Callable[..., Any]:
        """The async function to await: ``node.func`` for a flow ``Node``, else ``node``."""
        return self.node.func if isinstance(self.node, Node) else self.node

    def to_tool_record(self) -> dict[str, Any]:
        """The JSON-safe record the system prompt shows for this tool."""
        record: dict[str, Any] = {
            "name": self.name,
            "desc": self.desc,
            "side_effects": self.side_effects,
            "args_schema": self.args_model.model_json_schema(),
            "out_schema": self.out_model.model_json_schema(),
            "tags": list(self.tags),
            "examples": [dict(example) for example in self.examples],
        }
        hints = {
            "auth_scopes": list(self.auth_scopes) or None,
            "cost_hint": self.cost_hint,
            "latency_hint_ms": self.latency_hint_ms,
            "safety_notes": self.safety_notes,
        }
        record.update({key: value for key, value in hints.items() if value is not None})
        extra = {key: value for key, value in self.extra.items() if _json_safe(value)}
        if extra:
            record["extra"] = extra
        return record


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """Which catalog tools a planner may use; applied once, when the planner is built."""

    allowed_tools: frozenset[str] | None = None
    denied_tools: frozenset[str] = frozenset()
    require_tags: frozenset[str] = frozenset()

    def includes(self, spec: NodeSpec) -> bool:
        """Whether ``spec`` passes the policy."""
        if self.allowed_tools is not None and spec.name not in self.allowed_tools:
            return False
        if spec.name in self.denied_tools:
            return False
        return self.require_tags.issubset(spec.tags)


# Building -----------------------------------------------------------------------------------


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(paragraph.split()) or None


def _is_model(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _models_from_annotations(func: Callable[..., Any], name: str) -> tuple[type[BaseModel], type[BaseModel]]:
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:
        raise CatalogError(name, f"tool {name!r}: cannot resolve its type annotations: {exc}") from exc
    params = list(inspect.signature(func).parameters)
    args_model = hints.get(params[0]) if params else None
    if not _is_model(args_model):
        raise CatalogError(
            name,
            f"tool {name!r}: its first parameter must be annotated with a pydantic BaseModel "
            "(or register the tool's models in a ModelRegistry)",
        )
    if "return" not in hints:
        return typing.cast(type[BaseModel], args_model), AnyOutput
    returned = hints["return"]
    if _is_model(returned):
        return typing.cast(type[BaseModel], args_model), typing.cast(type[BaseModel], returned)
    if returned is dict or typing.get_origin(returned) in (dict, Mapping):
        return typing.cast(type[BaseModel], args_model), AnyOutput
    raise CatalogError(
        name, f"tool {name!r}: its return annotation must be a pydantic BaseModel or a dict, got {returned!r}"
    )


def _spec_for(item: object, registry: ModelRegistry | None) -> NodeSpec:
    node = item if isinstance(item, Node) else None
    func: Any = node.func if node is not None else item
    if not callable(func):
        raise TypeError(f"a catalog item must be an async function or a flow Node, got {type(item).__name__}")
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"tool {getattr(func, '__name__', func)!r} must be declared with async def")
    meta: _ToolMeta | None = getattr(func, _META_ATTR, None)
    name = (meta.name if meta else None) or (node.name if node else None) or func.__name__
    if registry is not None and registry.has(name):
        args_model, out_model = registry.models(name)
    else:
        args_model, out_model = _models_from_annotations(func, name)
    timeout: float | _Unset | None = meta.timeout_s if meta else UNSET
    if timeout is UNSET and node is not None and node.policy.timeout_s is not None:
        timeout = node.policy.timeout_s
    return NodeSpec(
        node=node if node is not None else func,
        name=name,
        desc=(meta.desc if meta else None) or _first_paragraph(func.__doc__) or name,
        args_model=args_model,
        out_model=out_model,
        side_effects=meta.side_effects if meta else "pure",
        tags=meta.tags if meta else (),
        auth_scopes=meta.auth_scopes if meta else (),
        cost_hint=meta.cost_hint if meta else None,
        latency_hint_ms=meta.latency_hint_ms if meta else None,
        safety_notes=meta.safety_notes if meta else None,
        extra=meta.extra if meta else {},
        examples=meta.examples if meta else (),
        timeout_s=timeout,
    )


def _check_spec(spec: NodeSpec) -> None:
    if spec.name in RESERVED_ACTIONS:
        raise CatalogError(
            spec.name,
            f'{spec.name!r} is a reserved action name; rename the tool (e.g. @tool(name="run_{spec.name}"))',
        )
    if not _NAME.match(spec.name):
        raise CatalogError(
            spec.name,
            f"tool name {spec.name!r} must match ^[A-Za-z_][A-Za-z0-9_.-]{{0,63}}$; "
            "rename it with @tool(name=...)",
        )
    if not (_is_model(spec.args_model) and _is_model(spec.out_model)):
        raise CatalogError(spec.name, f"tool {spec.name!r}: args_model and out_model must be pydantic models")
    if not inspect.iscoroutinefunction(spec.func):
        raise TypeError(f"tool {spec.name!r} must be declared with async def")
    for index, example in enumerate(spec.examples):
        try:
            spec.args_model.model_validate(example.get("args", {}))
        except ValidationError as exc:
            raise CatalogError(
                spec.name,
                f"tool {spec.name!r}: example {index} does not validate against its args model: {exc}",
            ) from exc
        if not isinstance(example.get("description", ""), str):
            raise CatalogError(spec.name, f"tool {spec.name!r}: example {index} needs a string description")


def check_catalog(specs: Iterable[NodeSpec]) -> list[NodeSpec]:
    """Run the build-time checks on a prebuilt catalog; returns it as a list.

    Raises:
        CatalogError: A duplicate, reserved or malformed name; non-model types; an invalid example.
        TypeError: A tool function that is not ``async def``.
    """
    seen: set[str] = set()
    catalog = list(specs)
    for spec in catalog:
        _check_spec(spec)
        if spec.name in seen:
            raise CatalogError(
                spec.name, f"duplicate tool name {spec.name!r}; give one of them @tool(name=...)"
            )
        seen.add(spec.name)
    return catalog


def build_catalog(nodes: Iterable[object], registry: ModelRegistry | None = None) -> list[NodeSpec]:
    """Build the tool catalog from async functions and flow ``Node``s.

    Models come from ``registry.models(name)`` when the registry knows the name, else from the
    annotations (first parameter; return, where none gives a permissive ``dict`` model).

    Raises:
        CatalogError: Names the tool: a duplicate, reserved or malformed name, unresolvable
            models, or an example that does not validate.
        TypeError: A function that is not ``async def``.
    """
    return check_catalog(_spec_for(item, registry) for item in nodes)
