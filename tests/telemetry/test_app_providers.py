"""Providers outside ``capture_telemetry()``: what ``configure()`` builds, unsampled traces under an
application's sampler, and ``capture_telemetry()`` beating installed globals (telemetry.md 3.1-3.4, 4.1,
11, 13).

Every case installs OTel globals, so each runs ``globals_child.py`` in a fresh interpreter.
"""

from __future__ import annotations

from pathlib import Path

from globals_child import run_in_child
from loopback import clean_env, free_port

_INBOUND_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
_UNSAMPLED_PARENT = f"00-{_INBOUND_TRACE}-00f067aa0ba902b7-00"


def traceparent_fields(carrier: dict[str, str]) -> tuple[str, str]:
    """(trace id, flags) of an injected traceparent."""
    _, trace_id, _, flags = carrier["traceparent"].split("-")
    return trace_id, flags


def test_configure_builds_a_batch_processor_and_the_seeded_generator_and_serves_the_global_registry(
    tmp_path: Path,
) -> None:
    """configure(): BatchSpanProcessor only, SeededIdGenerator(RandomIdGenerator); metrics reach REGISTRY."""
    params = {
        "configure": {
            "traces": "jsonl",
            "traces_file": str(tmp_path / "spans.jsonl"),
            "metrics": ["prometheus"],
            "prometheus_port": 0,
            "service_name": "inspect",
        }
    }
    report = run_in_child("configure_inspect", params, clean_env())

    assert report["processors"] == ["BatchSpanProcessor"]
    assert report["generator"] == "SeededIdGenerator"
    assert report["inner_generator"] == "RandomIdGenerator"
    assert report["global_registry_has_node_duration"] is True
    assert (tmp_path / "spans.jsonl").read_text().count("\n") >= 2


def test_standard_bsp_variables_reach_the_processor_configure_builds(tmp_path: Path) -> None:
    """OTEL_BSP_MAX_QUEUE_SIZE keeps its standard meaning: configure() passes no queue size of its own."""
    params = {
        "configure": {
            "traces": "jsonl",
            "traces_file": str(tmp_path / "spans.jsonl"),
            "metrics": ["none"],
            "service_name": "inspect",
        }
    }
    report = run_in_child(
        "configure_inspect",
        params,
        clean_env(OTEL_BSP_MAX_QUEUE_SIZE="7", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="5"),
    )

    assert report["max_queue_sizes"] == [7]


def test_an_inbound_unsampled_traceparent_records_no_span_and_forwards_flag_zero() -> None:
    """Under the default sampler a '-00' traceparent records nothing; inject keeps the trace, flag 00."""
    report = run_in_child("sampling", {"traceparent": _UNSAMPLED_PARENT}, clean_env())

    assert report["trace_id"] == _INBOUND_TRACE
    assert report["spans"] == []
    assert [traceparent_fields(carrier) for carrier in report["carriers"]] == [(_INBOUND_TRACE, "00")]


def test_an_unsampled_root_starts_no_attempt_span_and_inject_still_forwards_the_trace() -> None:
    """Under ratio 0 no span records; a node's inject writes the flow's trace id with the sampled flag 0."""
    report = run_in_child("sampling", {"sampler": "ratio0"}, clean_env())

    assert report["spans"] == []
    # Sampled bit 0; the W3C random flag (0x02) is set because the runtime minted the id (section 4.2).
    assert [traceparent_fields(carrier) for carrier in report["carriers"]] == [(report["trace_id"], "02")]


def test_capture_telemetry_beats_installed_global_providers() -> None:
    """Inside capture_telemetry() spans and metrics go to the capture only; outside, to the globals."""
    report = run_in_child("capture_beats_globals", {}, clean_env())

    assert sorted(report["captured"]) == ["flow inside", "node inside"]
    assert report["captured_node_metrics"] == ["inside"]
    assert report["global_during_capture"] == []
    assert report["global_metrics_during_capture"] == []
    assert sorted(report["global_after"]) == ["flow outside", "node outside"]
    assert report["globals_kept"] is True


def test_spans_dropped_by_a_full_batch_queue_are_counted_as_queue_full() -> None:
    """A 4-span BSP queue before an unreachable collector counts drops with error_type="queue_full"."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_TIMEOUT="1", OTEL_BSP_MAX_QUEUE_SIZE="4", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2"
    )
    params = {"endpoint": f"http://127.0.0.1:{free_port()}", "messages": 30}
    report = run_in_child("bsp_queue_full", params, env)

    dropped = [sample for sample in report["processed"] if sample["labels"]["error_type"] == "queue_full"]
    assert len(dropped) == 1
    assert dropped[0]["value"] > 0
    assert dropped[0]["labels"]["otel_component_type"] == "batching_span_processor"
