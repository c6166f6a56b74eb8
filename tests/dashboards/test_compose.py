"""docker-compose.yml, its configs and the Dockerfile, checked statically (no container engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from bundle import DASHBOARDS, ROOT, dashboards, generate

SERVICES = {"demo", "otel-collector", "jaeger", "tempo", "prometheus", "alertmanager", "grafana"}


def _has_compose() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0


def _yaml(relative: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / relative).read_text())
    assert isinstance(loaded, dict), relative
    return loaded


def _compose() -> dict[str, Any]:
    return _yaml("docker-compose.yml")


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes skipped)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def _flag(service: dict[str, Any], name: str) -> str:
    for argument in service["command"]:
        if argument.startswith(f"{name}="):
            return str(argument.split("=", 1)[1])
    raise AssertionError(f"no {name} in {service['command']}")


def _host_port(url_or_address: str) -> tuple[str, int]:
    parsed = urlparse(url_or_address if "//" in url_or_address else f"//{url_or_address}")
    assert parsed.hostname is not None, url_or_address
    assert parsed.port is not None, url_or_address
    return parsed.hostname, parsed.port


def test_compose_file_has_the_stack_and_pins_every_image() -> None:
    """Seven services; every image has a version tag (never latest), the demo builds the Dockerfile."""
    services = _services()
    assert set(services) >= SERVICES
    for name, service in services.items():
        image = service.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.search(r"\d+\.\d+", tag), (name, image)
        assert tag != "latest", (name, image)
    assert services["demo"]["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_published_ports_bind_loopback_only() -> None:
    """Every published port is 127.0.0.1:HOST:CONTAINER."""
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), (name, port)


def test_every_mounted_file_exists() -> None:
    """Each bind-mounted host path exists in the repository."""
    for name, service in _services().items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), (name, target, source)


def test_demo_service_runs_demo_serve_exporting_to_the_collector() -> None:
    """The demo serves /metrics on 0.0.0.0:9464 and sends OTLP/HTTP to the collector's HTTP receiver."""
    services = _services()
    demo = services["demo"]
    assert demo["command"] == ["demo", "--serve", "--otlp", "http://otel-collector:4318", "--port", "9464"]
    assert demo["environment"]["OTEL_EXPORTER_PROMETHEUS_HOST"] == "0.0.0.0"
    collector = _yaml("deploy/otel-collector.yaml")
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert _host_port(http)[1] == _host_port("http://otel-collector:4318")[1]
    assert "otel-collector" in services


def test_collector_has_a_traces_pipeline_only_to_jaeger_and_tempo() -> None:
    """One traces pipeline whose receivers, processors and exporters are defined, exporting to both stores."""
    collector = _yaml("deploy/otel-collector.yaml")
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    traces = pipelines["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces[kind]) <= set(collector[kind]), kind
    endpoints = {_host_port(collector["exporters"][name]["endpoint"]) for name in traces["exporters"]}
    tempo_grpc = _yaml("deploy/tempo.yaml")["distributor"]["receivers"]["otlp"]["protocols"]["grpc"][
        "endpoint"
    ]
    assert endpoints == {("jaeger", 4317), ("tempo", _host_port(tempo_grpc)[1])}
    assert _services()["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert set(collector["service"].get("extensions", [])) <= set(collector.get("extensions", {}))


def test_prometheus_scrapes_the_demo_and_loads_the_mounted_rules() -> None:
    """The scrape target is the demo's /metrics port, alerts go to Alertmanager, rule paths hit the mounts."""
    services = _services()
    prometheus = services["prometheus"]
    config_path = PurePosixPath(_flag(prometheus, "--config.file"))
    mounts = _bind_mounts(prometheus)
    assert mounts[str(config_path)] == (ROOT / "deploy" / "prometheus.yml").resolve()
    config = _yaml("deploy/prometheus.yml")
    for rule_file in config["rule_files"]:
        # Prometheus resolves rule files against the config file's directory, in the container as here.
        in_container = str(
            PurePosixPath(re.sub(r"[^/]+/\.\./", "", (config_path.parent / rule_file).as_posix()))
        )
        assert mounts.get(in_container) == (ROOT / "deploy" / rule_file).resolve(), (rule_file, in_container)
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
        if job["job_name"] == "penguiflow-demo"
    ]
    demo_port = int(services["demo"]["command"][services["demo"]["command"].index("--port") + 1])
    assert targets == [f"demo:{demo_port}"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]
    assert "alertmanager" in services
    assert _flag(prometheus, "--web.listen-address").endswith(":9090")
    assert (
        _bind_mounts(services["alertmanager"])[_flag(services["alertmanager"], "--config.file")]
        == (ROOT / "deploy" / "alertmanager.yml").resolve()
    )
    assert _flag(services["alertmanager"], "--cluster.listen-address") == ""


def test_grafana_provisions_the_datasource_uids_the_dashboards_default_to() -> None:
    """Provisioned uids equal config.yaml's and the dashboards' variable defaults; URLs reach the services."""
    grafana = _services()["grafana"]
    mounts = _bind_mounts(grafana)
    datasources_file = "/etc/grafana/provisioning/datasources/datasources.yaml"
    assert (
        mounts[datasources_file]
        == (ROOT / "deploy/grafana/provisioning/datasources/datasources.yaml").resolve()
    )
    provisioned = {
        source["type"]: source
        for source in _yaml("deploy/grafana/provisioning/datasources/datasources.yaml")["datasources"]
    }
    assert set(provisioned) == {"prometheus", "tempo", "jaeger"}
    uids = generate.load_config()["datasources"]
    for kind, source in provisioned.items():
        assert source["uid"] == uids[kind]
    for file_name, dashboard in dashboards().items():
        defaults = {
            v["query"]: v["current"]["value"]
            for v in dashboard["templating"]["list"]
            if v["type"] == "datasource"
        }
        assert defaults == {kind: source["uid"] for kind, source in provisioned.items()}, file_name
    tempo_http = _yaml("deploy/tempo.yaml")["server"]["http_listen_port"]
    prometheus_port = _host_port(_flag(_services()["prometheus"], "--web.listen-address"))[1]
    assert _host_port(provisioned["prometheus"]["url"]) == ("prometheus", prometheus_port)
    assert _host_port(provisioned["tempo"]["url"]) == ("tempo", tempo_http)
    assert _host_port(provisioned["jaeger"]["url"]) == ("jaeger", 16686)
    assert "127.0.0.1:16686:16686" in _services()["jaeger"]["ports"]
    assert f"127.0.0.1:{tempo_http}:{tempo_http}" in _services()["tempo"]["ports"]


def test_grafana_loads_every_shipped_dashboard() -> None:
    """The dashboard provider's path holds a mount of each of the five dashboards."""
    grafana = _services()["grafana"]
    mounts = _bind_mounts(grafana)
    assert (
        mounts["/etc/grafana/provisioning/dashboards/dashboards.yaml"]
        == (ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yaml").resolve()
    )
    provider = _yaml("deploy/grafana/provisioning/dashboards/dashboards.yaml")["providers"][0]
    path = PurePosixPath(provider["options"]["path"])
    mounted = {
        PurePosixPath(target).name: source
        for target, source in mounts.items()
        if PurePosixPath(target).parent == path
    }
    assert mounted == {name: (DASHBOARDS / name).resolve() for name in generate.DASHBOARD_FILES.values()}


def test_dockerfile_pins_its_base_runs_as_non_root_and_installs_the_lock() -> None:
    """FROM and COPY --from name versioned images, the last USER is not root, and uv sync uses --locked."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    images = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    images += [re.search(r"--from=(\S+)", line).group(1) for line in instructions if "--from=" in line]  # type: ignore[union-attr]
    assert images
    for image in images:
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.match(r"\d+\.\d+", tag), image
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "the image sets a USER"
    assert users[-1] not in ("root", "0"), users
    syncs = [line for line in instructions if "uv sync" in line]
    assert syncs
    assert all("--locked" in line for line in syncs)
    assert (ROOT / ".dockerignore").exists()


@pytest.mark.backend
@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not _has_compose(), reason="docker compose is not installed (no container engine on the test machines)"
)
def test_docker_compose_config_accepts_the_file() -> None:
    """``docker compose config`` validates docker-compose.yml where docker exists."""
    done = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.backend
@pytest.mark.timeout(60)
@pytest.mark.skipif(
    shutil.which("otelcol") is None and shutil.which("otelcol-contrib") is None,
    reason="the OpenTelemetry Collector is not installable on the test machines",
)
def test_otelcol_validate_accepts_the_collector_config() -> None:
    """``otelcol validate`` accepts deploy/otel-collector.yaml where the collector exists."""
    binary = shutil.which("otelcol") or shutil.which("otelcol-contrib")
    assert binary is not None
    done = subprocess.run(
        [binary, "validate", "--config=deploy/otel-collector.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
