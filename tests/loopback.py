"""Helpers for tests that run servers and child processes on 127.0.0.1 (backends.md).

Ports are picked by the OS at run time; child processes get an environment without telemetry
settings; executables are started until their ready URL answers (``Servers``, handed out by the
``servers`` fixture of ``conftest.py``); HTTP handlers are served from a daemon thread; and
``penguiflow-otel demo --serve`` is started and read until it serves.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_ENV_PREFIXES = ("OTEL_", "PENGUIFLOW_OTEL_", "ROTEL_")
READY_DEADLINE_S = 10.0


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picked it; the caller retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``OTEL_*``, ``PENGUIFLOW_OTEL_*`` or ``ROTEL_*`` variable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_ENV_PREFIXES)}
    env.update(extra)
    return env


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 5) -> None:
    """SIGTERM a child that is still running, wait up to ``timeout`` seconds, then SIGKILL it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class HTTPThread:
    """An HTTP request handler class served on a run-time 127.0.0.1 port from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving, close the socket and wait for the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """``(status, body)`` of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@dataclass
class Server:
    """One started executable."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Servers:
    """Starts executables in ``directory`` and stops every one of them (SIGTERM, 5 s, SIGKILL)."""

    directory: Path
    started: list[Server] = field(default_factory=list)

    def start(self, name: str, argv: Callable[[int], list[str]], ready_path: str = "/-/ready") -> Server:
        """Start ``argv(port)`` on a fresh loopback port and wait until ``ready_path`` answers 200."""
        for attempt in range(3):
            port = free_port()
            log = self.directory / f"{name}-{attempt}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    argv(port), stdout=sink, stderr=subprocess.STDOUT, cwd=self.directory
                )
            server = Server(name, process, port, log)
            self.started.append(server)
            deadline = time.monotonic() + READY_DEADLINE_S
            while time.monotonic() < deadline and process.poll() is None:
                if http_get(f"{server.url}{ready_path}", timeout=0.5)[0] == 200:
                    return server
                time.sleep(0.05)
            stop_process(process)
            if "address already in use" not in log.read_text(errors="replace"):
                break
        raise AssertionError(f"{name} did not become ready on {server.url}:\n{server.log_tail()}")

    def stop_all(self) -> None:
        """Stop every started executable, the last started first."""
        for server in reversed(self.started):
            stop_process(server.process)


def start_demo_serving(directory: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``penguiflow-otel demo --serve --messages 3``; once it serves, return it and its metrics URL.

    Spans go to ``directory/spans.jsonl`` and stderr to ``directory/demo-serve.err``; the caller
    stops the process.
    """
    errors = directory / "demo-serve.err"
    with errors.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "penguiflow_otel.cli._main", "demo", "--serve",
             "--messages", "3", "--traces-file", str(directory / "spans.jsonl")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=clean_env(),
        )  # fmt: skip
    assert proc.stdout is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("metrics: "):
            url = line.split(" ", 1)[1].strip()
        if line.startswith("serving "):
            return proc, url
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.communicate()
    raise AssertionError(f"demo --serve did not start: {errors.read_text(errors='replace')}")
