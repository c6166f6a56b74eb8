"""Nodes and their policies."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from ._context import Context
    from ._registry import ModelRegistry

__all__ = ["Node", "NodeFunc", "NodePolicy", "RetryOn", "ValidateMode"]

ValidateMode: TypeAlias = Literal["both", "in", "out", "none"]
RetryOn: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None
)
NodeFunc: TypeAlias = Callable[..., Awaitable[object]]

_VALIDATE_MODES = ("both", "in", "out", "none")


def _check_retry_on(retry_on: object) -> None:
    if retry_on is None:
        return
    if isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        return
    if isinstance(retry_on, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
    ):
        return
    if callable(retry_on) and not isinstance(retry_on, type):
        return
    raise TypeError("retry_on must be an exception type, a tuple of exception types, or a callable")


@dataclass(slots=True)
class NodePolicy:
    """How a node validates, times out, retries and how many messages it runs at once."""

    validate: ValidateMode = "both"
    timeout_s: float | None = None
    max_retries: int = 0
    backoff_base: float = 0.5
    backoff_mult: float = 2.0
    max_backoff: float | None = None
    jitter: float = 0.0
    retry_on: RetryOn = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.validate not in _VALIDATE_MODES:
            raise ValueError("validate must be one of 'both', 'in', 'out', 'none'")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0.0 and 1.0")
        concurrency: object = self.concurrency
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        _check_retry_on(self.retry_on)


def _check_func(func: object, name: str) -> None:
    if not inspect.iscoroutinefunction(func):
        raise TypeError("Node function must be declared with async def")
    params = list(inspect.signature(func).parameters.values())
    if len(params) != 2:
        raise ValueError(
            f"Node '{name}' must accept exactly two parameters (message, ctx); got {len(params)}"
        )
    if params[1].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise ValueError("Context parameter must be positional")


@dataclass(slots=True, eq=False)
class Node:
    """An async function ``fn(message, ctx)`` placed in a flow.

    Hashing and equality use ``node_id``, so one node may appear in several flows.
    """

    func: NodeFunc
    name: str | None = None
    policy: NodePolicy = field(default_factory=NodePolicy)
    allow_cycle: bool = False
    node_id: str = field(init=False)

    def __post_init__(self) -> None:
        label = str(self.name or getattr(self.func, "__name__", "node"))
        _check_func(self.func, label)
        self.name = label
        self.node_id = uuid.uuid4().hex

    def __hash__(self) -> int:
        return hash(self.node_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.node_id == self.node_id

    def __repr__(self) -> str:
        return f"Node(name={self.name!r}, node_id={self.node_id!r})"

    def to(self, *nodes: Node) -> tuple[Node, tuple[Node, ...]]:
        """Declare this node's successors; ``node.to()`` declares a sink."""
        return self, nodes

    async def invoke(self, message: object, ctx: Context, *, registry: ModelRegistry | None) -> object:
        """Run the function, validating input and output through ``registry`` when one is given."""
        mode = self.policy.validate
        if registry is None or mode == "none":
            return await self.func(message, ctx)
        in_adapter, out_adapter = registry.adapters(str(self.name))
        if mode in ("in", "both"):
            message = in_adapter.validate_python(message)
        result = await self.func(message, ctx)
        if result is None or mode == "in":
            return result
        return out_adapter.validate_python(result)
