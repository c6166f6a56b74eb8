"""The ``dev`` server's ASGI app (Starlette): chat, resume, server-sent events, traces, health, metrics.

Every chat request gets a SERVER span whose parent is the inbound ``traceparent`` (global
propagator), and runs as its own task with that span current, so a planner's ``invoke_agent`` or a
flow's root span joins the caller's trace. The stream sends each event as it happens: chunks and
spans are queued by the run and written by the response loop, never collected first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TextIO, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import TraceCancelled
from .._message import FinalAnswer, new_trace_id
from .._version import __version__
from ..planner import PauseTokenError, PlannerFinish, PlannerPause
from ..propagation import headers_from_carrier
from ..telemetry import names as n
from ._spans import SpanBuffer, SpanRecord, span_forest
from ._target import ChatBody, Exchange, ResumeBody, RunFailed, Target

__all__ = ["DevApp", "result_body"]

_logger = logging.getLogger("penguiflow_otel.dev")

MAX_BODY = 1024 * 1024
KEEP_ALIVE_S = 15.0
TENANT = "dev"
_Model = TypeVar("_Model", bound=BaseModel)


class _Problem(Exception):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def _answer_text(value: object) -> object:
    if isinstance(value, FinalAnswer):
        return value.text
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def result_body(result: object) -> dict[str, Any]:
    """The ``/chat`` body for a run's result (without ``trace_id`` and ``session_id``)."""
    if isinstance(result, PlannerPause):
        pause = {"reason": result.reason, "payload": result.payload, "resume_token": result.resume_token}
        return {"status": "paused", "reason": result.reason, "pause": pause, "metadata": {}}
    if isinstance(result, PlannerFinish):
        metadata = dict(result.metadata)
        if result.reason == "answer_complete":
            answer = result.payload.get("raw_answer") if isinstance(result.payload, dict) else None
            return {"status": "finished", "reason": result.reason, "answer": answer, "metadata": metadata}
        metadata["failure"] = result.payload
        return {"status": "finished", "reason": result.reason, "answer": None, "metadata": metadata}
    return {"status": "finished", "reason": "completed", "answer": _answer_text(result), "metadata": {}}


def _frame(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


async def _read(request: Request, model: type[_Model]) -> _Model:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _Problem(413, f"the body is over {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _Problem(413, f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _Problem(422, f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _Problem(422, f"{where}: {first['msg']}") from None


class DevApp:
    """The routes, the request spans, and the runs in flight (cancelled together at shutdown)."""

    def __init__(self, target: Target, spans: SpanBuffer, metrics: Callable[[], bytes]) -> None:
        self._target = target
        self._spans = spans
        self._metrics = metrics
        self._runs: set[asyncio.Task[Any]] = set()
        self._tracer = trace.get_tracer(n.DEV_SCOPE_NAME, __version__, schema_url=n.SCHEMA_URL)

    def asgi(self, out: TextIO) -> ASGIApp:
        """The app, with one live line per request written to ``out``."""
        app = Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/chat", self._chat, methods=["POST"]),
                Route("/chat/resume", self._resume, methods=["POST"]),
                Route("/chat/stream", _Stream(self), methods=["GET"]),
                Route("/trace/{trace_id}", self._trace, methods=["GET"]),
                Route("/metrics", self._prometheus, methods=["GET"]),
            ]
        )
        return _RequestLog(app, out)

    def cancel_runs(self) -> int:
        """Cancel every run in flight; their spans end ``cancelled``. Returns how many."""
        runs = [task for task in self._runs if not task.done()]
        for task in runs:
            task.cancel()
        return len(runs)

    # Simple routes ------------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "agent": self._target.name, "kind": self._target.kind})

    async def _prometheus(self, request: Request) -> Response:
        return Response(self._metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _trace(self, request: Request) -> Response:
        trace_id = str(request.path_params["trace_id"]).lower()
        records = self._spans.trace(trace_id)
        if not records:
            return JSONResponse({"error": f"no buffered spans for trace {trace_id}"}, status_code=404)
        return JSONResponse({"trace_id": trace_id, "spans": span_forest(records)})

    # Chat ---------------------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        try:
            body = await _read(request, ChatBody)
        except _Problem as problem:
            return JSONResponse({"error": str(problem)}, status_code=problem.status)
        return await self._answer(request, body.session_id or uuid.uuid4().hex, lambda x: self.ask(body, x))

    async def _resume(self, request: Request) -> Response:
        try:
            body = await _read(request, ResumeBody)
        except _Problem as problem:
            return JSONResponse({"error": str(problem)}, status_code=problem.status)
        return await self._answer(request, None, lambda x: self._target.resume(body, x))

    def ask(self, body: ChatBody, exchange: Exchange) -> Awaitable[Any]:
        """The target's answer to ``body`` (a coroutine; run it with :meth:`start`)."""
        return self._target.ask(body, exchange)

    def follow(self, trace_id: str, deliver: Callable[[SpanRecord], None]) -> AbstractContextManager[None]:
        """Feed ``deliver`` each span of ``trace_id`` that ends inside the block."""
        return self._spans.follow(trace_id, deliver)

    async def _answer(
        self, request: Request, session_id: str | None, call: Callable[[Exchange], Awaitable[Any]]
    ) -> Response:
        with self.exchange(request.scope, session_id) as (span, exchange):
            task = self.start(span, call(exchange))
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                raise
            status, body = self.settle(task, exchange)
            span.set_attribute(n.ATTR_HTTP_RESPONSE_STATUS_CODE, status)
            return JSONResponse(body, status_code=status)

    @contextmanager
    def exchange(self, scope: Scope, session_id: str | None) -> Iterator[tuple[Span, Exchange]]:
        """The request's SERVER span (ended on exit) and its trace identity.

        The message headers come from the request's own trace context when it has a valid one,
        else from the SERVER span, so every span of the request shares one trace id.
        """
        request = Request(scope)
        route = request.url.path
        span = self._tracer.start_span(
            n.SPAN_DEV_REQUEST.format(method=request.method, route=route),
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                n.ATTR_HTTP_REQUEST_METHOD: request.method,
                n.ATTR_HTTP_ROUTE: route,
                n.ATTR_URL_PATH: route,
            },
        )
        outcome = "error"
        try:
            headers = headers_from_carrier(request.headers, tenant=TENANT)
            if headers.traceparent is None:
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=trace.set_span_in_context(span))
                headers = headers_from_carrier(carrier, tenant=TENANT)
            trace_id = headers.traceparent.split("-")[1] if headers.traceparent else new_trace_id()
            exchange = Exchange(trace_id=trace_id, headers=headers, session_id=session_id)
            _state(scope)["trace_id"] = trace_id
            try:
                yield span, exchange
            finally:
                outcome = exchange.outcome
        finally:
            _state(scope)["outcome"] = outcome
            span.set_attribute(n.ATTR_OUTCOME, _span_outcome(outcome))
            if outcome == "error":
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    def start(self, span: Span, run: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``run`` as its own task with ``span`` current; it is cancelled at shutdown."""
        with trace.use_span(span, end_on_exit=False):
            task: asyncio.Task[Any] = asyncio.ensure_future(run)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return task

    def settle(self, task: asyncio.Task[Any], exchange: Exchange) -> tuple[int, dict[str, Any]]:
        """The HTTP status and body for a finished run task; sets ``exchange.outcome``."""
        ids = {"trace_id": exchange.trace_id, "session_id": exchange.session_id}
        exc = None if task.cancelled() else task.exception()
        if task.cancelled() or isinstance(exc, TraceCancelled):
            exchange.outcome = "cancelled"
            return 503, {**ids, "error": "the run was cancelled"}
        if isinstance(exc, PauseTokenError):
            return (404 if exc.reason == "unknown" else 410), {**ids, "error": str(exc), "reason": exc.reason}
        if isinstance(exc, RunFailed):
            return 500, {**ids, "error": str(exc), "flow_error": exc.payload}
        if exc is not None:
            _logger.error("the run failed", exc_info=exc)
            return 500, {**ids, "error": f"{type(exc).__name__}: {exc}"}
        body = {**ids, **result_body(task.result())}
        exchange.outcome = "paused" if body["status"] == "paused" else "finished"
        return 200, body


def _span_outcome(outcome: str) -> str:
    return {"finished": n.OUTCOME_OK, "paused": n.OUTCOME_PAUSED, "cancelled": n.OUTCOME_CANCELLED}.get(
        outcome, n.OUTCOME_ERROR
    )


class _Stream:
    """``GET /chat/stream``: one run, its events as server-sent events while it runs, then ``done``.

    A raw ASGI endpoint, so that it can watch for the client leaving while it writes: a disconnect
    cancels the run (its spans end ``cancelled``).
    """

    def __init__(self, app: DevApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        query = request.query_params.get("query", "")
        if not query.strip():
            response = JSONResponse({"error": "query: pass ?query=... (non-empty)"}, status_code=422)
            await response(scope, receive, send)
            return
        body = ChatBody(query=query, session_id=request.query_params.get("session_id") or None)
        session_id = body.session_id or uuid.uuid4().hex
        frames: asyncio.Queue[tuple[str, object] | None] = asyncio.Queue()

        def emit(event: str, data: object) -> None:
            frames.put_nowait((event, data))

        def span_ended(record: SpanRecord) -> None:
            emit("span", record)

        with self._app.exchange(scope, session_id) as (span, exchange):
            exchange.emit = emit
            with self._app.follow(exchange.trace_id, span_ended):
                await send(_START)
                task = self._app.start(span, self._app.ask(body, exchange))
                task.add_done_callback(lambda _: frames.put_nowait(None))
                gone = asyncio.ensure_future(_disconnected(receive))
                gone.add_done_callback(lambda _: task.cancel())
                try:
                    await _pump(frames, send)
                finally:
                    gone.cancel()
                    if not task.done():
                        task.cancel()
                        await asyncio.wait({task})
                status, result = self._app.settle(task, exchange)
                span.set_attribute(n.ATTR_HTTP_RESPONSE_STATUS_CODE, 200)
                if not _left(gone):
                    await send(_body(_frame("done" if status == 200 else "error", result)))
                    await send({"type": "http.response.body", "body": b"", "more_body": False})


_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ],
}


def _body(data: bytes) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": True}


def _left(gone: asyncio.Future[None]) -> bool:
    return gone.done() and not gone.cancelled()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pump(frames: asyncio.Queue[tuple[str, object] | None], send: Send) -> None:
    """Write each frame as soon as it is queued, and a keep-alive comment after 15 s of quiet."""
    getter: asyncio.Task[tuple[str, object] | None] | None = None
    try:
        while True:
            if getter is None:
                getter = asyncio.ensure_future(frames.get())
            done, _ = await asyncio.wait({getter}, timeout=KEEP_ALIVE_S)
            if not done:
                await send(_body(b": keep-alive\n\n"))
                continue
            item, getter = getter.result(), None
            if item is None:
                return
            await send(_body(_frame(*item)))
    finally:
        if getter is not None:
            getter.cancel()


class _RequestLog:
    """Prints one line per request when it ends: method, path, status, trace id, latency, outcome."""

    def __init__(self, app: ASGIApp, out: TextIO) -> None:
        self._app = app
        self._out = out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            state = _state(scope)
            elapsed = (time.perf_counter() - started) * 1000
            line = (
                f"{scope['method']} {scope['path']} {status} trace={state.get('trace_id', '-')} "
                f"{elapsed:.1f}ms {state.get('outcome', '-')}"
            )
            print(line, file=self._out, flush=True)
