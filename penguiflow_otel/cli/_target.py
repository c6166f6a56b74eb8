"""What ``dev`` serves: finding a project's entry, building it, and running one request through it.

The entry is ``[tool.penguiflow-otel] entry = "module:function"`` in the project's ``pyproject.toml``,
else ``<package>.flow:build_flow``, else ``<package>.planner:build_planner``. Calling it returns a
``ReactPlanner`` (a :class:`PlannerTarget`) or a flow (a :class:`FlowTarget`). Both answer a request
with the raw result: a ``PlannerFinish`` / ``PlannerPause``, or whatever else a flow returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from .._errors import FlowError
from .._events import FlowEvent
from .._message import Headers, Message, StreamChunk
from .._runner import PenguiFlow
from ..planner import PauseTokenError, PlannerEvent, PlannerFinish, PlannerResumeRequest, ReactPlanner
from ..planner._errors import PauseTokenReason
from ._errors import CommandError

__all__ = [
    "ChatBody",
    "Entry",
    "Exchange",
    "FlowTarget",
    "PlannerTarget",
    "ResumeBody",
    "RunFailed",
    "Target",
    "find_entry",
    "load_target",
]

Emit = Callable[[str, dict[str, Any]], None]


class ChatBody(BaseModel):
    """``POST /chat`` (and the query of ``GET /chat/stream``)."""

    query: str = Field(min_length=1)
    session_id: str | None = None
    llm_context: dict[str, Any] = Field(default_factory=dict)
    tool_context: dict[str, Any] = Field(default_factory=dict)


class ResumeBody(BaseModel):
    """``POST /chat/resume``."""

    resume_token: str = Field(min_length=1)
    user_input: str | None = None
    tool_context: dict[str, Any] = Field(default_factory=dict)


def _discard(name: str, data: dict[str, Any]) -> None:
    """An ``emit`` for requests nobody streams."""


@dataclass(slots=True)
class Exchange:
    """One request: its trace identity, where its stream events go, and how it ended."""

    trace_id: str
    headers: Headers
    session_id: str | None = None
    emit: Emit = _discard
    outcome: str = field(default="error")


class RunFailed(Exception):
    """A flow reported a failure for the request's trace (``payload`` is the ``FlowError`` payload)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(str(payload.get("message") or payload.get("code") or "the flow failed"))
        self.payload = payload


class Target(Protocol):
    """A planner or a flow, as ``dev`` drives it."""

    name: str
    kind: Literal["planner", "flow"]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ask(self, body: ChatBody, exchange: Exchange) -> Any: ...

    async def resume(self, body: ResumeBody, exchange: Exchange) -> Any: ...


# Finding and building the entry -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """``module:function`` and the folder the module is imported from."""

    module: str
    function: str
    code_root: Path

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"


def _pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}; fix the file") from exc


def _packages(code_root: Path, config: dict[str, Any]) -> list[str]:
    named = str(config.get("project", {}).get("name", "")).lower().replace("-", "_")
    found = sorted(path.parent.name for path in code_root.glob("*/__init__.py"))
    return [named, *(name for name in found if name != named)] if named else found


def find_entry(root: Path) -> Entry:
    """The entry ``dev`` will call, found without importing anything.

    Raises:
        CommandError: ``root`` is not a directory, its entry setting is malformed, or it has no flow
            or planner.
    """
    if not root.is_dir():
        raise CommandError(
            f"project root {root} is not a directory; pass --project-root DIR, a project made by "
            "`penguiflow-otel new`"
        )
    config = _pyproject(root)
    code_root = root / "src" if (root / "src").is_dir() else root
    setting = config.get("tool", {}).get("penguiflow-otel", {}).get("entry")
    if setting is not None:
        module, _, function = str(setting).partition(":")
        if not module or not function.isidentifier():
            raise CommandError(
                f"[tool.penguiflow-otel] entry in {root / 'pyproject.toml'} is {setting!r}; "
                'write it as "package.module:function"'
            )
        return Entry(module, function, code_root)
    for package in _packages(code_root, config):
        for module, function in (("flow", "build_flow"), ("planner", "build_planner")):
            if (code_root / package / f"{module}.py").is_file():
                return Entry(f"{package}.{module}", function, code_root)
    raise CommandError(
        f"{root} has no flow or planner: add <package>/flow.py with build_flow() or <package>/planner.py "
        'with build_planner(), or set [tool.penguiflow-otel] entry = "package.module:function"'
    )


def _import(entry: Entry, root: Path) -> Callable[[], object]:
    if str(entry.code_root) not in sys.path:
        sys.path.insert(0, str(entry.code_root))
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if entry.module == missing or entry.module.startswith(missing + "."):
            raise CommandError(
                f"cannot import {entry.module} from {entry.code_root}; check [tool.penguiflow-otel] entry"
            ) from exc
        raise CommandError(
            f"{entry.module} needs the module {missing!r}, which is not installed here: install the "
            f"project into this environment (uv pip install -e {root}) or run `uv run penguiflow-otel dev` "
            "from inside it"
        ) from exc
    factory = getattr(module, entry.function, None)
    if not callable(factory):
        raise CommandError(
            f"{entry.module} has no function {entry.function}(); check [tool.penguiflow-otel] entry"
        )
    return factory  # type: ignore[no-any-return]


def load_target(root: Path, entry: Entry) -> Target:
    """Import the entry, call it, and wrap what it returns.

    Raises:
        CommandError: The import fails, the call fails, or it returns neither a planner nor a flow.
    """
    factory = _import(entry, root)
    try:
        built = factory()
    except Exception as exc:
        raise CommandError(f"{entry}() failed: {type(exc).__name__}: {exc}", exit_code=1) from exc
    if isinstance(built, ReactPlanner):
        return PlannerTarget(built)
    if isinstance(built, PenguiFlow):
        return FlowTarget(built)
    raise CommandError(
        f"{entry}() returned a {type(built).__name__}; it must return a ReactPlanner or a flow"
    )


# A planner -----------------------------------------------------------------------------------------

_PLANNER_FRAMES = {
    "step_start": "step",
    "step_end": "step",
    "llm_stream_chunk": "llm_stream_chunk",
    "stream_chunk": "chunk",
    "tool_call_start": "tool_call_start",
    "tool_call_end": "tool_call_end",
    "pause": "pause",
}


def _forward(emit: Emit) -> Callable[[PlannerEvent], None]:
    def callback(event: PlannerEvent) -> None:
        frame = _PLANNER_FRAMES.get(event.event_type)
        if frame is not None:
            emit(frame, event.to_payload())

    return callback


class PlannerTarget:
    """A ``ReactPlanner``: each request is one ``run()`` or ``resume()`` under the request's span."""

    kind: Literal["planner", "flow"] = "planner"

    def __init__(self, planner: ReactPlanner) -> None:
        self.planner = planner
        self.name = planner.name

    async def start(self) -> None:
        """Nothing to start: a planner keeps no per-run state."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def ask(self, body: ChatBody, exchange: Exchange) -> Any:
        tool_context = {**body.tool_context, "trace_id": exchange.trace_id}
        if exchange.session_id is not None:
            tool_context["session_id"] = exchange.session_id
        return await self.planner.run(
            body.query,
            llm_context=body.llm_context,
            tool_context=tool_context,
            event_callback=_forward(exchange.emit),
        )

    async def resume(self, body: ResumeBody, exchange: Exchange) -> Any:
        return await self.planner.resume(
            body.resume_token,
            body.user_input,
            tool_context={**body.tool_context, "trace_id": exchange.trace_id},
            event_callback=_forward(exchange.emit),
        )


# A flow --------------------------------------------------------------------------------------------


_TOKEN_REASONS: tuple[PauseTokenReason, ...] = ("unknown", "expired", "consumed")


class _FailureWatch:
    """A middleware that reports ``node_failed`` for the traces that requests are waiting on."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def watch(self, trace_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[trace_id] = future
        return future

    def forget(self, trace_id: str) -> None:
        future = self._waiting.pop(trace_id, None)
        if future is not None:
            future.cancel()

    async def __call__(self, event: FlowEvent) -> None:
        if event.event_type != "node_failed" or event.trace_id is None:
            return
        future = self._waiting.get(event.trace_id)
        if future is not None and not future.done():
            future.set_result(dict(event.error_payload or {"message": f"node {event.node_name} failed"}))


class FlowTarget:
    """A flow, running from startup to shutdown; each request is one trace through it."""

    kind: Literal["planner", "flow"] = "flow"

    def __init__(self, flow: PenguiFlow) -> None:
        self.flow = flow
        self.name = flow.name
        self._failures = _FailureWatch()

    async def start(self) -> None:
        self.flow.add_middleware(self._failures)
        self.flow.run()

    async def stop(self) -> None:
        await self.flow.stop()

    async def ask(self, body: ChatBody, exchange: Exchange) -> Any:
        return await self._round_trip(body.query, exchange)

    async def resume(self, body: ResumeBody, exchange: Exchange) -> Any:
        request = PlannerResumeRequest(
            resume_token=body.resume_token, user_input=body.user_input, tool_context=body.tool_context
        )
        result = await self._round_trip(request, exchange)
        failure = result.payload.get("failure_reason") if isinstance(result, PlannerFinish) else None
        for reason in _TOKEN_REASONS:
            if failure == f"resume_token_{reason}":  # planner_node's answer to a bad token
                raise PauseTokenError(reason)
        return result

    async def _round_trip(self, payload: object, exchange: Exchange) -> Any:
        """Emit one message on the request's trace; stream its chunks; return its first other result."""
        trace_id = exchange.trace_id
        message = Message(payload=payload, headers=exchange.headers, trace_id=trace_id)
        failed = self._failures.watch(trace_id)
        answered = False
        try:
            await self.flow.emit(message, trace_id=trace_id)
            while True:
                result = await self._next(trace_id, failed)
                item = result.payload if isinstance(result, Message) else result
                if isinstance(item, StreamChunk):
                    exchange.emit("chunk", item.model_dump(mode="json"))
                    continue
                if isinstance(item, FlowError):
                    raise RunFailed(item.to_payload())
                answered = True
                return item
        finally:
            self._failures.forget(trace_id)
            if not answered:  # cancelled, failed or interrupted: purge what is left of the trace
                with contextlib.suppress(Exception):
                    await self.flow.cancel(trace_id)

    async def _next(self, trace_id: str, failed: asyncio.Future[dict[str, Any]]) -> Any:
        fetch = asyncio.ensure_future(self.flow.fetch(trace_id=trace_id))
        try:
            await asyncio.wait({fetch, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not fetch.done():
                fetch.cancel()
                await asyncio.wait({fetch})
        if not fetch.cancelled():
            return fetch.result()
        raise RunFailed(failed.result())
