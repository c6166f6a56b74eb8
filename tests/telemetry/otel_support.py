"""Helpers for the telemetry tests: an OTLP/HTTP sink, a silent collector, rotel, and child runs.

``configure()`` installs the OTel global providers, which can be set once per process, so every
test that calls it runs ``configure_child.py`` in a fresh interpreter. Servers bind 127.0.0.1 on
ports the OS picks (backends.md).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from loopback import HTTPThread, clean_env, free_port, port_accepts, stop_process
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

CHILD = Path(__file__).with_name("configure_child.py")


@dataclass(frozen=True)
class ChildRun:
    """A finished ``configure_child.py`` run: its JSON report, its output, and when it exited."""

    report: dict[str, Any]
    stdout: str
    stderr: str
    exited_at: float


def run_child(
    scenario: str, params: Mapping[str, Any], env: Mapping[str, str], timeout: float = 30
) -> ChildRun:
    """Run one ``configure_child.py`` scenario in a fresh interpreter; its last stdout line is the report."""
    done = subprocess.run(
        [sys.executable, str(CHILD), scenario, json.dumps(params)],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )
    exited_at = time.monotonic()
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"child printed no report:\n{done.stderr}"
    return ChildRun(json.loads(lines[-1]), done.stdout, done.stderr, exited_at)


# OTLP/HTTP sink --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    """One span a sink received."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service_name: str


class OtlpSink:
    """A tiny OTLP/HTTP receiver: decodes trace and metric export requests and keeps what arrived."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.metric_names: list[str] = []
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = _decode(self.rfile.read(int(self.headers.get("Content-Length", "0"))), self.headers)
                if self.path == "/v1/traces":
                    sink._add_traces(body)
                    reply = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    sink._add_metrics(body)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._http = HTTPThread(Handler)
        self.port = self._http.port
        self.url = self._http.url

    def _add_traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            attributes = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes.get("service.name", ""),
                        )
                    )
        with self._changed:
            self.spans.extend(received)
            self._changed.notify_all()

    def _add_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        names = [
            metric.name
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ]
        with self._changed:
            self.metric_names.extend(names)
            self._changed.notify_all()

    def wait_for_spans(self, count: int, timeout: float) -> list[ReceivedSpan]:
        """The spans received once at least ``count`` arrived, or when ``timeout`` passed."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.spans) >= count, timeout)
            return list(self.spans)

    def close(self) -> None:
        """Stop serving."""
        self._http.close()


def _decode(body: bytes, headers: Any) -> bytes:
    encoding = str(headers.get("Content-Encoding", "")).lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


@contextmanager
def silent_collector() -> Iterator[int]:
    """A loopback TCP server that accepts connections and never answers; yields its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for connection in held:
            connection.close()


# rotel, the real OTLP collector (backends.md) ----------------------------------------------------


def rotel_agent() -> Path | None:
    """The ``rotel-agent`` executable inside the installed ``rotel`` package, if there is one."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "rotel-agent"
    return path if path.is_file() and os.access(path, os.X_OK) else None


class RotelAgent:
    """``rotel-agent`` in the foreground on run-time loopback ports, forwarding OTLP to ``sink_url``."""

    def __init__(self, executable: Path, sink_url: str, directory: Path) -> None:
        self._executable, self._sink_url, self._directory = executable, sink_url, directory
        self.grpc_port = self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, deadline_s: float = 10.0) -> None:
        """Start it and wait until both ports accept connections; retry on a port clash (three tries)."""
        for _attempt in range(3):
            self.grpc_port, self.http_port = free_port(), free_port()
            if self._try_start(deadline_s):
                return
            self.stop()
        raise AssertionError(f"rotel-agent did not become ready:\n{self.log_tail()}")

    def _try_start(self, deadline_s: float) -> bool:
        log = self._directory / "rotel.log"
        args = [
            str(self._executable), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", self._sink_url,
            "--otlp-exporter-protocol", "http",
            "--pid-file", str(self._directory / "rotel.pid"),
            "--log-file", str(log),
        ]  # fmt: skip
        with open(self._directory / "rotel.out", "ab") as output:
            self._process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=clean_env())
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if port_accepts(self.grpc_port) and port_accepts(self.http_port):
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 30) -> str:
        """The end of rotel's output and log, for failure messages."""
        text = ""
        for name in ("rotel.out", "rotel.log"):
            path = self._directory / name
            if path.exists():
                text += (
                    f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
                )
        return text

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL: only the process this object started."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
