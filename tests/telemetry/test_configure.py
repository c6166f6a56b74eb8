"""``telemetry.configure()``: argument > environment > default, foreign providers, exporters, ``/metrics``.

Each test that installs providers runs in a fresh interpreter (``configure_child.py``), since the
OTel globals can be set once per process; only argument validation, which fails before anything is
installed, runs here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import clean_env, free_port, port_accepts
from opentelemetry import trace
from otel_support import OtlpSink, run_child

from penguiflow_otel import telemetry
from penguiflow_otel.telemetry import names


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    server = OtlpSink()
    try:
        yield server
    finally:
        server.close()


def _warnings(report: dict[str, Any]) -> list[str]:
    return [message for level, message in report["logs"] if level == "WARNING"]


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# The facade ------------------------------------------------------------------------------------


def test_importing_telemetry_or_propagation_loads_no_sdk_until_configure_is_used() -> None:
    """``import penguiflow_otel.telemetry`` / ``.propagation`` load no SDK, exporter or propagate module."""
    code = (
        "import sys, json\n"
        "import penguiflow_otel.telemetry as t, penguiflow_otel.propagation\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.propagate',"
        " 'prometheus_client')\n"
        "before = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "listed = 'configure' in dir(t)\n"
        "t.configure\n"
        "after = 'opentelemetry.sdk' in sys.modules\n"
        "print(json.dumps({'before': before, 'listed': listed, 'after': after}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), check=True
    )
    report = json.loads(done.stdout)
    assert report == {"before": [], "listed": True, "after": True}


def test_the_facade_lists_its_public_names_under_its_own_module_name() -> None:
    """``__all__`` is sorted and exact, and each name reports ``penguiflow_otel.telemetry`` as its module."""
    expected = ["NoOpHooks", "TelemetryHandle", "TelemetryHooks", "configure", "metrics_asgi_app", "shutdown"]
    assert telemetry.__all__ == expected
    for name in expected:
        assert getattr(telemetry, name).__module__ == "penguiflow_otel.telemetry", name


# Invalid arguments (in-process: they fail before anything is installed) ---------------------------


INVALID_ARGUMENTS = [
    (
        {"traces": "zipkin"},
        "traces='zipkin': unknown exporter 'zipkin'; use one or more of 'otlp', 'console'",
    ),
    ({"traces": ("none", "otlp")}, "'none' cannot be combined with other exporters"),
    ({"traces": "jsonl"}, "the 'jsonl' traces exporter needs a file: pass traces_file=... or set"),
    ({"metrics": ("statsd",)}, "unknown exporter 'statsd'; use one or more of 'prometheus', 'otlp'"),
    ({"prometheus_port": -1}, "prometheus_port must be an int from 0 to 65535"),
    ({"prometheus_port": "9464"}, "prometheus_port must be an int from 0 to 65535"),
    ({"prometheus_port": True}, "prometheus_port must be an int from 0 to 65535"),
    ({"prometheus_host": ""}, "prometheus_host must be a non-empty string such as '127.0.0.1'"),
    ({"prometheus_registry": {}}, "prometheus_registry must be a prometheus_client.CollectorRegistry"),
    ({"otlp_endpoint": "localhost:4318"}, "otlp_endpoint must be the collector's base URL, such as"),
    ({"otlp_protocol": "http/json"}, "otlp_protocol must be 'http/protobuf' or 'grpc' (http/json is not"),
    ({"sampler": "sometimes"}, "sampler must be one of 'always_on', 'always_off', 'traceidratio'"),
    ({"sampler": "traceidratio", "sampler_arg": 1.5}, "sampler_arg must be a number from 0.0 to 1.0"),
    ({"sampler_arg": 0.1}, "also pass sampler='parentbased_traceidratio'"),
    ({"tenant": "everything"}, "tenant must be one of 'off', 'spans', 'spans+metrics'"),
    ({"quiet_nodes": "relay"}, "quiet_nodes must be a collection of node names, such as ('relay',)"),
    ({"service_name": ""}, "service_name must be a non-empty string such as 'checkout'"),
    (
        {"resource_attributes": {"team": 7}},
        "resource_attributes must map non-empty string keys to string values",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), INVALID_ARGUMENTS)
def test_an_invalid_argument_raises_a_value_error_naming_the_problem_and_the_fix(
    kwargs: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad argument raises ``ValueError`` with an actionable message, and nothing is installed."""
    for name in ("OTEL_TRACES_EXPORTER", "PENGUIFLOW_OTEL_TRACES_FILE", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    # Safety net: should validation ever let one through, the kill switch keeps this process clean.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    before = trace.get_tracer_provider()
    with pytest.raises(ValueError, match=re.escape(message)):
        telemetry.configure(**kwargs)
    assert trace.get_tracer_provider() is before


async def test_shutdown_without_configure_returns_true_and_rejects_a_negative_timeout() -> None:
    """With nothing configured there is nothing to flush; a negative timeout is a ``ValueError``."""
    assert await telemetry.shutdown(timeout=0.5) is True
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0; got -1"):
        await telemetry.shutdown(timeout=-1)


# Precedence ------------------------------------------------------------------------------------


def test_explicit_arguments_beat_the_environment(tmp_path: Path) -> None:
    """Service name, sampler, exporter, file and port come from the arguments, not the variables."""
    arg_file, env_file = tmp_path / "arg.jsonl", tmp_path / "env.jsonl"
    arg_port, env_port = free_port(), free_port()
    env = clean_env(
        OTEL_SERVICE_NAME="env-service",
        OTEL_TRACES_SAMPLER="always_off",
        OTEL_TRACES_EXPORTER="console",
        PENGUIFLOW_OTEL_TRACES_FILE=str(env_file),
        OTEL_EXPORTER_PROMETHEUS_PORT=str(env_port),
        OTEL_METRICS_EXPORTER="none",
    )
    kwargs = {
        "service_name": "arg-service",
        "sampler": "parentbased_traceidratio",
        "sampler_arg": 1.0,
        "traces": "jsonl",
        "traces_file": str(arg_file),
        "metrics": ["prometheus"],
        "prometheus_port": arg_port,
    }
    params = {"kwargs": kwargs, "private_registry": True, "spans": ["root", "leaf"], "fetch_metrics": True}
    run = run_child("configure", {**params, "configure_twice": True}, env)
    report = run.report
    assert report["resource"]["service.name"] == "arg-service"
    assert report["sampler"].startswith("ParentBased{root:TraceIdRatioBased{1.0}")
    assert [span["name"] for span in _json_lines(arg_file)] == ["leaf", "root"]
    assert not env_file.exists()
    assert '"name": "root"' not in run.stdout  # no console exporter
    assert report["prometheus_url"] == f"http://127.0.0.1:{arg_port}/metrics"
    assert report["fetched"]["status"] == 200
    assert report["second_call_same"] is True
    assert "configure() was already called: returning the first handle, ignoring this call" in _warnings(
        report
    )


def test_the_environment_beats_the_defaults(tmp_path: Path) -> None:
    """With no arguments, the standard variables (and the project's) choose everything."""
    traces_file, port = tmp_path / "spans.jsonl", free_port()
    env = clean_env(
        OTEL_SERVICE_NAME="env-service",
        OTEL_RESOURCE_ATTRIBUTES="service.name=attr-service,service.instance.id=instance-7,deployment.environment=ci",
        OTEL_TRACES_SAMPLER="traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.5",
        OTEL_TRACES_EXPORTER="jsonl",
        PENGUIFLOW_OTEL_TRACES_FILE=str(traces_file),
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )
    params = {"private_registry": True, "roots": 60, "fetch_metrics": True}
    report = run_child("configure", params, env).report
    assert report["resource"]["service.name"] == "env-service"  # OTEL_SERVICE_NAME beats the attribute
    assert report["resource"]["service.instance.id"] == "instance-7"
    assert report["resource"]["deployment.environment"] == "ci"
    assert report["sampler"] == "TraceIdRatioBased{0.5}"
    assert report["prometheus_url"] == f"http://127.0.0.1:{port}/metrics"
    assert 'service_name="env-service"' in report["fetched"]["body"]
    assert report["metrics_port_accepts_after_shutdown"] is False
    # Half of 60 independent roots are sampled: all or none would happen with probability 2**-60.
    assert 0 < len(_json_lines(traces_file)) < 60


def test_defaults_send_spans_over_otlp_http_with_sdk_self_metrics(sink: OtlpSink) -> None:
    """Defaults: OTLP over HTTP/protobuf, parent-based always-on, a random instance id, SDK self-metrics."""
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=sink.url)
    params = {
        "kwargs": {"prometheus_port": 0},
        "private_registry": True,
        "spans": ["root", "a", "b"],
        "force_flush": True,
    }
    report = run_child("configure", params, env).report
    assert sorted(span.name for span in sink.wait_for_spans(3, timeout=5)) == ["a", "b", "root"]
    assert {span.trace_id for span in sink.spans} == {report["trace_id"]}
    assert report["owns_traces"] is report["owns_metrics"] is True
    assert report["handle_tracer_is_global"] is report["handle_meter_is_global"] is True
    assert report["prometheus_url"] is None
    assert report["sampler"] == (
        "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
        "localParentNotSampled:AlwaysOffSampler}"
    )
    assert report["resource"]["service.name"].startswith("unknown_service")
    assert any(
        message.startswith("no service name: pass configure(service_name=...)")
        for message in _warnings(report)
    )
    uuid.UUID(report["resource"]["service.instance.id"])
    assert report["self_metrics_env"] is None  # set only while the processor and exporter were built
    text = report["registry_text"]
    assert f'{names.SDK_SPAN_QUEUE_CAPACITY}{{otel_component_name="batching_span_processor/0"' in text
    assert re.search(rf"^{names.SDK_SPAN_EXPORTED_TOTAL}{{[^}}]*}} 3\.0$", text, re.MULTILINE)
    assert report["shutdown_result"] is report["second_shutdown_result"] is True


def test_an_operators_false_keeps_sdk_self_metrics_off(sink: OtlpSink) -> None:
    """``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=false`` wins: no ``otel_sdk_*`` series."""
    env = clean_env(OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED="false")
    params = {
        "kwargs": {"otlp_endpoint": sink.url, "prometheus_port": 0, "service_name": "quiet"},
        "private_registry": True,
        "spans": ["root"],
        "force_flush": True,
        "counter": "quiet.items",
    }
    report = run_child("configure", params, env).report
    assert [span.name for span in sink.wait_for_spans(1, timeout=5)] == ["root"]
    assert "otel_sdk_" not in report["registry_text"]
    assert "quiet_items_total" in report["registry_text"]
    assert report["self_metrics_env"] == "false"


@pytest.mark.parametrize(
    ("kwargs", "env", "preset", "during", "after"),
    [
        pytest.param({}, {}, None, "ERROR", "NOTSET", id="drops-counted"),
        pytest.param({"metrics": "none"}, {}, None, "NOTSET", "NOTSET", id="no-metrics"),
        pytest.param(
            {},
            {"OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED": "false"},
            None,
            "NOTSET",
            "NOTSET",
            id="sdk-metrics-off",
        ),
        pytest.param({}, {}, "WARNING", "WARNING", "WARNING", id="application-level"),
        pytest.param({"traces": "none"}, {}, None, "NOTSET", "NOTSET", id="no-traces"),
    ],
)
def test_the_sdks_per_drop_warning_is_off_only_while_its_drops_are_counted(
    tmp_path: Path, kwargs: dict[str, Any], env: dict[str, str], preset: str | None, during: str, after: str
) -> None:
    """The batch processor warns once per dropped span (a costly call on the event loop with the collector
    down); ``configure()`` sets that logger to ERROR while the SDK's self-metrics count the drops instead,
    leaves an application's own level alone, and ``shutdown()`` restores it."""
    params: dict[str, Any] = {
        "kwargs": {
            "traces": "jsonl",
            "traces_file": str(tmp_path / "spans.jsonl"),
            "prometheus_port": 0,
            **kwargs,
        },
        "private_registry": True,
        "spans": ["root"],
        "sdk_logger_level": preset,
    }
    report = run_child("configure", params, clean_env(**env)).report
    assert (report["sdk_logger_level"], report["sdk_logger_level_after_shutdown"]) == (during, after)


def test_invalid_environment_values_warn_once_and_fall_back(sink: OtlpSink) -> None:
    """A typo in a variable logs one warning and the default applies; the service still starts."""
    env = clean_env(
        OTEL_TRACES_SAMPLER="sometimes",
        OTEL_TRACES_EXPORTER="zipkin",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
        OTEL_EXPORTER_PROMETHEUS_PORT="ninety",
        OTEL_SDK_DISABLED="maybe",
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
    )
    params = {
        "kwargs": {"metrics": "none", "service_name": "typos"},
        "spans": ["root"],
        "force_flush": True,
        "configure_twice": True,
    }
    report = run_child("configure", params, env).report
    assert [span.name for span in sink.wait_for_spans(1, timeout=5)] == ["root"]
    assert report["sampler"].startswith("ParentBased{root:AlwaysOnSampler")
    ignored = sorted(
        message.split("=")[0] for message in _warnings(report) if message.startswith("ignoring ")
    )
    assert ignored == [
        "ignoring OTEL_EXPORTER_OTLP_PROTOCOL",
        "ignoring OTEL_EXPORTER_PROMETHEUS_PORT",
        "ignoring OTEL_SDK_DISABLED",
        "ignoring OTEL_TRACES_EXPORTER",
        "ignoring OTEL_TRACES_SAMPLER",
    ]
    expected = "expected a comma list of 'otlp', 'console', 'jsonl', 'none'; using 'otlp'"
    assert f"ignoring OTEL_TRACES_EXPORTER='zipkin': {expected}" in _warnings(report)


def test_an_invalid_metrics_exporter_variable_falls_back_to_prometheus() -> None:
    """``OTEL_METRICS_EXPORTER=statsd`` warns and the Prometheus reader is built."""
    env = clean_env(OTEL_METRICS_EXPORTER="statsd")
    params = {"kwargs": {"traces": "none", "prometheus_port": 0}, "private_registry": True, "counter": "c"}
    report = run_child("configure", params, env).report
    assert report["owns_metrics"] is True
    assert report["owns_traces"] is False
    assert "target_info" in report["registry_text"]
    assert any(message.startswith("ignoring OTEL_METRICS_EXPORTER='statsd'") for message in _warnings(report))


# The kill switch and foreign providers -------------------------------------------------------------


def test_otel_sdk_disabled_beats_arguments_and_installs_nothing(tmp_path: Path) -> None:
    """``OTEL_SDK_DISABLED=true``: no provider, no file, no server, whatever the arguments say."""
    traces_file, port = tmp_path / "spans.jsonl", free_port()
    kwargs = {"traces": "jsonl", "traces_file": str(traces_file), "prometheus_port": port, "tenant": "off"}
    params = {"kwargs": kwargs, "spans": ["root"], "probe_port": port}
    report = run_child("configure", params, clean_env(OTEL_SDK_DISABLED="TRUE")).report
    assert (report["owns_traces"], report["owns_metrics"], report["prometheus_url"]) == (False, False, None)
    assert (report["tracer_provider"], report["meter_provider"]) == ("NoneType", "NoneType")
    assert report["global_tracer_provider"] == "ProxyTracerProvider"
    assert report["probe_port_accepts"] is False
    assert not traces_file.exists()
    assert report["shutdown_result"] is True


def test_providers_the_application_installed_are_used_and_the_ignored_arguments_logged(
    tmp_path: Path,
) -> None:
    """A pre-installed tracer and meter provider stay global; ``configure()`` builds nothing."""
    traces_file, port = tmp_path / "spans.jsonl", free_port()
    kwargs = {
        "service_name": "mine",
        "traces": "jsonl",
        "traces_file": str(traces_file),
        "sampler": "always_off",
        "prometheus_port": port,
        "quiet_nodes": ["relay"],
    }
    params = {"kwargs": kwargs, "foreign": "both", "spans": ["root"], "probe_port": port}
    report = run_child("configure", params, clean_env()).report
    assert (report["owns_traces"], report["owns_metrics"], report["prometheus_url"]) == (False, False, None)
    assert report["same_tracer_as_foreign"] is report["same_meter_as_foreign"] is True
    assert report["handle_tracer_is_global"] is True
    assert report["foreign_spans"] == ["root"]
    assert report["probe_port_accepts"] is False
    assert not traces_file.exists()
    assert (
        "configure() ignored these arguments: prometheus_port, sampler, service_name, traces, traces_file"
        in _warnings(report)
    )


def test_only_the_signal_the_application_installed_is_left_alone(tmp_path: Path) -> None:
    """With only a tracer provider installed, ``configure()`` still builds the meter provider."""
    traces_file = tmp_path / "spans.jsonl"
    kwargs = {
        "traces": "jsonl",
        "traces_file": str(traces_file),
        "prometheus_port": 0,
        "service_name": "half",
    }
    params = {
        "kwargs": kwargs,
        "private_registry": True,
        "foreign": "traces",
        "spans": ["root"],
        "counter": "c",
    }
    report = run_child("configure", params, clean_env()).report
    assert (report["owns_traces"], report["owns_metrics"]) == (False, True)
    assert report["same_tracer_as_foreign"] is True
    assert report["handle_meter_is_global"] is True
    assert 'service_name="half"' in report["registry_text"]
    assert "configure() ignored these arguments: traces, traces_file" in _warnings(report)
    assert not traces_file.exists()


# Exporters and /metrics ----------------------------------------------------------------------------


def test_jsonl_appends_one_span_object_per_line(tmp_path: Path) -> None:
    """Each span is one ``to_json(indent=None)`` line appended to the file; what was there stays."""
    traces_file = tmp_path / "spans.jsonl"
    traces_file.write_text('{"earlier": true}\n')
    kwargs = {"traces": "jsonl", "traces_file": str(traces_file), "metrics": (), "service_name": "lines"}
    report = run_child("configure", {"kwargs": kwargs, "spans": ["root", "a", "b"]}, clean_env()).report
    first, *spans = _json_lines(traces_file)
    assert first == {"earlier": True}
    assert [span["name"] for span in spans] == ["a", "b", "root"]
    root_id = f"0x{report['root_span_id']}"
    assert [span["parent_id"] for span in spans] == [root_id, root_id, None]
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"lines"}


def test_an_unwritable_traces_file_is_a_value_error(tmp_path: Path) -> None:
    """A traces file that cannot be opened fails ``configure()`` with the path and the fix."""
    code = (
        "from penguiflow_otel import telemetry\n"
        "from opentelemetry import trace\n"
        "try:\n"
        f"    telemetry.configure(traces='jsonl', traces_file={str(tmp_path / 'missing' / 'x.jsonl')!r}, "
        "metrics='none')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), check=True
    )
    message, provider = done.stdout.strip().splitlines()
    assert message.startswith("cannot open traces_file ")
    assert message.endswith("; pass a writable path")
    assert provider == "ProxyTracerProvider"


def test_otlp_metrics_reach_the_collector(sink: OtlpSink) -> None:
    """``metrics="otlp"`` adds a periodic OTLP reader that exports to ``{otlp_endpoint}/v1/metrics``."""
    params = {
        "kwargs": {"traces": "none", "metrics": "otlp", "otlp_endpoint": sink.url, "service_name": "pushed"},
        "counter": "pushed.items",
        "flush_metrics": True,
    }
    report = run_child("configure", params, clean_env()).report
    assert report["owns_metrics"] is True
    assert "pushed.items" in sink.metric_names


def test_metrics_asgi_app_serves_the_configured_registry() -> None:
    """With ``prometheus_port=0`` no server starts, and the ASGI app serves the same registry."""
    params = {
        "kwargs": {"traces": "none", "prometheus_port": 0, "service_name": "embedded"},
        "private_registry": True,
        "counter": "embedded.items",
        "asgi": True,
    }
    report = run_child("configure", params, clean_env()).report
    assert report["prometheus_url"] is None
    assert report["asgi"]["status"] == 200
    assert 'service_name="embedded"' in report["asgi"]["body"]
    assert "embedded_items_total" in report["asgi"]["body"]


def test_the_prometheus_server_binds_loopback_by_default() -> None:
    """The default host is 127.0.0.1, and the server stops at ``shutdown()``."""
    port = free_port()
    kwargs = {"traces": "none", "prometheus_port": port}
    params = {"kwargs": kwargs, "private_registry": True, "fetch_metrics": True, "counter": "served.items"}
    report = run_child("configure", params, clean_env()).report
    assert report["prometheus_url"] == f"http://127.0.0.1:{port}/metrics"
    assert "served_items_total" in report["fetched"]["body"]
    assert report["metrics_port_accepts_after_shutdown"] is False
    assert not port_accepts(port)
