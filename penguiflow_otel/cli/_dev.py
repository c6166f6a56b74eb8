"""``penguiflow-otel dev``: serve a project's flow or planner on 127.0.0.1 (extra ``dev``).

Order of start-up, so that every mistake is reported before anything is running: the extra, the
project's entry (found without importing), the ``.env`` file, the socket (a busy port fails here),
telemetry, then the project is imported and built. SIGINT or SIGTERM stops accepting, cancels the
runs in flight, stops a flow, shuts telemetry down and exits 0; a second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import CommandError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from ._spans import SpanBuffer
    from ._target import Target

__all__ = ["DevOptions", "run_dev"]

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_EXTRA_HINT = "pip install 'penguiflow-otel[dev]'"


@dataclass(frozen=True, slots=True)
class DevOptions:
    """The options of ``penguiflow-otel dev``."""

    project_root: Path = Path()
    host: str = "127.0.0.1"
    port: int = 8001
    env_file: Path | None = None
    capture_content: bool = False


def run_dev(options: DevOptions) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code.

    Raises:
        CommandError: A missing extra, a project without a flow or planner, a bad ``.env`` file,
            a port in use (exit code 1), or a project that fails to import or build.
    """
    _require_extra()
    from ._target import find_entry

    root = options.project_root.resolve()
    entry = find_entry(root)
    _load_env_file(options.env_file or root / ".env", required=options.env_file is not None)
    if options.capture_content:
        os.environ[CAPTURE_CONTENT_ENV] = "true"
    if not _is_loopback(options.host):
        print(
            f"warning: {options.host} is not a loopback address; the dev server has no authentication",
            file=sys.stderr,
        )
    listener = _bind(options.host, options.port)
    try:
        return asyncio.run(_serve(root, entry, listener))
    finally:
        listener.close()


def _require_extra() -> None:
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandError(f"the dev server needs {' and '.join(missing)}: {_EXTRA_HINT}")


def _load_env_file(path: Path, *, required: bool) -> None:
    """Set the ``KEY=VALUE`` lines of ``path`` that are not set already."""
    if not path.is_file():
        if required:
            raise CommandError(f"env file {path} does not exist; pass an existing --env-file PATH")
        return
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise CommandError(f"{path}:{number} is not KEY=VALUE; fix or remove that line")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key, value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"{host}:{port} is in use; pass --port", exit_code=1) from exc
        raise CommandError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pass --host or --port", exit_code=1
        ) from exc
    return listener


# Telemetry -----------------------------------------------------------------------------------------


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


@dataclass(slots=True)
class _Telemetry:
    spans: SpanBuffer
    metrics: Callable[[], bytes]
    own_provider: TracerProvider | None

    async def stop(self) -> None:
        from .. import telemetry

        if not await telemetry.shutdown(timeout=5.0):
            print("warning: telemetry did not flush within 5 s", file=sys.stderr)
        if self.own_provider is not None:
            self.own_provider.shutdown()


def _start_telemetry(service_name: str) -> _Telemetry:
    """Global providers: the span buffer, OTLP/HTTP when an endpoint is set, Prometheus on its own registry.

    ``OTEL_TRACES_EXPORTER`` (for example ``jsonl`` with ``PENGUIFLOW_OTEL_TRACES_FILE``) is honoured.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from prometheus_client import CollectorRegistry, generate_latest

    from .. import telemetry
    from ..telemetry._ids import seeded_id_generator
    from ._spans import SpanBuffer

    registry = CollectorRegistry()
    otlp = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    try:
        handle = telemetry.configure(
            service_name=_env("OTEL_SERVICE_NAME") or service_name,
            traces=None if _env("OTEL_TRACES_EXPORTER") else ("otlp" if otlp else "none"),
            metrics=("prometheus", "otlp") if otlp else "prometheus",
            prometheus_port=0,
            prometheus_registry=registry,
        )
    except ValueError as exc:
        raise CommandError(f"telemetry settings: {exc}") from exc
    spans = SpanBuffer()
    provider: Any = handle.tracer_provider
    own = None
    if provider is None and (_env("OTEL_SDK_DISABLED") or "").lower() != "true":
        own = provider = TracerProvider(
            resource=Resource.create({"service.name": _env("OTEL_SERVICE_NAME") or service_name}),
            id_generator=seeded_id_generator(RandomIdGenerator()),
        )
        trace.set_tracer_provider(own)
    if isinstance(provider, TracerProvider):
        provider.add_span_processor(spans)
    return _Telemetry(spans, lambda: generate_latest(registry), own)


# Serving -------------------------------------------------------------------------------------------


async def _serve(root: Path, entry: Any, listener: socket.socket) -> int:
    from ._app import DevApp
    from ._target import load_target

    tel = _start_telemetry(root.name)
    target: Target | None = None
    try:
        target = load_target(root, entry)
        app = DevApp(target, tel.spans, tel.metrics)
        await target.start()
        host, port = listener.getsockname()[:2]
        url = f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"
        print(f"serving the {target.kind} {target.name!r} ({entry}) on {url}", flush=True)
        print(f"  POST {url}/chat   GET {url}/chat/stream?query=...   GET {url}/health   GET {url}/metrics")
        print("  Ctrl-C stops", flush=True)
        await _run_server(app, listener)
        print("stopped", flush=True)
    finally:
        if target is not None:
            await target.stop()
        await tel.stop()
    return 0


async def _run_server(app: Any, listener: socket.socket) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # Our own loop handlers stop the server; uvicorn's would re-raise the signal afterwards.
            yield

    config = uvicorn.Config(
        app.asgi(sys.stdout),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = Server(config)

    def on_signal() -> None:
        if server.should_exit:
            server.force_exit = True
            return
        print("stopping: cancelling the runs in flight", flush=True)
        app.cancel_runs()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await server.serve(sockets=[listener])
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
