"""The private runtime modules of runtime.md section 1: one concept each, defining what the module table says.

Definitions are read from each module's source (top-level ``class``, ``def`` and assignments), not
from ``__module__``, which the facades rewrite to their public name. Where the code splits a
concept of the table into a module of its own, ``SPLITS`` says where it went; the first test keeps
the two lists exact, so a new private module has to be entered in one of them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

import penguiflow_otel

PACKAGE = Path(penguiflow_otel.__file__).parent

# runtime.md section 1, "Private modules, one concept each": module -> names it defines at top
# level. ``Class.attr`` means a method or class attribute defined in that class's body.
SPEC_TABLE: dict[str, tuple[str, ...]] = {
    "_errors": ("FlowError", "FlowErrorCode", "CycleError", "TraceCancelled", "TenantMismatch"),
    "_message": (
        "Headers",
        "Message",
        "StreamChunk",
        "WM",
        "FinalAnswer",
        "PlanStep",
        "Thought",
        "new_trace_id",  # trace-id minting
    ),
    "_node": ("Node", "NodePolicy"),
    "_edge": ("Floe",),
    "_graph": ("Endpoint", "OPEN_SEA", "ROOKERY", "build_graph", "_normalise", "_check_acyclic"),
    "_context": ("Context",),
    "_clock": ("Clock", "SystemClock", "SYSTEM_CLOCK"),
    "_traces": ("TraceRecord",),
    "_results": ("ResultStore",),  # the Rookery's per-trace result buffers
    "_runner": (
        "PenguiFlow",
        "create",
        "DEFAULT_QUEUE_MAXSIZE",
        "PenguiFlow.run",
        "PenguiFlow.stop",
        "PenguiFlow.drain",
        "PenguiFlow.fetch",
        "PenguiFlow.cancel",
    ),
    "_statistics": ("FlowStatistics",),
    "_retry": ("backoff_delay", "should_retry"),  # backoff, jitter, retry_on
    "_cancel": ("cancel_trace",),
    "_controller": ("route_wm",),  # the WM/FinalAnswer routing rules
    "_streaming": ("format_sse_event", "chunk_to_ws_json", "stream_flow", "emit_stream_events"),
    "_events": ("FlowEvent", "format_flow_event"),
    "_registry": ("ModelRegistry",),
    "_patterns": ("map_concurrent", "join_k", "predicate_router", "union_router"),
    "_policies": (
        "RoutingRequest",
        "RoutingPolicy",
        "DictRoutingPolicy",
        "evaluate_policy",
        "RoutingDecisionType",
        "PolicyCallable",
        "PolicyLike",
    ),
    "_playbook": ("call_playbook", "PlaybookFactory"),
    "_middlewares": ("Middleware", "LatencyCallback", "log_flow_events"),
    "_state": ("StateStore", "StoredEvent", "RemoteBinding"),
    "_bus": ("MessageBus", "BusEnvelope"),
    "_testkit": (
        "run_one",
        "assert_node_sequence",
        "get_recorded_events",
        "simulate_error",
        "assert_preserves_message_envelope",
        "_StubContext",
    ),
    "_viz": ("flow_to_mermaid", "flow_to_dot"),
}

# Where the code deliberately differs from the table: parts of a table concept that live in a
# module of their own (or in another table module), with what that module defines for them.
SPLITS: dict[str, tuple[str, ...]] = {
    # _runner's "workers, the per-message algorithm": the worker loop and what workers share.
    "_worker": ("run_worker",),
    "_worker_state": ("NodeRuntime", "WorkerState"),
    # _runner's trace accounting (admitting items, puts, deliveries, finalizing).
    "_accounting": ("Accounting",),
    # _results' `fetch` (plain and trace-scoped).
    "_fetching": ("fetch_plain", "fetch_trace"),
    # _events' "lazy building, dispatch to logger/store/middlewares, redaction".
    "_dispatch": ("EventSink", "redact"),
    # _controller's deadlines (dequeue skip is in _worker, the in-run bound's failure here) and
    # the retry decision after a failed attempt.
    "_failures": ("deadline_passed", "after_failure", "deliver_final"),
    # Facade support: the public `__module__` of re-exported names, and the version.
    "_public": ("publish",),
    "_version": ("__version__",),
}

# Table concepts the code keeps in a different table module (module, name).
MOVED: dict[str, tuple[str, str]] = {
    "_cancel: the cancelled-trace ring (F1)": ("_traces", "CancelRing"),
    "_runner: stop and drain": ("_cancel", "stop_flow"),
    "_runner: drain": ("_cancel", "drain_flow"),
    "_controller: dequeue deadline skip": ("_worker", "_deadline_skip"),
    "_streaming: emit_chunk sequencing": ("_context", "Context.emit_chunk"),
}

# runtime.md section 1, "Public facades": facade -> private module -> names.
FACADES: dict[str, dict[str, tuple[str, ...]]] = {
    "core": {
        "_context": ("Context",),
        "_graph": ("Endpoint", "OPEN_SEA", "ROOKERY"),
        "_edge": ("Floe",),
        "_runner": ("PenguiFlow", "create", "DEFAULT_QUEUE_MAXSIZE"),
        "_statistics": ("FlowStatistics",),
        "_playbook": ("call_playbook", "PlaybookFactory"),
        "_errors": ("CycleError", "TraceCancelled", "TenantMismatch"),
    },
    "node": {"_node": ("Node", "NodePolicy")},
    "types": {"_message": ("Headers", "Message", "StreamChunk", "WM", "FinalAnswer", "PlanStep", "Thought")},
    "errors": {"_errors": ("FlowError", "FlowErrorCode", "CycleError", "TraceCancelled", "TenantMismatch")},
    "registry": {"_registry": ("ModelRegistry",)},
    "patterns": {"_patterns": ("map_concurrent", "join_k", "predicate_router", "union_router")},
    "policies": {"_policies": SPEC_TABLE["_policies"]},
    "streaming": {"_streaming": SPEC_TABLE["_streaming"]},
    "testkit": {"_testkit": SPEC_TABLE["_testkit"][:-1]},
    "metrics": {"_events": ("FlowEvent",)},
    "middlewares": {"_middlewares": SPEC_TABLE["_middlewares"], "_events": ("FlowEvent",)},
    "state": {"_state": SPEC_TABLE["_state"]},
    "bus": {"_bus": SPEC_TABLE["_bus"]},
    "debug": {"_events": ("format_flow_event",)},
    "viz": {"_viz": SPEC_TABLE["_viz"]},
}


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))


def _targets(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


@cache
def defined_in(module: str) -> frozenset[str]:
    """Names a private module defines itself: top level, plus ``Class.attr`` for class bodies."""
    names: set[str] = set()
    for node in _tree(module).body:
        names.update(_targets(node))
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{name}" for child in node.body for name in _targets(child))
    return frozenset(names)


def _private(module: str) -> ModuleType:
    return importlib.import_module(f"penguiflow_otel.{module}")


def test_the_private_modules_are_the_spec_table_plus_the_documented_splits() -> None:
    """Every private runtime module is a row of the table or a documented split; none is missing."""
    present = {path.stem for path in PACKAGE.glob("_*.py") if path.stem != "__init__"}
    listed = set(SPEC_TABLE) | set(SPLITS)
    assert not set(SPEC_TABLE) & set(SPLITS), "a module is either a table row or a split"
    assert sorted(present - listed) == [], "private modules in neither the spec table nor SPLITS"
    assert sorted(listed - present) == [], "modules of the spec table or SPLITS that do not exist"


@pytest.mark.parametrize("module", sorted(SPEC_TABLE | SPLITS))
def test_each_private_module_defines_what_the_table_gives_it_and_says_what_it_is(module: str) -> None:
    """Each listed name is defined in the module's own source, and the module has a docstring."""
    missing = sorted(set((SPEC_TABLE | SPLITS)[module]) - defined_in(module))
    assert missing == [], f"penguiflow_otel/{module}.py does not define {missing}"
    if module != "_version":  # one assignment, nothing to describe
        docstring = ast.get_docstring(_tree(module)) or ""
        assert docstring.strip(), f"penguiflow_otel/{module}.py has no docstring saying what its concept is"


@pytest.mark.parametrize("concept", sorted(MOVED))
def test_concepts_the_code_keeps_elsewhere_are_where_the_layout_says(concept: str) -> None:
    """The table concepts that live in another module than the table's are defined there."""
    module, name = MOVED[concept]
    assert name in defined_in(module), f"{concept}: expected {name} in penguiflow_otel/{module}.py"


@pytest.mark.parametrize("facade", sorted(FACADES))
def test_each_public_name_is_the_object_its_private_module_defines(facade: str) -> None:
    """A facade re-exports, unchanged, the object the table's private module defines, and only that module."""
    public = importlib.import_module(f"penguiflow_otel.{facade}")
    sources = FACADES[facade]
    assert sorted(name for names in sources.values() for name in names) == sorted(public.__all__), (
        f"penguiflow_otel.{facade}.__all__ is not the names this test maps to private modules"
    )
    everywhere = sorted(SPEC_TABLE | SPLITS)
    for module, names in sources.items():
        for name in names:
            assert name in defined_in(module), (
                f"{facade}.{name} is not defined in penguiflow_otel/{module}.py"
            )
            assert getattr(public, name) is getattr(_private(module), name), (
                f"penguiflow_otel.{facade}.{name} is not the object defined in {module}"
            )
            owners = [other for other in everywhere if name in defined_in(other)]
            assert owners == [module], f"{name} is defined in {owners}, not in {module} alone"


def test_every_runtime_exception_type_lives_in_errors_whose_docstring_draws_the_hierarchy() -> None:
    """No other private runtime module defines an exception; ``_errors`` draws each one's base in its tree."""
    elsewhere = sorted(
        f"{module}.{name}"
        for module in sorted(SPEC_TABLE | SPLITS)
        if module != "_errors"
        for name, obj in vars(_private(module)).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and getattr(obj, "__qualname__", "") == name
        and name in defined_in(module)
    )
    assert elsewhere == [], f"exception types outside _errors: {elsewhere}"
    errors = _private("_errors")
    docstring = errors.__doc__ or ""
    tree = [line.strip() for line in docstring.splitlines() if "──" in line]
    for name in SPEC_TABLE["_errors"]:
        obj = getattr(errors, name)
        if not issubclass(obj, BaseException):
            continue  # FlowErrorCode, the enum of codes
        (branch,) = [line for line in tree if line.split()[1] == name] or [""]
        assert branch, f"the _errors docstring's hierarchy has no branch for {name}: {tree}"
        base = obj.__bases__[0].__name__
        lines = docstring.splitlines()
        index = next(i for i, line in enumerate(lines) if line.strip() == branch)
        roots = [line.strip() for line in lines[:index] if line.strip() and "──" not in line]
        assert roots, f"the _errors docstring has no base above {name}"
        assert roots[-1] == base, f"the docstring draws {name} under {roots[-1]}, its base is {base}"


def test_messages_read_traceparent_through_the_w3c_parser() -> None:
    """``_message`` does not parse ``traceparent`` itself: it imports ``telemetry._w3c.parse_traceparent``."""
    from penguiflow_otel.telemetry import _w3c

    imports = [
        (node.module, alias.name)
        for node in _tree("_message").body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]
    assert ("telemetry._w3c", "parse_traceparent") in imports, imports
    assert _private("_message").parse_traceparent is _w3c.parse_traceparent
    assert "parse_traceparent" not in defined_in("_message"), "_message must not define its own parser"


def test_the_clock_module_holds_the_clock_protocol_and_the_system_clock() -> None:
    """``Clock`` is a Protocol (time, monotonic); ``SYSTEM_CLOCK`` is a ``SystemClock`` reading both."""
    clock = _private("_clock")
    assert Protocol in clock.Clock.__mro__, "Clock must be a typing.Protocol"
    assert {"Clock.time", "Clock.monotonic"} <= defined_in("_clock")
    assert type(clock.SYSTEM_CLOCK) is clock.SystemClock
    assert isinstance(clock.SYSTEM_CLOCK.time(), float)
    assert isinstance(clock.SYSTEM_CLOCK.monotonic(), float)


def test_trace_records_hold_the_per_trace_state_the_table_lists() -> None:
    """pending/inflight, tenant binding, claims, cancellation marks and the telemetry handle, per trace."""
    record = _private("_traces").TraceRecord("0" * 31 + "1")
    for slot in ("pending", "inflight", "tenant", "claimed", "cancelled", "handle"):
        assert hasattr(record, slot), f"TraceRecord has no {slot!r}"
    assert (record.pending, record.inflight, record.tenant, record.claimed, record.cancelled) == (
        0,
        0,
        None,
        False,
        False,
    )
