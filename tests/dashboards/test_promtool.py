"""The shipped rules and configs pass the real promtool and amtool (skipped where they are absent)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from bundle import DASHBOARDS, ROOT, generate

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)
pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]


def _run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=45, check=False)


@needs_promtool
def test_promtool_check_rules_accepts_the_shipped_rules() -> None:
    """``promtool check rules`` passes on the recording and alerting rules."""
    assert PROMTOOL is not None
    done = _run(
        PROMTOOL, "check", "rules", "dashboards/prometheus_rules.yaml", "dashboards/prometheus_alerts.yaml"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout
    assert "SUCCESS: 11 rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_fire_and_stay_quiet_for_every_alert() -> None:
    """``promtool test rules`` passes, with a firing and a quiet case for every alert."""
    assert PROMTOOL is not None
    done = _run(PROMTOOL, "test", "rules", "dashboards/tests/rules_test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    cases = yaml.safe_load((DASHBOARDS / "tests" / "rules_test.yaml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alert_names = {rule.name for rule in generate.alerts(generate.parse_config(generate.load_config()))}
    assert firing == quiet == alert_names


@needs_promtool
def test_promtool_check_rules_accepts_a_per_flow_slo(tmp_path: Path) -> None:
    """Rules rendered with a per-flow SLO bucket also pass ``promtool check rules``."""
    assert PROMTOOL is not None
    config = generate.load_config()
    config["slo"]["flows"] = {"checkout": 1.0, "search.v2": 0.5}
    rendered = generate.render(config)
    for name in ("prometheus_rules.yaml", "prometheus_alerts.yaml"):
        (tmp_path / name).write_text(rendered[name])
    done = _run(PROMTOOL, "check", "rules", "prometheus_rules.yaml", "prometheus_alerts.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_check_config_accepts_the_compose_prometheus_config() -> None:
    """``promtool check config`` passes on deploy/prometheus.yml, rule files included."""
    assert PROMTOOL is not None
    done = _run(PROMTOOL, "check", "config", "deploy/prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 2 rule files found" in done.stdout


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
def test_amtool_check_config_accepts_the_compose_alertmanager_config() -> None:
    """``amtool check-config`` passes on deploy/alertmanager.yml."""
    assert AMTOOL is not None
    done = _run(AMTOOL, "check-config", "deploy/alertmanager.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
