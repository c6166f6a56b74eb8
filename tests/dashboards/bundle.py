"""Shared helpers of the dashboards tests: the generator, PromQL names, and real servers on loopback."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from loopback import HTTPThread, Server, http_get

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

        self._http = HTTPThread(Handler)
        self.port = self._http.port

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
        """Stop serving."""
        self._http.close()
