"""``penguiflow-otel new`` renders a project whose own tests and command pass offline."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cli_errors import one_line_error

from penguiflow_otel import __version__
from penguiflow_otel.cli import main

REPO = Path(__file__).resolve().parents[2]

# Loaded first by every Python process started with this folder on PYTHONPATH: any connection to
# a host off this machine fails at once, before a DNS query leaves it.
NO_NETWORK = """
import socket

_LOCAL = ("127.0.0.1", "::1", "localhost", "")
_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect


def _check(host):
    if isinstance(host, str) and host not in _LOCAL and not host.startswith("127."):
        raise OSError(f"network access blocked in this test: {host}")


def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)


def connect(self, address):
    if isinstance(address, tuple):
        _check(address[0])
    return _connect(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
"""


def _offline_env(tmp_path: Path, *paths: Path) -> dict[str, str]:
    blocker = tmp_path / "no_network"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(NO_NETWORK)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PENGUIFLOW_OTEL_", "OPENAI_", "PYTEST_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in (blocker, *paths))
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the project's own environment has plain pytest only
    return env


def _new(tmp_path: Path, *args: str) -> int:
    return main(["new", *args, "--output-dir", str(tmp_path)])


def test_the_offline_guard_refuses_connections_off_this_machine(tmp_path: Path) -> None:
    """The guard the generated projects run under does block the network, so their passing means something."""
    probe = "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=_offline_env(tmp_path), capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "network access blocked in this test: pypi.org" in done.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("template", "name", "package", "expected_tests"),
    [("react", "support-bot", "support_bot", 10), ("minimal", "Tiny_Agent", "tiny_agent", 4)],
)
def test_a_new_project_passes_its_own_tests_and_answers_offline(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    template: str,
    name: str,
    package: str,
    expected_tests: int,
) -> None:
    """Each template renders a project whose tests pass and whose `python -m` exits 0, with no network."""
    assert _new(tmp_path, name, "--template", template) == 0
    assert f"created {tmp_path / name}/ from the {template!r} template" in capsys.readouterr().out
    project = tmp_path / name
    env = _offline_env(tmp_path, project / "src")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert f"{expected_tests} passed" in tests.stdout
    asked = subprocess.run(
        [sys.executable, "-m", package, "--trace", "hi"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert asked.returncode == 0, asked.stderr
    assert "using the offline scripted LLM" in asked.stdout
    assert "finish reason: answer_complete" in asked.stdout
    assert f"    execute_tool {'lookup_order' if template == 'react' else 'count_words'}" in asked.stdout
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("template", ["react", "minimal"])
def test_the_layout_pyproject_and_env_example_follow_the_spec(tmp_path: Path, template: str) -> None:
    """The files, the dependency on this version, the dev entry, the script, and the .env settings."""
    assert _new(tmp_path, "my-agent", "--template", template, "-q") == 0
    project = tmp_path / "my-agent"
    files = sorted(str(path.relative_to(project)) for path in project.rglob("*") if path.is_file())
    common = [
        ".env.example",
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "src/my_agent/__init__.py",
        "src/my_agent/__main__.py",
        "src/my_agent/config.py",
        "src/my_agent/planner.py",
        "src/my_agent/telemetry.py",
        "src/my_agent/tools.py",
        "tests/conftest.py",
        "tests/test_planner.py",
        "tests/test_tools.py",
    ]
    react_only = ["src/my_agent/flow.py", "tests/test_flow.py"]
    assert files == sorted(common + (react_only if template == "react" else []))
    config = tomllib.loads((project / "pyproject.toml").read_text())
    assert config["project"]["name"] == "my-agent"
    assert config["project"]["dependencies"] == [f"penguiflow-otel[sdk]>={__version__}"]
    assert config["project"]["scripts"] == {"my-agent": "my_agent.__main__:main"}
    assert config["tool"]["pytest"]["ini_options"]["pythonpath"] == ["src"]
    entry = "my_agent.flow:build_flow" if template == "react" else "my_agent.planner:build_planner"
    assert config["tool"]["penguiflow-otel"]["entry"] == entry
    assert config["tool"]["uv"]["sources"]["penguiflow-otel"] == {"path": str(REPO)}
    settings = dict(
        line.split("=", 1)
        for line in (project / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings["OTEL_SERVICE_NAME"] == "my-agent"
    assert settings["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "false"
    assert {
        "PENGUIFLOW_OTEL_LLM_MODEL",
        "PENGUIFLOW_OTEL_LLM_BASE_URL",
        "PENGUIFLOW_OTEL_LLM_API_KEY",
    } <= set(settings)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in settings
    readme = (project / "README.md").read_text()
    assert "uv run --extra dev pytest\nuv run python -m my_agent" in readme
    assert "{{" not in "".join(path.read_text() for path in project.rglob("*") if path.is_file())


def test_dry_run_lists_the_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints every file it would write and leaves the disk alone."""
    assert _new(tmp_path, "agent", "--template", "minimal", "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"would create {tmp_path / 'agent'}/ from the 'minimal' template:"
    assert "  src/agent/planner.py" in out.splitlines()
    assert "  .env.example" in out.splitlines()
    assert list(tmp_path.iterdir()) == []


def test_force_renders_into_an_existing_directory_and_keeps_other_files(tmp_path: Path) -> None:
    """--force overwrites the template's files and leaves files it does not own alone."""
    project = tmp_path / "agent"
    (project / "src" / "agent").mkdir(parents=True)
    (project / "notes.txt").write_text("mine")
    (project / "src" / "agent" / "tools.py").write_text("old")
    assert _new(tmp_path, "agent", "--template", "minimal", "--force", "-q") == 0
    assert (project / "notes.txt").read_text() == "mine"
    assert "count_words" in (project / "src" / "agent" / "tools.py").read_text()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "1agent",
            "invalid project name '1agent': start with a letter, then use letters, digits, '-' or '_'",
        ),
        ("my agent", "invalid project name 'my agent'"),
        ("class", "gives the package name 'class', a Python keyword; rename it"),
        ("json", "gives the package name 'json', which would shadow the module of that name; rename it"),
        ("a" * 65, "is 65 characters long; use at most 64"),
    ],
)
def test_an_invalid_name_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    """A name that cannot be a project or package name is refused before anything is written."""
    assert _new(tmp_path, name) == 2
    line = one_line_error(capsys)
    assert line.startswith("penguiflow-otel new: error: ")
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_template_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message names the template and the ones that exist."""
    assert _new(tmp_path, "agent", "--template", "fancy") == 2
    assert one_line_error(capsys) == (
        "penguiflow-otel new: error: unknown template 'fancy'; choose one of: minimal, react"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_refused_with_the_overwrite_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even an existing directory is refused without --force; the message counts the clashing files."""
    project = tmp_path / "agent"
    (project / "src" / "agent").mkdir(parents=True)
    (project / "README.md").write_text("mine")
    (project / "src" / "agent" / "tools.py").write_text("mine")
    assert _new(tmp_path, "agent", "--template", "minimal") == 2
    assert one_line_error(capsys) == (
        f"penguiflow-otel new: error: {project} already exists (2 of its files would be overwritten); "
        "pass --force to render into it, or choose another NAME or --output-dir"
    )
    assert (project / "README.md").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _new(tmp_path, "empty") == 2
    assert "(0 of its files would be overwritten)" in one_line_error(capsys)


def test_a_missing_name_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse mistakes are one line too, pointing at --help instead of dumping the usage."""
    with pytest.raises(SystemExit) as exited:
        main(["new"])
    assert exited.value.code == 2
    assert one_line_error(capsys) == (
        "penguiflow-otel new: error: the following arguments are required: NAME "
        "(see penguiflow-otel new --help)"
    )
