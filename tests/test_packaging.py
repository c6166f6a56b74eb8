"""Dependency declarations (telemetry.md section 2, planner.md section 1): lower bounds in pyproject.toml,
exact versions in uv.lock, the ``dev`` group and the empty ``sdk`` / ``otlp`` extras.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]

# telemetry.md section 2: each runtime dependency and its declared range.
_DECLARED = {
    "pydantic": ">=2.6",
    "opentelemetry-api": ">=1.45",
    "opentelemetry-sdk": ">=1.45",
    "opentelemetry-exporter-otlp": ">=1.45",
    "opentelemetry-exporter-prometheus": ">=0.66b2",
    "prometheus-client": ">=0.26,<1",
    "httpx": ">=0.27,<1",
}
# The versions the telemetry contract was checked against.
_LOCKED = {
    "opentelemetry-api": "1.45.2",
    "opentelemetry-sdk": "1.45.2",
    "opentelemetry-exporter-otlp": "1.45.2",
    "opentelemetry-exporter-otlp-proto-http": "1.45.2",
    "opentelemetry-exporter-otlp-proto-grpc": "1.45.2",
    "opentelemetry-exporter-prometheus": "0.66b2",
    "prometheus-client": "0.26.0",
}


def load(name: str) -> dict[str, Any]:
    """A TOML file at the project root."""
    with (_ROOT / name).open("rb") as handle:
        return tomllib.load(handle)


def test_runtime_dependencies_declare_lower_bounds_only() -> None:
    """pyproject.toml pins nothing exactly: OTel packages have lower bounds, others the documented ranges."""
    dependencies = load("pyproject.toml")["project"]["dependencies"]
    declared = {}
    for requirement in dependencies:
        name = requirement.split(">", 1)[0].split("=", 1)[0].split("<", 1)[0].strip()
        declared[name] = requirement[len(name) :].strip()

    assert declared == _DECLARED
    assert not any("==" in spec or "~=" in spec for spec in declared.values())


def test_the_lock_pins_the_versions_the_contract_was_checked_against() -> None:
    """uv.lock resolves the OTel and Prometheus packages to the exact checked versions."""
    locked = {package["name"]: package["version"] for package in load("uv.lock")["package"]}

    assert {name: locked.get(name) for name in _LOCKED} == _LOCKED


def test_the_dev_group_installs_the_project_with_its_dev_and_openai_extras() -> None:
    """The dev dependency group self-references penguiflow-otel[dev,openai]."""
    dev = load("pyproject.toml")["dependency-groups"]["dev"]

    assert "penguiflow-otel[dev,openai]" in dev


def test_the_sdk_and_otlp_extras_exist_and_add_nothing() -> None:
    """The sdk and otlp extras stay as names for generated projects and pull in nothing extra."""
    extras = load("pyproject.toml")["project"]["optional-dependencies"]

    assert extras["sdk"] == []
    assert extras["otlp"] == []
