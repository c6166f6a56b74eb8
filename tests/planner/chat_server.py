"""A tiny chat-completions server on 127.0.0.1 for client tests; each request takes the next behaviour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    """One request the server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Behaviour:
    """What the server does with one request: ``json``, ``sse``, ``raw`` or ``hang``."""

    kind: str
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str, *, prompt_tokens: int = 11, completion_tokens: int = 7) -> Behaviour:
    return Behaviour(
        "json",
        body={
            "id": "chatcmpl-1",
            "model": "served-model",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        },
    )


def stream(*pieces: str) -> Behaviour:
    chunks: list[dict[str, Any]] = [
        {"id": "c1", "model": "served-model", "choices": [{"delta": {"content": p}}]} for p in pieces
    ]
    chunks.append({"id": "c1", "choices": [{"delta": {}, "finish_reason": "stop"}]})
    chunks.append({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
    return Behaviour("sse", body=chunks)


def error(status: int, message: str = "error", headers: dict[str, str] | None = None) -> Behaviour:
    return Behaviour("json", status=status, body={"error": {"message": message}}, headers=headers or {})


class ChatServer:
    """Serves scripted behaviours and records every request."""

    def __init__(self, behaviours: list[Behaviour]) -> None:
        self.behaviours = list(behaviours)
        self.received: list[Received] = []
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            request_line = (await reader.readline()).decode()
            method, path, _ = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, json.loads(body or b"{}")))
            behaviour = self.behaviours.pop(0)
            await self.respond(behaviour, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def respond(self, behaviour: Behaviour, writer: asyncio.StreamWriter) -> None:
        if behaviour.kind == "hang":
            await asyncio.sleep(30)
            return
        if behaviour.kind == "sse":
            payload = (
                b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in behaviour.body) + b"data: [DONE]\n\n"
            )
            content_type = "text/event-stream"
        elif behaviour.kind == "raw":
            payload, content_type = behaviour.body, "application/json"
        else:
            payload, content_type = json.dumps(behaviour.body).encode(), "application/json"
        extra = "".join(f"{k}: {v}\r\n" for k, v in behaviour.headers.items())
        head = (
            f"HTTP/1.1 {behaviour.status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n{extra}\r\n"
        )
        writer.write(head.encode() + payload)
        await writer.drain()


@asynccontextmanager
async def chat_server(*behaviours: Behaviour) -> AsyncIterator[ChatServer]:
    """Run a ChatServer on a free 127.0.0.1 port for the duration of the block."""
    server = ChatServer(list(behaviours))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in server.handlers:
            task.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listener.wait_closed()
