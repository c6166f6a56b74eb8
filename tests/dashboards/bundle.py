"""Shared helpers of the dashboards tests: the generator, PromQL names, and real servers on loopback."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from penguiflow_otel.telemetry import names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"


def _load_generator() -> Any:
    """``dashboards/generate.py`` as the module ``generate`` (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("generate", DASHBOARDS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import generate as generate
else:
    generate = sys.modules["generate"] if "generate" in sys.modules else _load_generator()


# Bundle contents --------------------------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards, by file name."""
    return {name: json.loads((DASHBOARDS / name).read_text()) for name in generate.DASHBOARD_FILES.values()}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows excluded (nested row panels included)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def prometheus_exprs(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every Prometheus query of a dashboard."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield panel["title"], target["expr"]


def rule_groups(file_name: str) -> list[dict[str, Any]]:
    """The rules of ``dashboards/<file_name>``, flattened across groups."""
    document = yaml.safe_load((DASHBOARDS / file_name).read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def catalog_samples() -> set[str]:
    """Every Prometheus sample and family name the catalog declares (SDK self-metrics included)."""
    found = {names.TARGET_INFO, *names.SDK_SELF_METRIC_SAMPLES}
    for spec in names.METRICS:
        found.add(spec.prometheus)
        found.update(spec.samples)
    return found


# PromQL -----------------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"inf", "nan", "Inf", "NaN"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    found: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        found.add(word)
    return found


def label_values_metric(query: str) -> set[str]:
    """The metric of a Grafana ``label_values(selector, label)`` variable query."""
    match = re.fullmatch(r"label_values\((?P<selector>.*),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)", query)
    assert match is not None, f"not a label_values query: {query}"
    return metric_names(match.group("selector"))


def fill_variables(expr: str, rate_interval: str) -> str:
    """A dashboard query with its variables filled in: every selection variable matches everything."""
    filled = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?([A-Za-z_]+)(?::[a-z]+)?\}?", ".*", filled)


# Real servers on loopback (backends.md) ---------------------------------------------------------

READY_DEADLINE_S = 10.0


def free_port() -> int:
    """A loopback port free right now (the caller retries if it is taken before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
            self.stop(server)
            if "address already in use" not in log.read_text(errors="replace"):
                break
        raise AssertionError(f"{name} did not become ready on {server.url}:\n{server.log_tail()}")

    def stop(self, server: Server) -> None:
        process = server.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for server in reversed(self.started):
            self.stop(server)


def prometheus_argv(config: Path, directory: Path) -> Callable[[int], list[str]]:
    """The Prometheus command line of backends.md, for a run-time port."""

    def argv(port: int) -> list[str]:
        return [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
        ]

    return argv


def alertmanager_argv(config: Path, directory: Path) -> Callable[[int], list[str]]:
    """The Alertmanager command line of backends.md (clustering off), for a run-time port."""

    def argv(port: int) -> list[str]:
        return [
            "prometheus-alertmanager",
            f"--config.file={config}",
            f"--storage.path={directory / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]

    return argv


def prometheus_query(server: Server, query: str) -> dict[str, Any]:
    """The JSON answer of ``/api/v1/query`` (errors included, for the caller to assert on)."""
    status, body = http_get(f"{server.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    assert status in (200, 400, 422), f"query API answered {status}: {body[:200]!r}"
    answer: dict[str, Any] = json.loads(body)
    return answer


class Webhook:
    """An Alertmanager webhook receiver on 127.0.0.1 that keeps every notification it gets."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self.notifications
        lock = self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alert"

    def alerts(self, status: str) -> list[dict[str, Any]]:
        """Alerts of every notification so far whose status is ``status``."""
        with self._lock:
            return [
                alert
                for notification in self.notifications
                for alert in notification["alerts"]
                if notification["status"] == status and alert["status"] == status
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
