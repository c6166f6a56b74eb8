"""``traceparent_service/service.py --serve`` stays up, answers, and stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from loopback import clean_env, port_accepts

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "traceparent_service" / "service.py"


@contextmanager
def _serving() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the service with ``--serve``; yield it once it printed its URL; kill it if still running."""
    process = subprocess.Popen(
        [sys.executable, str(SERVICE), "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=SERVICE.parent,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().rstrip()  # blocks until the server listens or the script exits
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+/)", first)
        if match is None:
            process.kill()
            raise AssertionError(f"the service did not start: {first!r} {process.communicate()[1]}")
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _post(url: str, text: str, traceparent: str | None = None) -> dict[str, str]:
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(), method="POST")
    if traceparent is not None:
        request.add_header("traceparent", traceparent)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        reply: dict[str, str] = json.loads(response.read())
    return reply


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_traceparent_service_with_serve_answers_requests_until_a_stop_signal(signum: int) -> None:
    """It serves several requests, each in its caller's trace; a stop signal exits 0 and frees the port."""
    with _serving() as (process, url):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        caller_trace = secrets.token_hex(16)
        traced = _post(url, "hello", f"00-{caller_trace}-{secrets.token_hex(8)}-01")
        assert traced == {"answer": "HELLO", "trace_id": caller_trace}, "answer in the caller's trace"
        untraced = _post(url, "again")  # still up after the first request
        assert untraced["answer"] == "AGAIN"
        assert re.fullmatch(r"[0-9a-f]{32}", untraced["trace_id"]), untraced
        assert untraced["trace_id"] != caller_trace, "without a traceparent the flow starts its own trace"
        assert process.poll() is None, "--serve must keep the service up"

        process.send_signal(signum)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert err == "", "a stop signal is a clean stop: no traceback"
    assert out == "", "--serve prints nothing after its listening line"
    assert not port_accepts(port), "the server socket is closed after the stop"
