"""Real Prometheus and Alertmanager on loopback, scraping a flow in this process through the shipped rules."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from bundle import (
    Webhook,
    alertmanager_argv,
    dashboards,
    fill_variables,
    generate,
    panels,
    prometheus_argv,
    prometheus_exprs,
    prometheus_query,
)
from loopback import Server, Servers, http_get
from prometheus_client import start_http_server

from penguiflow_otel import Headers, Message, Node, NodePolicy, PenguiFlow, create
from penguiflow_otel.testing import capture_telemetry

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus not installed (Debian package)"
    ),
]
needs_alertmanager = pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None,
    reason="prometheus-alertmanager not installed (Debian package)",
)

SCALED = {"window": "3s", "horizon": "3s", "for": "2s"}
"""Alert windows and for: durations scaled down from minutes to seconds for a 1 s scrape interval."""


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """The Alertmanager webhook receiver."""
    receiver = Webhook()
    try:
        yield receiver
    finally:
        receiver.close()


def _stalled_flow(hold: asyncio.Event) -> PenguiFlow:
    """``intake -> sink``: the sink awaits ``hold``, so its bounded input queue fills."""

    async def intake(message: Message[Any], ctx: Any) -> Message[Any]:
        return message

    async def sink(message: Message[Any], ctx: Any) -> Message[Any]:
        await hold.wait()
        return message

    intake_node, sink_node = Node(intake, name="intake"), Node(sink, name="sink")
    return create(intake_node.to(sink_node), sink_node.to(), queue_maxsize=4, name="stalled_sink")


async def _feed(flow: PenguiFlow) -> None:
    index = 0
    while True:
        await flow.emit(Message(payload=index, headers=Headers(tenant="t")))
        index += 1


def _write_prometheus_config(
    directory: Path, rules: dict[str, str], metrics_port: int, alertmanager: str
) -> Path:
    for name in ("prometheus_rules.yaml", "prometheus_alerts.yaml"):
        (directory / name).write_text(rules[name])
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["prometheus_rules.yaml", "prometheus_alerts.yaml"],
        "scrape_configs": [
            {"job_name": "penguiflow-test", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _write_alertmanager_config(directory: Path, hook_url: str) -> Path:
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "penguiflow_flow_name", "penguiflow_queue_name"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook_url, "send_resolved": True}]}],
    }
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _until(
    condition: Callable[[], list[dict[str, Any]]], timeout: float, what: str, *logs: Server
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = condition()
        if found:
            return found
        await asyncio.sleep(0.2)
    tails = "\n".join(f"--- {server.name}\n{server.log_tail()}" for server in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@needs_alertmanager
@pytest.mark.timeout(90)
async def test_stalled_sink_fires_saturation_through_alertmanager_and_resolves_when_released(
    tmp_path: Path, servers: Servers, webhook: Webhook
) -> None:
    """A held sink fills its queue: saturation reaches the webhook with flow and queue, then resolves."""
    rules = generate.render(generate.scaled_config(generate.load_config(), SCALED))
    hold = asyncio.Event()
    with capture_telemetry() as tel:
        metrics, _thread = start_http_server(0, addr="127.0.0.1", registry=tel.registry)
        flow = _stalled_flow(hold)
        flow.run()
        feeder = asyncio.get_running_loop().create_task(_feed(flow))
        try:
            am_config = _write_alertmanager_config(tmp_path, webhook.url)
            alertmanager = await asyncio.to_thread(
                servers.start, "alertmanager", alertmanager_argv(am_config, tmp_path)
            )
            prom_config = _write_prometheus_config(
                tmp_path, rules, metrics.server_port, f"127.0.0.1:{alertmanager.port}"
            )
            prometheus = await asyncio.to_thread(
                servers.start, "prometheus", prometheus_argv(prom_config, tmp_path)
            )

            def saturated(status: str) -> Callable[[], list[dict[str, Any]]]:
                return lambda: [
                    alert
                    for alert in webhook.alerts(status)
                    if alert["labels"]["alertname"] == "PenguiflowQueueSaturated"
                    and alert["labels"]["penguiflow_queue_name"] == "intake->sink"
                ]

            fired = await _until(
                saturated("firing"), 30, "a firing PenguiflowQueueSaturated", prometheus, alertmanager
            )
            labels = fired[0]["labels"]
            assert labels["penguiflow_flow_name"] == "stalled_sink"
            assert labels["job"] == "penguiflow-test"
            assert labels["severity"] == "warning"
            annotations = fired[0]["annotations"]
            assert "Queue intake->sink of flow stalled_sink" in annotations["description"]
            assert annotations["runbook_url"].endswith("#penguiflowqueuesaturated")

            feeder.cancel()
            hold.set()
            resolved = await _until(
                saturated("resolved"), 30, "the resolved notification", prometheus, alertmanager
            )
            assert resolved[0]["labels"]["penguiflow_flow_name"] == "stalled_sink"
            queue = prometheus_query(
                prometheus, 'penguiflow_queue_size{penguiflow_queue_name="intake->sink"}'
            )
            assert [float(sample["value"][1]) for sample in queue["data"]["result"]] == [0.0]
        finally:
            feeder.cancel()
            hold.set()
            await asyncio.gather(feeder, return_exceptions=True)
            await flow.stop()
            metrics.shutdown()
            metrics.server_close()


def _healthy_flow() -> PenguiFlow:
    """``prepare -> work``: work fails every other attempt (a retry) so error and retry series exist."""
    attempts = 0

    async def prepare(message: Message[Any], ctx: Any) -> Message[Any]:
        return message

    async def work(message: Message[Any], ctx: Any) -> Message[Any]:
        nonlocal attempts
        attempts += 1
        if attempts % 2:
            raise ConnectionError("flaky dependency")
        return message

    prepare_node = Node(prepare, name="prepare")
    work_node = Node(work, name="work", policy=NodePolicy(max_retries=2, backoff_base=0.001))
    return create(prepare_node.to(work_node), work_node.to(), queue_maxsize=8, name="healthy")


async def _traffic(flow: PenguiFlow) -> None:
    index = 0
    while True:
        message: Message[Any] = Message(payload=index, headers=Headers(tenant="t"))
        await flow.emit(message, trace_id=message.trace_id)
        if index % 5 == 4:
            await flow.cancel(message.trace_id)
        else:
            await flow.fetch(trace_id=message.trace_id)
        index += 1
        await asyncio.sleep(0.02)


@pytest.mark.timeout(90)
async def test_every_dashboard_query_runs_on_a_real_prometheus(tmp_path: Path, servers: Servers) -> None:
    """Each panel query, variables filled in, is valid PromQL; runtime panels return data for live flows."""
    rules = generate.render(generate.load_config())
    hold = asyncio.Event()
    with capture_telemetry() as tel:
        metrics, _thread = start_http_server(0, addr="127.0.0.1", registry=tel.registry)
        stalled, healthy = _stalled_flow(hold), _healthy_flow()
        stalled.run()
        healthy.run()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_feed(stalled)), loop.create_task(_traffic(healthy))]
        try:
            config = _write_prometheus_config(tmp_path, rules, metrics.server_port, "")
            prometheus = await asyncio.to_thread(
                servers.start, "prometheus", prometheus_argv(config, tmp_path)
            )

            def scraped() -> list[dict[str, Any]]:
                answer = prometheus_query(prometheus, "count_over_time(up[1m])")
                result: list[dict[str, Any]] = answer["data"]["result"]
                return [sample for sample in result if float(sample["value"][1]) >= 5]

            await _until(scraped, 30, "five scrapes", prometheus)
            empty: list[str] = []
            for file_name, dashboard in dashboards().items():
                for title, expr in prometheus_exprs(dashboard):
                    query = fill_variables(expr, "4s")
                    answer = await asyncio.to_thread(prometheus_query, prometheus, query)
                    assert answer["status"] == "success", (file_name, title, query, answer.get("error"))
                    if not answer["data"]["result"]:
                        empty.append(f"{file_name}: {title}")
            # Planner series need a planner, and otel_sdk_* series the SDK's batch span processor, which
            # capture_telemetry() does not install; every runtime panel has data.
            assert all(
                name.startswith(("penguiflow-planner", "penguiflow-telemetry-health")) for name in empty
            ), empty
            for file_name, dashboard in dashboards().items():
                for variable in dashboard["templating"]["list"]:
                    if variable["type"] != "query" or variable["name"] == "agent":
                        continue
                    selector, label = variable["definition"][len("label_values(") : -1].rsplit(", ", 1)
                    status, body = await asyncio.to_thread(
                        http_get,
                        f"{prometheus.url}/api/v1/label/{label}/values?match[]="
                        + quote(fill_variables(selector, "4s")),
                    )
                    assert status == 200, (file_name, variable["name"])
                    assert json.loads(body)["data"], (file_name, variable["name"])
        finally:
            for task in tasks:
                task.cancel()
            hold.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await stalled.stop()
            await healthy.stop()
            metrics.shutdown()
            metrics.server_close()


@pytest.mark.timeout(120)
async def test_every_dashboard_query_returns_data_from_demo_serve(tmp_path: Path, servers: Servers) -> None:
    """Prometheus scraping ``demo --serve``: every panel query, variables filled in, returns data."""
    demo = await asyncio.to_thread(
        servers.start,
        "demo",
        lambda port: [
            sys.executable,
            "-m",
            "penguiflow_otel.cli._main",
            "demo",
            "--serve",
            "--messages",
            "5",
            "--port",
            str(port),
            "--traces-file",
            str(tmp_path / "spans.jsonl"),
        ],
        "/metrics",
    )
    rules = generate.render(generate.load_config())
    config = _write_prometheus_config(tmp_path, rules, demo.port, "")
    prometheus = await asyncio.to_thread(servers.start, "prometheus", prometheus_argv(config, tmp_path))

    def scraped() -> list[dict[str, Any]]:
        # Six scrapes, and the batch span processor's first export (its counters start then).
        query = (
            "count_over_time(penguiflow_queue_size[1m]) >= 6"
            " and on () count(otel_sdk_processor_span_processed_total)"
        )
        result: list[dict[str, Any]] = prometheus_query(prometheus, query)["data"]["result"]
        return result

    await _until(scraped, 60, "six scrapes and a span export", prometheus, demo)
    assert prometheus_query(prometheus, "gen_ai_invoke_agent_duration_seconds_count")["data"]["result"]
    empty: list[str] = []
    for file_name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for query in panel["targets"]:
                if "expr" not in query:
                    continue
                answer = await asyncio.to_thread(
                    prometheus_query, prometheus, fill_variables(query["expr"], "5s")
                )
                assert answer["status"] == "success", (file_name, panel["title"], answer.get("error"))
                if not answer["data"]["result"]:
                    empty.append(f"{file_name}: {panel['title']} [{query['refId']}]")
    # The demo writes spans with the jsonl exporter, which has no otel_sdk_exporter_* self-metrics (the OTLP
    # exporters have them). Its agent stage (planner.md section 8.3) fills the planner panels.
    allowed = ["penguiflow-telemetry-health.json: Spans processed and exported per second [B]"]
    assert empty == allowed
