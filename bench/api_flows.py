"""Benchmark graphs built with the PenguiFlow public API, for ``penguiflow_otel`` and ``penguiflow`` alike.

The module under test is passed in, so both implementations run exactly this code. Standard library
only at import time: this module also runs under upstream's interpreter.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .drive import FlowHandle

__all__ = ["GRAPHS", "REQUIRED_NAMES"]

# The public names the API graphs use; an implementation lacking one is reported unavailable.
REQUIRED_NAMES = ("Headers", "Message", "Node", "NodePolicy", "create")


async def passthrough(msg: Any, ctx: Any) -> Any:
    """The node body of every benchmark graph: hand the message on unchanged."""
    return msg


def chain3(api: ModuleType) -> FlowHandle:
    """a -> b -> c, default policy and queue size; c's results go to egress. Starts the flow."""
    a, b, c = (api.Node(passthrough, name=name, policy=api.NodePolicy()) for name in "abc")
    flow = api.create(a.to(b), b.to(c))
    flow.run()
    return FlowHandle(emit=flow.emit, fetch=flow.fetch, stop=flow.stop)


GRAPHS: dict[str, Callable[[ModuleType], FlowHandle]] = {"chain3": chain3}
