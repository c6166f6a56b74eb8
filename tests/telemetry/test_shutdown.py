"""``await telemetry.shutdown()`` stays within its timeout and the loop stays live when the collector is down.

Each run is a fresh interpreter (``configure_child.py``): ``configure(traces="otlp")`` towards an
unreachable collector with a 1 s exporter timeout, 5 000 spans, a 10 ms heartbeat task measuring
event-loop lag, then ``shutdown(timeout=2)``. The lag excludes CPython's stop-the-world garbage
collections (a full one takes about 80 ms with the SDK loaded on a 2-core machine, whichever thread
triggers it), which the report gives separately.
"""

from __future__ import annotations

import pytest
from loopback import clean_env, free_port
from otel_support import ChildRun, run_child, silent_collector

SPANS = 5000


def _run(endpoint: str) -> ChildRun:
    params = {"endpoint": endpoint, "spans": SPANS, "shutdown_timeout": 2}
    return run_child("unreachable", params, clean_env(OTEL_EXPORTER_OTLP_TIMEOUT="1"), timeout=20)


def _assert_bounded(run: ChildRun) -> None:
    report = run.report
    assert report["failed_exports"] > 0  # otel_sdk_exporter_span_exported_total{error_type!=""}
    assert report["shutdown_seconds"] < 3.0
    # Lag beyond the interpreter's own garbage-collector pauses (reported alongside for the record).
    assert report["max_lag"] < 0.100, report
    # The daemon shutdown thread does not hold up interpreter exit.
    assert run.exited_at - report["finished_at"] < 2.0


@pytest.mark.timeout(30)
def test_shutdown_returns_within_its_timeout_when_the_collector_port_is_closed() -> None:
    """Refused connections: exports fail and are counted, shutdown returns in time, the loop never lags."""
    _assert_bounded(_run(f"http://127.0.0.1:{free_port()}"))


@pytest.mark.timeout(30)
def test_shutdown_returns_within_its_timeout_when_the_collector_never_answers() -> None:
    """A collector that accepts and never replies: the same bounds hold, and the process exits promptly."""
    with silent_collector() as port:
        run = _run(f"http://127.0.0.1:{port}")
    _assert_bounded(run)
    # The first batch holds the processor for 1 s: its queue fills and the spans past it are dropped,
    # counted by the SDK, without its per-span warning call on the loop (configure() quiets it).
    assert run.report["queue_full_drops"] > 0
    assert run.report["sdk_log_records"] == 0
    # At 1 s per unanswered batch the queued spans need well over 2 s: shutdown reports the timeout.
    assert run.report["shutdown_result"] is False
