"""The upstream-compatible test kit: run one message, check the node order, fake failures.

``run_one`` records the events of the traces it runs in a module-level history of the 64 most
recently started traces, which ``assert_node_sequence`` and ``get_recorded_events`` read. That
shared history exists only because code written against upstream calls those two functions with
nothing but a trace id; new tests should prefer a middleware of their own, which keeps each test's
events apart.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from ._errors import FlowErrorCode
from ._events import FlowEvent
from ._message import Headers, Message
from ._node import Node

if TYPE_CHECKING:
    from ._registry import ModelRegistry
    from ._runner import PenguiFlow

__all__ = [
    "_StubContext",
    "assert_node_sequence",
    "assert_preserves_message_envelope",
    "get_recorded_events",
    "run_one",
    "simulate_error",
]

_HISTORY_SIZE: Final = 64


# Recorded history ------------------------------------------------------------------------------


class _TraceHistory:
    """Events per trace id for the most recently started traces, oldest trace evicted first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._traces: OrderedDict[str, list[FlowEvent]] = OrderedDict()

    def begin(self, trace_id: str) -> None:
        """Start a fresh record for ``trace_id``, replacing any earlier one."""
        self._traces.pop(trace_id, None)
        self._add(trace_id)

    def record(self, event: FlowEvent) -> None:
        """File ``event`` under its trace; events without a trace are not kept."""
        if not event.trace_id:
            return
        bucket = self._traces.get(event.trace_id)
        if bucket is None:
            bucket = self._add(event.trace_id)
        bucket.append(event)

    def events(self, trace_id: str) -> tuple[FlowEvent, ...]:
        """The recorded events of ``trace_id``, oldest first; empty when none were recorded."""
        return tuple(self._traces.get(trace_id, ()))

    def _add(self, trace_id: str) -> list[FlowEvent]:
        bucket: list[FlowEvent] = []
        self._traces[trace_id] = bucket
        while len(self._traces) > self._size:
            self._traces.popitem(last=False)
        return bucket


_HISTORY: Final = _TraceHistory(_HISTORY_SIZE)
# Flows that already carry the recorder, so repeated run_one calls attach it only once.
_RECORDING_FLOWS: Final[weakref.WeakSet[PenguiFlow]] = weakref.WeakSet()


async def _record(event: FlowEvent) -> None:
    _HISTORY.record(event)


def _attach_recorder(flow: PenguiFlow) -> None:
    if flow not in _RECORDING_FLOWS:
        flow.add_middleware(_record)
        _RECORDING_FLOWS.add(flow)


# Running and checking ------------------------------------------------------------------------


async def run_one(
    flow: PenguiFlow,
    message: Message[Any],
    *,
    registry: ModelRegistry | None = None,
    timeout_s: float | None = 1.0,
) -> Any:
    """Run ``flow``, emit ``message``, and return the first result; the flow is always stopped.

    The events of ``message``'s trace are recorded for :func:`assert_node_sequence` and
    :func:`get_recorded_events`.

    Raises:
        TypeError: ``message`` is not a ``Message``.
        TimeoutError: No result arrived within ``timeout_s`` (``None`` waits forever).
    """
    if not isinstance(message, Message):
        raise TypeError("run_one expects a penguiflow_otel.types.Message instance")
    _attach_recorder(flow)
    _HISTORY.begin(message.trace_id)
    flow.run(registry=registry)
    try:
        await flow.emit(message)
        if timeout_s is None:
            return await flow.fetch()
        return await asyncio.wait_for(flow.fetch(), timeout_s)
    finally:
        await flow.stop()


def assert_node_sequence(trace_id: str, expected: Sequence[str]) -> None:
    """Assert that the trace's nodes started in ``expected`` order (repeats in a row count once).

    Raises:
        AssertionError: Nothing was recorded for the trace, or the order differs.
    """
    events = _HISTORY.events(trace_id)
    if not events:
        raise AssertionError(f"No recorded events for trace_id={trace_id!r}; run a flow with run_one first.")
    started = (
        event.node_name or event.node_id or "<anonymous>"
        for event in events
        if event.event_type == "node_start"
    )
    actual = [name for name, _ in groupby(started)]
    wanted = list(expected)
    if actual != wanted:
        raise AssertionError(f"Node sequence mismatch:\n  expected: {wanted}\n  actual:   {actual}")


def get_recorded_events(trace_id: str) -> tuple[FlowEvent, ...]:
    """The events ``run_one`` recorded for ``trace_id``, oldest first; empty when there are none."""
    return _HISTORY.events(trace_id)


# Simulated failures --------------------------------------------------------------------------


@dataclass(slots=True)
class Simulation:
    """The state of one :func:`simulate_error` function: how often it ran and failed."""

    node_name: str
    code: str
    fail_times: int
    exception_type: type[Exception]
    result: object
    result_factory: Callable[[Any], object] | None
    attempts: int = 0

    @property
    def failures(self) -> int:
        """How many calls raised so far."""
        return min(self.attempts, self.fail_times)

    async def step(self, message: Any) -> Any:
        """Count one call, then fail or produce the result."""
        self.attempts += 1
        if self.attempts <= self.fail_times:
            text = f"[{self.code}] simulated failure in {self.node_name} (attempt {self.attempts})"
            raise self.exception_type(text)
        if self.result is not None:
            return self.result
        if self.result_factory is None:
            return message
        produced = self.result_factory(message)
        return await produced if inspect.isawaitable(produced) else produced


class SimulatedNodeFunc(Protocol):
    """An ``async def fn(message, ctx)`` node function carrying its :class:`Simulation`."""

    simulation: Simulation

    async def __call__(self, message: Any, ctx: Any, /) -> Any: ...


def simulate_error(
    node_name: str,
    code: FlowErrorCode | str,
    *,
    fail_times: int = 1,
    result: object = None,
    result_factory: Callable[[Any], object] | None = None,
    exception_type: type[Exception] = RuntimeError,
) -> SimulatedNodeFunc:
    """A node function that raises ``fail_times`` times, then succeeds.

    Each failure is ``exception_type("[<code>] simulated failure in <node_name> (attempt N)")``.
    Afterwards it returns ``result``, else ``result_factory(message)`` (awaited when awaitable),
    else the message itself. ``fn.simulation`` reports ``attempts`` and ``failures``.

    Raises:
        ValueError: ``fail_times`` is below 1, or both ``result`` and ``result_factory`` are given.
    """
    if fail_times < 1:
        raise ValueError("fail_times must be >= 1")
    if result is not None and result_factory is not None:
        raise ValueError("Specify only one of result or result_factory")
    code_text = code.value if isinstance(code, FlowErrorCode) else str(code)
    simulation = Simulation(node_name, code_text, fail_times, exception_type, result, result_factory)

    # A real ``async def`` (not an object with an async __call__) so that Node accepts it.
    async def simulated(message: Any, ctx: Any) -> Any:
        return await simulation.step(message)

    simulated.__dict__["simulation"] = simulation
    return cast(SimulatedNodeFunc, simulated)


# Envelope check ------------------------------------------------------------------------------


class _StubContext:
    """The default context of :func:`assert_preserves_message_envelope`: emits go nowhere."""

    async def emit(self, *args: Any, **kwargs: Any) -> None:
        """Accept and discard anything."""

    def emit_nowait(self, *args: Any, **kwargs: Any) -> None:
        """Accept and discard anything."""

    async def emit_chunk(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse: streaming needs a real context."""
        raise RuntimeError(
            "testkit stub context does not support emit_chunk; pass a context with the 'ctx' parameter"
        )


async def assert_preserves_message_envelope(
    node: Node | Callable[..., object],
    *,
    message: Message[Any] | None = None,
    ctx: object = None,
) -> Message[Any]:
    """Call ``node`` once and assert it returns a ``Message`` with the same headers and trace id.

    Args:
        node: A ``Node`` (its function is called directly) or an async function ``(message, ctx)``.
        message: The input; by default ``Message(payload={}, headers=Headers(tenant="test"))``.
        ctx: The context passed to the node; by default a stub whose emits do nothing.

    Raises:
        TypeError: ``node`` is not async.
        AssertionError: The result is not a ``Message``, or its headers or trace id changed.
    """
    func: Callable[..., object]
    if isinstance(node, Node):
        func, name = node.func, node.name or getattr(node.func, "__name__", "<anonymous>")
    else:
        func, name = node, getattr(node, "__name__", "<anonymous>")
    if not inspect.iscoroutinefunction(func):
        raise TypeError("assert_preserves_message_envelope expects an async node")
    sample = message if message is not None else Message(payload={}, headers=Headers(tenant="test"))
    result = await func(sample, ctx if ctx is not None else _StubContext())
    if not isinstance(result, Message):
        raise AssertionError(f"Node '{name}' must return a Message but produced {type(result).__name__}")
    altered: list[str] = []
    if result.headers != sample.headers:
        altered.append("headers")
    if result.trace_id != sample.trace_id:
        altered.append("trace_id")
    if altered:
        raise AssertionError(f"Node '{name}' altered Message {', '.join(altered)}; preserve the envelope")
    return result
