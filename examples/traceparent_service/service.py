"""A standard-library HTTP service that runs a flow inside its caller's trace.

Run with `uv run python examples/traceparent_service/service.py`: it starts a server on a free
127.0.0.1 port, sends itself one request carrying a W3C `traceparent`, prints the answer and the
trace id on both sides (they are equal), and exits. With `--serve` it stays up until Ctrl-C or SIGTERM:

    curl -s -d '{"text": "hello"}' http://127.0.0.1:PORT/ \
         -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

The handler turns the request headers into message headers with `headers_from_carrier`, so the
flow's spans become children of the caller's span instead of starting a trace of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow_otel import Context, Message, Node, PenguiFlow
from penguiflow_otel.propagation import headers_from_carrier


async def shout(message: Message[Any], ctx: Context) -> Message[Any]:
    return message.model_copy(update={"payload": str(message.payload).upper()})


class Service:
    """The flow, running on the event loop; HTTP handler threads hand it requests."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        shout_node = Node(shout, name="shout")
        self.flow = PenguiFlow(shout_node.to(), name="shout_service")
        self.loop = loop

    async def answer(self, request_headers: dict[str, str], text: str) -> dict[str, str]:
        headers = headers_from_carrier(request_headers, tenant="acme")  # the caller's traceparent, if any
        message = Message(payload=text, headers=headers)
        await self.flow.emit(message, trace_id=message.trace_id)
        result = await self.flow.fetch(trace_id=message.trace_id)
        return {"answer": result.payload, "trace_id": message.trace_id}


def handler_for(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
            work = service.answer(dict(self.headers.items()), str(body.get("text", "")))
            reply = json.dumps(asyncio.run_coroutine_threadsafe(work, service.loop).result(timeout=10))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the example prints its own lines."""

    return Handler


def call(url: str, trace_id: str) -> dict[str, str]:
    """The caller: a request carrying its own span's traceparent."""
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    request = urllib.request.Request(url, data=b'{"text": "hello from the caller"}', method="POST")
    request.add_header("traceparent", traceparent)
    with urllib.request.urlopen(request, timeout=10) as response:
        reply: dict[str, str] = json.loads(response.read())
    return reply


async def main(serve: bool) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)  # configure telemetry before the flow starts

    service = Service(asyncio.get_running_loop())
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(service))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service.flow.run()
    caller_trace_id = secrets.token_hex(16)
    try:
        print(f"listening on {url}", flush=True)
        if serve:
            await _until_stopped()
            return
        reply = await asyncio.to_thread(call, url, caller_trace_id)
        print(f"caller trace id: {caller_trace_id}")
        print(f"answer:          {reply['answer']}")
        print(f"flow trace id:   {reply['trace_id']}")
    finally:
        await service.flow.stop()
        server.shutdown()
        server.server_close()
    joined = sorted({span.name for span in spans.get_finished_spans() if _trace_id(span) == caller_trace_id})
    print(f"spans in the caller's trace: {', '.join(joined)}")


async def _until_stopped() -> None:
    """Wait for SIGINT (Ctrl-C) or SIGTERM; either is a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _trace_id(span: Any) -> str:
    return f"{span.context.trace_id:032x}"


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the server is up
        asyncio.run(main(serve="--serve" in sys.argv[1:]))
