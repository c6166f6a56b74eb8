"""penguiflow_otel: the PenguiFlow async flow runtime, rebuilt cleanly and OpenTelemetry-native.

This module pulls together the public runtime API from the private modules. The telemetry SDK,
exporters and the planner are not imported here: they load only when used.
"""

from . import testkit as testkit
from ._version import __version__ as __version__
from .bus import BusEnvelope, MessageBus
from .core import (
    DEFAULT_QUEUE_MAXSIZE,
    OPEN_SEA,
    ROOKERY,
    Context,
    CycleError,
    Endpoint,
    Floe,
    FlowStatistics,
    PenguiFlow,
    PlaybookFactory,
    TenantMismatch,
    TraceCancelled,
    call_playbook,
    create,
)
from .debug import format_flow_event
from .errors import FlowError, FlowErrorCode
from .metrics import FlowEvent
from .middlewares import LatencyCallback, Middleware, log_flow_events
from .node import Node, NodePolicy
from .patterns import join_k, map_concurrent, predicate_router, union_router
from .policies import (
    DictRoutingPolicy,
    PolicyCallable,
    PolicyLike,
    RoutingDecisionType,
    RoutingPolicy,
    RoutingRequest,
    evaluate_policy,
)
from .registry import ModelRegistry
from .state import RemoteBinding, StateStore, StoredEvent
from .streaming import chunk_to_ws_json, emit_stream_events, format_sse_event, stream_flow
from .testkit import (
    assert_node_sequence,
    assert_preserves_message_envelope,
    get_recorded_events,
    run_one,
    simulate_error,
)
from .types import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought
from .viz import flow_to_dot, flow_to_mermaid

__all__ = [
    "BusEnvelope",
    "Context",
    "CycleError",
    "DEFAULT_QUEUE_MAXSIZE",
    "DictRoutingPolicy",
    "Endpoint",
    "FinalAnswer",
    "Floe",
    "FlowError",
    "FlowErrorCode",
    "FlowEvent",
    "FlowStatistics",
    "Headers",
    "LatencyCallback",
    "Message",
    "MessageBus",
    "Middleware",
    "ModelRegistry",
    "Node",
    "NodePolicy",
    "OPEN_SEA",
    "PenguiFlow",
    "PlanStep",
    "PlaybookFactory",
    "PolicyCallable",
    "PolicyLike",
    "ROOKERY",
    "RemoteBinding",
    "RoutingDecisionType",
    "RoutingPolicy",
    "RoutingRequest",
    "StateStore",
    "StoredEvent",
    "StreamChunk",
    "TenantMismatch",
    "Thought",
    "TraceCancelled",
    "WM",
    "__version__",
    "assert_node_sequence",
    "assert_preserves_message_envelope",
    "call_playbook",
    "chunk_to_ws_json",
    "create",
    "emit_stream_events",
    "evaluate_policy",
    "flow_to_dot",
    "flow_to_mermaid",
    "format_flow_event",
    "format_sse_event",
    "get_recorded_events",
    "join_k",
    "log_flow_events",
    "map_concurrent",
    "predicate_router",
    "run_one",
    "simulate_error",
    "stream_flow",
    "testkit",
    "union_router",
]
