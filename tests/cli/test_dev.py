"""``penguiflow-otel dev`` serves a project live: SSE as it happens, the caller's trace, clean stops.

The servers run as real processes on a port the OS picks on 127.0.0.1. Spans are checked twice: as
the stream's ``span`` events while the request runs, and in the JSON-lines file the server's
exporter flushed when it stopped.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_errors import one_line_error
from dev_process import CONSOLE_SCRIPT, start_dev
from loopback import clean_env

from penguiflow_otel.cli import main

# A flow whose node streams a chunk, then waits for a file the test creates, then answers: the
# test can see the first chunk arrive while the final answer does not exist yet.
HELD_FLOW = """
import asyncio
import os
from pathlib import Path

from penguiflow_otel import Context, FinalAnswer, Message, Node, PenguiFlow


async def answer(message: Message, ctx: Context) -> Message:
    await ctx.emit_chunk(parent=message, text="first")
    release = Path(os.environ["HELD_RELEASE_DIR"]) / message.payload
    for _ in range(1000):
        if release.exists():
            break
        await asyncio.sleep(0.01)
    await ctx.emit_chunk(parent=message, text="second", done=True)
    return message.model_copy(update={"payload": FinalAnswer(text=f"answered {message.payload}")})


def build_flow() -> PenguiFlow:
    node = Node(answer, name="answer")
    return PenguiFlow(node.to(), name="held")
"""

HELD_PYPROJECT = """
[project]
name = "held"
version = "0.0.1"

[tool.penguiflow-otel]
entry = "held.flow:build_flow"
"""


@dataclass
class Server:
    """A running ``dev`` process and what it printed."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=15)
        self.lines.extend(out.splitlines())
        assert err == "", err
        return self.process.returncode


@contextmanager
def dev_server(project: Path, *args: str, **env: str) -> Iterator[Server]:
    """Start ``dev`` on a free loopback port; kill it if the test did not stop it."""
    process, first = start_dev(project, *args, **env)
    try:
        assert process.stdout is not None
        url = first.split(" on ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        lines = [first.rstrip(), process.stdout.readline().rstrip(), process.stdout.readline().rstrip()]
        yield Server(process, url, lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                out, err = process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            print("DEBUG OUT", out, "DEBUG ERR", err)


@pytest.fixture
def held_project(tmp_path: Path) -> Path:
    project = tmp_path / "held"
    (project / "src" / "held").mkdir(parents=True)
    (project / "pyproject.toml").write_text(HELD_PYPROJECT)
    (project / "src" / "held" / "__init__.py").write_text("")
    (project / "src" / "held" / "flow.py").write_text(HELD_FLOW)
    return project


def _events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """Server-sent events as they arrive: ``(event, data)``."""
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


def _spans_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(60)
def test_a_flow_streams_live_inside_the_callers_trace_and_stops_on_sigint(
    held_project: Path, tmp_path: Path
) -> None:
    """The first chunk arrives while the node is held; all spans share the caller's trace; SIGINT exits 0."""
    release = tmp_path / "release"
    release.mkdir()
    spans_file = tmp_path / "spans.jsonl"
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{caller_trace}-{caller_span}-01"
    with (
        dev_server(
            held_project,
            HELD_RELEASE_DIR=str(release),
            OTEL_TRACES_EXPORTER="jsonl",
            PENGUIFLOW_OTEL_TRACES_FILE=str(spans_file),
        ) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        assert client.get("/health").json() == {"status": "ok", "agent": "held", "kind": "flow"}
        seen: list[tuple[str, Any]] = []
        params = {"query": "live"}
        with client.stream(
            "GET", "/chat/stream", params=params, headers={"traceparent": traceparent}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for event, data in _events(response):
                seen.append((event, data))
                if event == "chunk" and data["text"] == "first":
                    assert [name for name, _ in seen if name == "done"] == []
                    (release / "live").touch()  # only now may the node produce the final answer
        names = [name for name, _ in seen]
        chunks = [data["text"] for name, data in seen if name == "chunk"]
        assert chunks == ["first", "second"]
        assert names[-1] == "done"
        done = seen[-1][1]
        assert (done["trace_id"], done["status"], done["answer"]) == (
            caller_trace,
            "finished",
            "answered live",
        )
        streamed_spans = [data for name, data in seen if name == "span"]
        assert {span["name"] for span in streamed_spans} >= {"flow held", "node answer"}
        assert {span["trace_id"] for span in streamed_spans} == {caller_trace}

        (release / "plain").touch()
        chat = client.post("/chat", json={"query": "plain"}, headers={"traceparent": traceparent})
        assert chat.status_code == 200
        assert chat.json()["trace_id"] == caller_trace
        assert chat.json()["answer"] == "answered plain"

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "penguiflow_node_duration_seconds_count{" in metrics.text
        assert 'penguiflow_node_name="answer"' in metrics.text

        tree = client.get(f"/trace/{caller_trace}").json()["spans"]
        assert [root["name"] for root in tree] == ["GET /chat/stream", "POST /chat"]
        assert tree[0]["parent_id"] == caller_span
        assert tree[0]["children"][0]["name"] == "flow held"

        assert server.stop(signal.SIGINT) == 0
    assert server.lines[-1] == "stopped"
    assert any(
        line.startswith(f"GET /chat/stream 200 trace={caller_trace} ") and line.endswith(" finished")
        for line in server.lines
    ), server.lines
    assert any(line.startswith(f"POST /chat 200 trace={caller_trace} ") for line in server.lines)
    exported = _spans_in(spans_file)
    assert {span["name"] for span in exported} >= {
        "GET /chat/stream",
        "POST /chat",
        "flow held",
        "node answer",
    }
    assert {span["context"]["trace_id"] for span in exported} == {f"0x{caller_trace}"}
    servers = [span for span in exported if span["kind"] == "SpanKind.SERVER"]
    assert {span["parent_id"] for span in servers} == {f"0x{caller_span}"}


@pytest.mark.timeout(60)
def test_a_client_that_leaves_cancels_its_run_and_sigterm_stops_a_held_run(
    held_project: Path, tmp_path: Path
) -> None:
    """Closing the stream cancels that run; SIGTERM with a run held in flight still exits 0 promptly."""
    release = tmp_path / "release"
    release.mkdir()
    with (
        dev_server(held_project, HELD_RELEASE_DIR=str(release)) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        with client.stream("GET", "/chat/stream", params={"query": "left"}) as response:
            for event, data in _events(response):
                if event == "chunk":
                    assert data["text"] == "first"
                    break  # leave while the node is still held
        assert server.process.stdout is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            server.lines.append(server.process.stdout.readline().rstrip())
            if server.lines[-1].startswith("GET /chat/stream"):
                break
        assert server.lines[-1].endswith(" cancelled"), server.lines
        with client.stream("GET", "/chat/stream", params={"query": "held"}) as response:
            events = _events(response)
            assert next(events)[0] in ("chunk", "span")
            started = time.monotonic()
            assert server.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 10
    assert "stopping: cancelling the runs in flight" in server.lines
    assert any(
        line.startswith("GET /chat/stream 200") and line.endswith(" cancelled") for line in server.lines[-4:]
    )


@pytest.mark.timeout(60)
def test_a_planner_project_chats_streams_its_steps_and_resumes(tmp_path: Path) -> None:
    """A `new --template minimal` project: /chat, step and tool events over SSE, resume errors, 413, 422."""
    assert main(["new", "tiny", "--template", "minimal", "--output-dir", str(tmp_path), "-q"]) == 0
    with (
        dev_server(tmp_path / "tiny", "--capture-content") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        assert client.get("/health").json() == {"status": "ok", "agent": "tiny", "kind": "planner"}
        chat = client.post("/chat", json={"query": "one two three", "session_id": "s-1"})
        assert chat.status_code == 200
        body = chat.json()
        assert (body["status"], body["reason"], body["session_id"]) == ("finished", "answer_complete", "s-1")
        assert body["answer"] == "Your question has 3 words."
        assert body["metadata"]["trace_id"] == body["trace_id"]
        with client.stream("GET", "/chat/stream", params={"query": "a b"}) as response:
            events = list(_events(response))
        names = [name for name, _ in events]
        assert names[-1] == "done"
        (agent,) = [data for name, data in events if name == "span" and data["name"] == "invoke_agent tiny"]
        assert "a b" in agent["attributes"]["gen_ai.input.messages"]  # --capture-content is on
        assert {"step", "tool_call_start", "tool_call_end", "span"} <= set(names)
        assert names.index("tool_call_start") < names.index("tool_call_end")
        unknown = client.post("/chat/resume", json={"resume_token": "0" * 32})
        assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown")
        assert client.post("/chat", content=b"{not json").status_code == 422
        missing = client.post("/chat", json={"session_id": "s-1"})
        assert (missing.status_code, missing.json()) == (422, {"error": "query: Field required"})
        assert client.post("/chat", content=b"x" * (1024 * 1024 + 1)).status_code == 413
        assert client.get("/chat/stream").status_code == 422
        assert client.get(f"/trace/{'f' * 32}").status_code == 404
        assert server.stop(signal.SIGINT) == 0


# Bad input -----------------------------------------------------------------------------------------


def test_a_busy_port_is_one_line_and_exit_1(held_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The socket is bound before serving, so a port in use fails at once, naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dev", "--project-root", str(held_project), "--port", str(port)]) == 1
    assert one_line_error(capsys) == f"penguiflow-otel dev: error: 127.0.0.1:{port} is in use; pass --port"


def test_a_project_root_without_a_flow_or_planner_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty folder has no entry; the message says what to add."""
    assert main(["dev", "--project-root", str(tmp_path)]) == 2
    line = one_line_error(capsys)
    assert line.startswith(
        f"penguiflow-otel dev: error: {tmp_path} has no flow or planner: add <package>/flow.py"
    )
    assert main(["dev", "--project-root", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory; pass --project-root DIR" in one_line_error(capsys)


def test_a_malformed_entry_setting_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The entry must read package.module:function."""
    (tmp_path / "pyproject.toml").write_text('[tool.penguiflow-otel]\nentry = "held.flow"\n')
    assert main(["dev", "--project-root", str(tmp_path)]) == 2
    assert one_line_error(capsys).endswith('write it as "package.module:function"')


def test_a_missing_dev_extra_names_the_install_command(
    held_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without starlette and uvicorn, dev exits 2 naming the extra."""
    monkeypatch.setitem(sys.modules, "starlette", None)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["dev", "--project-root", str(held_project)]) == 2
    assert one_line_error(capsys) == (
        "penguiflow-otel dev: error: the dev server needs starlette and uvicorn: "
        "pip install 'penguiflow-otel[dev]'"
    )


@pytest.mark.timeout(30)
def test_a_project_that_needs_an_uninstalled_module_says_how_to_install_it(held_project: Path) -> None:
    """An import error names the missing module and the two ways to fix it."""
    flow = held_project / "src" / "held" / "flow.py"
    flow.write_text("import not_installed_anywhere_xyz\n" + flow.read_text())
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "dev", "--project-root", str(held_project), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        env=clean_env(),
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "penguiflow-otel dev: error: held.flow needs the module 'not_installed_anywhere_xyz', which is "
        "not installed here: install the project into this environment "
        f"(uv pip install -e {held_project}) or run `uv run penguiflow-otel dev` from inside it"
    )
