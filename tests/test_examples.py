"""Every example under ``examples/`` runs to completion, offline, and prints what its docstring promises."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback import HTTPThread, clean_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(**env),
        cwd=script.parent,
    )


def _fields(stdout: str) -> dict[str, str]:
    return {
        key.strip(): value.strip()
        for key, sep, value in (line.partition(":") for line in stdout.splitlines())
        if sep
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*/*.py")), ids=lambda path: path.parent.name)
def test_every_example_exits_0(script: Path) -> None:
    """Each example script, run plainly, finishes by itself with exit code 0."""
    done = _run(script)
    assert done.returncode == 0, done.stderr


def test_the_traceparent_service_runs_its_flow_inside_the_callers_trace() -> None:
    """The service answers its own request; the flow's trace id and spans are the caller's."""
    done = _run(EXAMPLES / "traceparent_service" / "service.py")
    assert done.returncode == 0, done.stderr
    fields = _fields(done.stdout)
    assert fields["listening on http"].startswith("//127.0.0.1:")
    assert fields["answer"] == "HELLO FROM THE CALLER"
    assert len(fields["caller trace id"]) == 32
    assert fields["flow trace id"] == fields["caller trace id"]
    assert fields["spans in the caller's trace"] == "flow shout_service, node shout"


def test_the_planner_agent_runs_offline_with_the_scripted_llm() -> None:
    """Without settings it uses ScriptedLLM: two tool calls, an answer, and the span tree."""
    done = _run(EXAMPLES / "planner_agent" / "agent.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("model: scripted (offline")
    assert lines[1] == "answer: Lima: 18.0 °C (64.4 °F), overcast."
    assert lines[2] == "finish reason: answer_complete"
    assert lines[4:] == [
        "  invoke_agent weather_agent",
        "    plan weather_agent",
        "      chat scripted-model",
        "    execute_tool get_weather",
        "    plan weather_agent",
        "      chat scripted-model",
        "    execute_tool to_fahrenheit",
        "    plan weather_agent",
        "      chat scripted-model",
    ]


@dataclass
class _Endpoint:
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers from a script and records what it got."""

    replies: list[dict[str, Any]]
    received: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


def _handler(endpoint: _Endpoint) -> type[BaseHTTPRequestHandler]:
    class ChatCompletions(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            endpoint.received.append(
                {"path": self.path, "traceparent": self.headers.get("traceparent"), **body}
            )
            message = {"role": "assistant", "content": json.dumps(endpoint.replies.pop(0))}
            reply = json.dumps(
                {
                    "id": f"chatcmpl-{len(endpoint.received)}",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return ChatCompletions


@contextmanager
def _endpoint(*replies: dict[str, Any]) -> Iterator[_Endpoint]:
    endpoint = _Endpoint(list(replies))
    server = HTTPThread(_handler(endpoint))
    endpoint.base_url = f"{server.url}/v1"
    try:
        yield endpoint
    finally:
        server.close()


def test_the_planner_agent_uses_a_real_endpoint_when_configured() -> None:
    """With PENGUIFLOW_OTEL_LLM_MODEL and a base URL it calls that endpoint, with a traceparent each time."""
    with _endpoint(
        {"next_node": "get_weather", "args": {"city": "Oslo"}},
        {"next_node": "final_response", "args": {"answer": "Snowy in Oslo."}},
    ) as endpoint:
        done = _run(
            EXAMPLES / "planner_agent" / "agent.py",
            "Weather in Oslo?",
            PENGUIFLOW_OTEL_LLM_MODEL="served-model",
            PENGUIFLOW_OTEL_LLM_BASE_URL=endpoint.base_url,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "model: served-model (OpenAI-compatible endpoint)",
        "answer: Snowy in Oslo.",
        "finish reason: answer_complete",
    ]
    assert "      chat served-model" in lines
    received = endpoint.received
    assert [request["path"] for request in received] == ["/v1/chat/completions"] * 2
    assert {request["model"] for request in received} == {"served-model"}
    trace_id = lines[3].removeprefix("span tree of trace ").rstrip(":")
    assert all(request["traceparent"].split("-")[1] == trace_id for request in received)
