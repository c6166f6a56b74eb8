"""Routing policies: pick a router's targets per message, from code or from configuration."""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, cast

__all__ = [
    "DictRoutingPolicy",
    "PolicyCallable",
    "PolicyLike",
    "RoutingDecisionType",
    "RoutingPolicy",
    "RoutingRequest",
    "RoutingTarget",
    "evaluate_policy",
]


class RoutingTarget(Protocol):
    """What routing needs of a node: its name (may be ``None``) and its id."""

    @property
    def name(self) -> str | None: ...

    @property
    def node_id(self) -> str: ...


RoutingDecisionType: TypeAlias = RoutingTarget | str | Sequence[RoutingTarget | str] | None
"""A policy's answer: a node or a successor's name, a sequence of these, or ``None`` to drop."""


def _display_name(node: RoutingTarget) -> str:
    return node.name or node.node_id


@dataclass(slots=True)
class RoutingRequest:
    """What a policy sees: the message, the router's context, the router and its proposed targets."""

    message: Any
    context: Any
    node: RoutingTarget
    proposed: tuple[RoutingTarget, ...]
    trace_id: str | None

    @property
    def node_name(self) -> str:
        """The router's name, else its id."""
        return _display_name(self.node)

    @property
    def proposed_names(self) -> tuple[str, ...]:
        """The proposed targets' names (else ids), in order."""
        return tuple(_display_name(node) for node in self.proposed)


KeyGetter: TypeAlias = Callable[[RoutingRequest], str | None]
"""Derives a :class:`DictRoutingPolicy` lookup key from a request."""


class RoutingPolicy(Protocol):
    """An object whose ``select`` decides a router's targets, synchronously or not."""

    def select(self, request: RoutingRequest) -> RoutingDecisionType | Awaitable[RoutingDecisionType]:
        """The targets for ``request``; ``None`` or empty drops the message."""
        ...


PolicyCallable: TypeAlias = Callable[[RoutingRequest], RoutingDecisionType | Awaitable[RoutingDecisionType]]
"""A plain function used as a policy, sync or async."""

PolicyLike: TypeAlias = RoutingPolicy | PolicyCallable
"""Anything a router accepts as ``policy=``."""


async def evaluate_policy(policy: PolicyLike, request: RoutingRequest) -> RoutingDecisionType:
    """Ask ``policy`` for a decision: through ``select`` when it has one, else by calling it."""
    select = getattr(policy, "select", None)
    selector = cast(PolicyCallable, select if select is not None else policy)
    candidate = selector(request)
    if inspect.isawaitable(candidate):
        return await candidate
    return candidate


def _trace_key(request: RoutingRequest) -> str | None:
    return request.trace_id


class DictRoutingPolicy:
    """A policy that looks the decision up in a mapping, by trace id unless ``key_getter`` says otherwise.

    Decisions are returned as stored; a missing or ``None`` key yields ``default``.
    """

    def __init__(
        self,
        mapping: Mapping[str, RoutingDecisionType],
        *,
        default: RoutingDecisionType = None,
        key_getter: KeyGetter | None = None,
    ) -> None:
        self._mapping: dict[str, RoutingDecisionType] = dict(mapping)
        self._default = default
        self._key_getter = key_getter if key_getter is not None else _trace_key

    def select(self, request: RoutingRequest) -> RoutingDecisionType:
        """The decision stored for the request's key, else ``default``."""
        key = self._key_getter(request)
        if key is None:
            return self._default
        return self._mapping.get(key, self._default)

    def update_mapping(self, mapping: Mapping[str, RoutingDecisionType]) -> None:
        """Replace the mapping with a copy of ``mapping``."""
        self._mapping = dict(mapping)

    def set_default(self, decision: RoutingDecisionType) -> None:
        """Replace the fallback decision."""
        self._default = decision

    @classmethod
    def from_json(
        cls,
        payload: str | bytes,
        *,
        default: RoutingDecisionType = None,
        key_getter: KeyGetter | None = None,
    ) -> DictRoutingPolicy:
        """Build a policy from a JSON object.

        Raises:
            TypeError: The JSON does not decode to a mapping.
        """
        import json  # configuration-time only: not loaded by ``import penguiflow_otel``

        data = json.loads(payload)
        if not isinstance(data, Mapping):
            raise TypeError("JSON payload must decode to a mapping")
        return cls(data, default=default, key_getter=key_getter)

    @classmethod
    def from_json_file(
        cls,
        path: str | os.PathLike[str],
        *,
        default: RoutingDecisionType = None,
        key_getter: KeyGetter | None = None,
    ) -> DictRoutingPolicy:
        """Build a policy from a UTF-8 JSON file holding an object (errors as :meth:`from_json`)."""
        with open(path, encoding="utf-8") as file:
            text = file.read()
        return cls.from_json(text, default=default, key_getter=key_getter)

    @classmethod
    def from_env(
        cls,
        env_var: str,
        *,
        loader: Callable[[str], object] | None = None,
        default: RoutingDecisionType = None,
        key_getter: KeyGetter | None = None,
    ) -> DictRoutingPolicy:
        """Build a policy from an environment variable, decoded by ``loader`` (JSON by default).

        Raises:
            KeyError: The variable is not set.
            TypeError: The decoded value is not a mapping.
        """
        raw = os.environ.get(env_var)
        if raw is None:
            raise KeyError(f"Environment variable '{env_var}' not set")
        if loader is None:
            import json  # configuration-time only: not loaded by ``import penguiflow_otel``

            loader = json.loads
        data = loader(raw)
        if not isinstance(data, Mapping):
            raise TypeError("Policy loader must return a mapping")
        return cls(data, default=default, key_getter=key_getter)
