"""The public surface: facades, their sorted and complete ``__all__``, and the import boundary."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import penguiflow_otel

FACADES: dict[str, set[str]] = {
    "penguiflow_otel.core": {
        "Context", "Endpoint", "OPEN_SEA", "ROOKERY", "Floe", "PenguiFlow", "FlowStatistics", "create",
        "call_playbook", "PlaybookFactory", "DEFAULT_QUEUE_MAXSIZE", "CycleError", "TraceCancelled",
        "TenantMismatch",
    },
    "penguiflow_otel.node": {"Node", "NodePolicy"},
    "penguiflow_otel.types": {
        "Headers", "Message", "StreamChunk", "WM", "FinalAnswer", "PlanStep", "Thought",
    },
    "penguiflow_otel.errors": {
        "FlowError", "FlowErrorCode", "CycleError", "TraceCancelled", "TenantMismatch",
    },
    "penguiflow_otel.registry": {"ModelRegistry"},
    "penguiflow_otel.patterns": {"map_concurrent", "join_k", "predicate_router", "union_router"},
    "penguiflow_otel.policies": {
        "RoutingRequest", "RoutingPolicy", "DictRoutingPolicy", "evaluate_policy", "RoutingDecisionType",
        "PolicyCallable", "PolicyLike",
    },
    "penguiflow_otel.streaming": {
        "format_sse_event", "chunk_to_ws_json", "stream_flow", "emit_stream_events",
    },
    "penguiflow_otel.testkit": {
        "run_one", "assert_node_sequence", "get_recorded_events", "simulate_error",
        "assert_preserves_message_envelope",
    },
    "penguiflow_otel.metrics": {"FlowEvent"},
    "penguiflow_otel.middlewares": {"Middleware", "LatencyCallback", "log_flow_events", "FlowEvent"},
    "penguiflow_otel.state": {"StateStore", "StoredEvent", "RemoteBinding"},
    "penguiflow_otel.bus": {"MessageBus", "BusEnvelope"},
    "penguiflow_otel.debug": {"format_flow_event"},
    "penguiflow_otel.viz": {"flow_to_mermaid", "flow_to_dot"},
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(FACADES))
def test_facade_all_is_sorted_and_exactly_the_spec_names(module_name: str) -> None:
    """Each public facade's ``__all__`` is sorted and lists exactly the names the spec gives it."""
    module = importlib.import_module(module_name)
    assert list(module.__all__) == sorted(module.__all__)
    assert set(module.__all__) == FACADES[module_name]
    for name in module.__all__:
        assert hasattr(module, name), name


def test_top_level_all_is_the_union_of_the_facades_plus_testkit_and_version() -> None:
    """``penguiflow_otel.__all__`` is the union of every facade, plus ``testkit`` and ``__version__``."""
    expected = set().union(*FACADES.values()) | {"testkit", "__version__"}
    assert list(penguiflow_otel.__all__) == sorted(penguiflow_otel.__all__)
    assert set(penguiflow_otel.__all__) == expected


def test_a_name_exported_twice_is_the_same_object() -> None:
    """A name exported by two facades (and the top level) is one object."""
    for module_name, names in FACADES.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(module, name) is getattr(penguiflow_otel, name), (module_name, name)


def test_importing_the_package_loads_no_sdk_exporter_or_planner() -> None:
    """``import penguiflow_otel`` loads neither the OTel SDK, exporters, propagators nor the planner."""
    code = "import sys, json, penguiflow_otel\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = json.loads(out)
    forbidden = (
        "opentelemetry.sdk",
        "opentelemetry.exporter",
        "opentelemetry.propagate",
        "prometheus_client",
        "penguiflow_otel.planner",
        "penguiflow_otel.testing",
    )
    offenders = [name for name in loaded if name.startswith(forbidden)]
    assert offenders == []


@pytest.mark.parametrize(
    "module_name",
    [*sorted(FACADES), "penguiflow_otel.testing", "penguiflow_otel.planner", "penguiflow_otel.catalog"],
)
def test_public_classes_and_functions_name_a_public_module(module_name: str) -> None:
    """Tracebacks and docs show a public module (``penguiflow_otel.node.Node``), never a private one."""
    import inspect

    module = importlib.import_module(module_name)
    private = [
        f"{name}: {obj.__module__}"
        for name in module.__all__
        if (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
        and any(part.startswith("_") for part in obj.__module__.split("."))
    ]
    assert private == []
