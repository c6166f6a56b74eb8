"""``penguiflow-otel dev`` start-up: the project's ``.env`` file and the warning for a non-loopback host.

Servers run as real processes on a port the OS picks (``--port 0``); each test stops what it
started with SIGINT and checks the exit code. Bind failures are provoked in-process on addresses
no interface here holds, so nothing is served by those tests.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dev_process import start_dev

from penguiflow_otel.cli import main

# A flow that answers each query with the value of the environment variable it names, read in the
# server process when the request arrives.
ENV_FLOW = """
import os

from penguiflow_otel import Context, FinalAnswer, Message, Node, PenguiFlow


async def lookup(message: Message, ctx: Context) -> Message:
    value = os.environ.get(message.payload, "<unset>")
    return message.model_copy(update={"payload": FinalAnswer(text=value)})


def build_flow() -> PenguiFlow:
    return PenguiFlow(Node(lookup, name="lookup").to(), name="envecho")
"""

ENV_PYPROJECT = """
[project]
name = "envecho"
version = "0.0.1"

[tool.penguiflow-otel]
entry = "envecho.flow:build_flow"
"""

# The project's .env: a comment, a blank line, a quoted value, and one variable the test also sets
# in dev's own environment, which must win.
DOT_ENV = """\
# settings for the dev server
PFO_DEVENV_FROM_FILE=from-the-file

PFO_DEVENV_QUOTED="a quoted value"
PFO_DEVENV_PRESET=from-the-file
"""

WARNING = "warning: {host} is not a loopback address; the dev server has no authentication"


@dataclass
class Dev:
    """A running ``dev`` process: its first stdout line told where it serves."""

    process: subprocess.Popen[str]
    serving_line: str

    @property
    def port(self) -> int:
        return int(self.serving_line.rsplit(":", 1)[1])

    def stop(self) -> tuple[int, str, str]:
        """SIGINT, then wait: ``(exit code, rest of stdout, stderr)``."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=20)
        return self.process.returncode, out, err


@contextmanager
def dev(project: Path, *args: str, **env: str) -> Iterator[Dev]:
    """Start ``dev --port 0`` and wait for its ``serving ...`` line; kill it if the test did not stop it."""
    process, first = start_dev(project, *args, **env)
    try:
        yield Dev(process, first)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def envecho(tmp_path: Path) -> Path:
    project = tmp_path / "envecho"
    (project / "src" / "envecho").mkdir(parents=True)
    (project / "pyproject.toml").write_text(ENV_PYPROJECT)
    (project / "src" / "envecho" / "__init__.py").write_text("")
    (project / "src" / "envecho" / "flow.py").write_text(ENV_FLOW)
    return project


def _answer(client: httpx.Client, name: str) -> str:
    response = client.post("/chat", json={"query": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "finished", body
    answer: str = body["answer"]
    return answer


# .env ----------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_dev_loads_the_project_env_file_without_overriding_variables_already_set(envecho: Path) -> None:
    """``DIR/.env`` fills in unset variables; one already set in dev's environment keeps its value."""
    (envecho / ".env").write_text(DOT_ENV)
    with dev(envecho, PFO_DEVENV_PRESET="from-the-shell") as server:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            seen = {
                name: _answer(client, name)
                for name in ("PFO_DEVENV_FROM_FILE", "PFO_DEVENV_QUOTED", "PFO_DEVENV_PRESET")
            }
            assert _answer(client, "PFO_DEVENV_NOWHERE") == "<unset>", "the flow must echo the env"
        code, _, err = server.stop()
    assert seen == {
        "PFO_DEVENV_FROM_FILE": "from-the-file",
        "PFO_DEVENV_QUOTED": "a quoted value",
        "PFO_DEVENV_PRESET": "from-the-shell",
    }, "the .env file must fill in unset variables and leave the pre-set one alone"
    assert (code, err) == (0, "")


# Non-loopback host ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_dev_on_a_non_loopback_host_warns_that_there_is_no_authentication(envecho: Path) -> None:
    """``--host 0.0.0.0`` serves (reachable on 127.0.0.1) after one warning line on stderr."""
    with dev(envecho, "--host", "0.0.0.0") as server:
        assert server.serving_line.endswith(f" on http://0.0.0.0:{server.port}"), server.serving_line
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            assert client.get("/health").json() == {"status": "ok", "agent": "envecho", "kind": "flow"}
        code, out, err = server.stop()
    assert code == 0, err
    assert out.splitlines()[-1] == "stopped"
    assert err.splitlines() == [WARNING.format(host="0.0.0.0")], "exactly one warning line, naming the host"


def _bindable(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["192.0.2.1", "2001:db8::1"])
def test_a_non_loopback_host_warns_before_the_socket_is_bound(
    host: str, envecho: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning comes first, even when the address then cannot be bound (documentation addresses)."""
    if _bindable(host):
        pytest.skip(f"{host} is assigned to an interface here; this test needs an unbindable address")
    assert main(["dev", "--project-root", str(envecho), "--host", host, "--port", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2, captured.err
    assert lines[0] == WARNING.format(host=host)
    assert lines[1].startswith(f"penguiflow-otel dev: error: cannot listen on {host}:0 ("), lines[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_a_loopback_host_does_not_warn(host: str, envecho: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Loopback hosts print only the busy-port error: no warning (the port is taken so nothing serves)."""
    if not _bindable(host):
        pytest.skip(f"{host} cannot be bound here")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as taken:
        taken.bind((host, 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dev", "--project-root", str(envecho), "--host", host, "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"penguiflow-otel dev: error: {host}:{port} is in use; pass --port"]
