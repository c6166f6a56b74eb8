"""The telemetry catalog: every span name, attribute key and value, bucket list and metric we emit.

Names are an API: dashboards, alert rules and pages depend on them, so they live here and nowhere
else (telemetry.md section 1, principle 3). The shipped dashboards and rules, and the tests that pin
the exported Prometheus names against the locked exporter, are checked against this module.

Prefixes: ``SPAN_*`` span names (``str.format`` templates, e.g. ``SPAN_NODE.format(node=name)``),
``EVENT_*`` span events, ``ATTR_*`` attribute keys, then the values of one attribute grouped under its
own prefix (``OUTCOME_*``, ``DROP_REASON_*``, ...), the bucket lists of telemetry.md section 9.2 and
planner.md section 7.3, and one :class:`MetricSpec` per instrument (``METRIC_*``).

Semantic-convention names (``error.type``, ``server.*``, ``gen_ai.*``) are written as literals: the
semantic-conventions package is an SDK dependency and marks its ``gen_ai`` constants deprecated. This
module imports nothing from OpenTelemetry, so it costs nothing to import.

Values owned by a typed enumeration elsewhere are not repeated here: ``penguiflow.error.code`` takes
``FlowErrorCode`` values; the planner's finish reasons, budget kinds and pause reasons come from its
own types. Changing anything below follows telemetry.md section 15.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

# Instrumentation scopes

SCOPE_NAME: Final = "penguiflow_otel"
"""Instrumentation scope of the runtime's tracer and meter."""

PLANNER_SCOPE_NAME: Final = "penguiflow_otel.planner"
"""Instrumentation scope of the planner's tracer and meter (planner.md section 7)."""

DEV_SCOPE_NAME: Final = "penguiflow_otel.dev"
"""Instrumentation scope of the ``penguiflow-otel dev`` server's request spans (planner.md section 8.2)."""

SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"
"""Semantic-convention version of both scopes; exported as the ``otel_scope_schema_url`` label."""

# Span names

SPAN_FLOW: Final = "flow {flow}"
"""Root span of one flow trace; ``{flow}`` is the flow's name (telemetry.md section 5.1)."""

SPAN_NODE: Final = "node {node}"
"""One node attempt, or one deadline skip; ``{node}`` is ``Node.name``."""

SPAN_INVOKE_AGENT: Final = "invoke_agent {planner}"
"""One planner ``run()`` or ``resume()``; ``{planner}`` is the planner's name."""

SPAN_PLAN: Final = "plan {planner}"
"""One planner step decision, a child of ``invoke_agent``."""

SPAN_CHAT: Final = "chat {model}"
"""One LLM ``complete()`` call (kind CLIENT), a child of ``plan``; ``{model}`` is the requested model."""

SPAN_CHAT_UNKNOWN_MODEL: Final = "chat"
"""The ``chat`` span's name when the requested model is unknown."""

SPAN_EXECUTE_TOOL: Final = "execute_tool {tool}"
"""One tool execution (single call, parallel branch or join), a sibling of ``plan``."""

SPAN_REMOTE: Final = "remote {skill}"
"""Reserved for the later ``RemoteNode``: one remote call (kind CLIENT, telemetry.md section 7.3)."""

SPAN_REMOTE_CANCEL: Final = "remote_cancel {skill}"
"""Reserved for the later ``RemoteNode``: the cancellation of one remote call (kind CLIENT)."""

SPAN_DEV_REQUEST: Final = "{method} {route}"
"""One request to the ``dev`` server (kind SERVER), named as the HTTP conventions name server spans."""

# Span events

EVENT_CANCEL: Final = "penguiflow.cancel"
"""On the root span when a trace's first ``cancel()`` is accepted; carries ``ATTR_CANCEL_PURGED``."""

EVENT_PLANNER_PAUSE: Final = "penguiflow.planner.pause"
"""On ``invoke_agent`` when a tool pauses the run; never carries the pause token."""

EVENT_PLANNER_RESUME: Final = "penguiflow.planner.resume"
"""On the ``invoke_agent`` span of a ``resume()``."""

EVENT_PLANNER_REPAIR: Final = "penguiflow.planner.repair"
"""On ``plan`` for each LLM reply that failed to parse and is retried."""

EVENT_PLANNER_BUDGET_EXHAUSTED: Final = "penguiflow.planner.budget_exhausted"
"""On ``invoke_agent`` when a budget runs out; carries ``ATTR_PLANNER_BUDGET_KIND``."""

# Attributes shared with the semantic conventions

ATTR_ERROR_TYPE: Final = "error.type"
"""Failure class of a span or metric point: an exception class name or an ``ERROR_TYPE_*`` value."""

ATTR_SERVER_ADDRESS: Final = "server.address"
"""Host of the LLM endpoint, from the client's ``base_url``."""

ATTR_SERVER_PORT: Final = "server.port"
"""Port of the LLM endpoint, from the client's ``base_url`` (an int)."""

ATTR_HTTP_REQUEST_METHOD: Final = "http.request.method"
"""HTTP method of a ``dev`` server request span."""

ATTR_HTTP_ROUTE: Final = "http.route"
"""Route template of a ``dev`` server request span, e.g. ``/chat/stream``."""

ATTR_URL_PATH: Final = "url.path"
"""Path of a ``dev`` server request."""

ATTR_HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
"""Status code a ``dev`` server request answered with (an int)."""

# Runtime attributes (telemetry.md section 5.2)

ATTR_FLOW_NAME: Final = "penguiflow.flow.name"
"""The flow's name; on every runtime span and metric."""

ATTR_NODE_NAME: Final = "penguiflow.node.name"
"""The node's name; ``egress`` for results nobody fetched."""

ATTR_NODE_ATTEMPT: Final = "penguiflow.node.attempt"
"""The attempt number, 0-based, equal to ``FlowEvent.attempt`` (int)."""

ATTR_QUEUE_NAME: Final = "penguiflow.queue.name"
"""The edge an item came from, formatted with ``QUEUE_NAME``."""

ATTR_QUEUE_WAIT_TIME: Final = "penguiflow.queue.wait_time"
"""Seconds the item waited in its edge before the attempt took it (double)."""

ATTR_NODE_BLOCKED_TIME: Final = "penguiflow.node.blocked_time"
"""Seconds routing puts waited for room in full edges; set only when positive (double)."""

ATTR_NODE_TIMEOUT: Final = "penguiflow.node.timeout"
"""The effective timeout in seconds, set only when the policy bound fired (double)."""

ATTR_RETRY_DELAY: Final = "penguiflow.retry.delay"
"""The backoff in seconds scheduled after a failed attempt that is retried (double)."""

ATTR_ERROR_CODE: Final = "penguiflow.error.code"
"""The ``FlowErrorCode`` of a terminal failure, on the last attempt span and the root."""

ATTR_ERROR_PHASE: Final = "penguiflow.error.phase"
"""Where an attempt failed; ``ERROR_PHASE_ROUTE`` for routing failures."""

ATTR_OUTCOME: Final = "penguiflow.outcome"
"""How a span or measured operation ended: one of ``OUTCOMES`` (telemetry.md section 6)."""

ATTR_CANCEL_REASON: Final = "penguiflow.cancel.reason"
"""Why a cancelled span ended: one of ``CANCEL_REASONS``."""

ATTR_CANCEL_PURGED: Final = "penguiflow.cancel.purged"
"""Items purged from the edges by the cancellation; on the ``EVENT_CANCEL`` span event (int)."""

ATTR_TRACE_ID: Final = "penguiflow.trace_id"
"""The user's trace id on the root, when it is not a W3C trace id and had to be mapped."""

ATTR_TENANT: Final = "penguiflow.tenant"
"""The ``Headers.tenant`` of the trace; on metrics only with ``tenant="spans+metrics"``."""

ATTR_MESSAGE_DEADLINE: Final = "penguiflow.message.deadline"
"""The first message's ``deadline_s``, in epoch seconds (double)."""

ATTR_TRACE_MESSAGES_DROPPED: Final = "penguiflow.trace.messages_dropped"
"""Messages of the trace dropped for any reason, set on the root at its end (int)."""

ATTR_JOIN_SIZE: Final = "penguiflow.join.size"
"""The fan-in width ``k`` on the span that completed a ``join_k`` bucket (int)."""

ATTR_JOIN_INDEX: Final = "penguiflow.join.index"
"""Arrival order of one producer, on its fan-in link (int)."""

ATTR_STREAM_CHUNKS: Final = "penguiflow.stream.chunks"
"""Chunks the attempt emitted (int)."""

ATTR_STREAM_TIME_TO_FIRST_CHUNK: Final = "penguiflow.stream.time_to_first_chunk"
"""Seconds from the attempt's start to its first chunk (double)."""

ATTR_MESSAGE_PAYLOAD: Final = "penguiflow.message.payload"
"""The redactor's view of the item's payload as JSON; only with a ``redactor``."""

ATTR_MESSAGE_META: Final = "penguiflow.message.meta"
"""The redactor's view of the item's meta as JSON; only with a ``redactor``."""

ATTR_TRACEPARENT_INVALID: Final = "penguiflow.traceparent.invalid"
"""Set to true on a root whose inbound ``traceparent`` was malformed (bool)."""

ATTR_LINK_TYPE: Final = "penguiflow.link.type"
"""What a span link points at: one of ``LINK_TYPES``."""

ATTR_DROP_REASON: Final = "penguiflow.drop.reason"
"""Why messages were dropped: one of ``DROP_REASONS`` (metrics only)."""

ATTR_CONSUMER_KIND: Final = "penguiflow.consumer.kind"
"""Which pluggable consumer raised: one of ``CONSUMER_KINDS`` (metrics only)."""

# GenAI attributes (planner.md sections 7.1 to 7.5)

ATTR_GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
"""The GenAI operation of a span or metric point: one of the ``GEN_AI_OPERATION_*`` values."""

ATTR_GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
"""The LLM provider the client talks to."""

ATTR_GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
"""The model the planner asked for."""

ATTR_GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
"""The sampling temperature sent by the built-in client (double)."""

ATTR_GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
"""Set to true on ``chat`` spans of streamed calls only (bool)."""

ATTR_GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
"""The planner's name."""

ATTR_GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
"""The planner session id; spans only, never a metric attribute."""

ATTR_GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
"""The requested output type; ``GEN_AI_OUTPUT_TYPE_JSON``."""

ATTR_GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
"""The model that answered, as the provider reports it."""

ATTR_GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
"""The provider's id of the completion; spans only."""

ATTR_GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
"""The provider's finish reasons (string array)."""

ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
"""Seconds from the request to the first streamed chunk (double)."""

ATTR_GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
"""Input tokens of a call, or their sum over a run segment (int)."""

ATTR_GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
"""Output tokens of a call, or their sum over a run segment (int)."""

ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
"""Input tokens served from the provider's cache (int)."""

ATTR_GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
"""Which tokens a ``gen_ai.client.token.usage`` point counts: a ``GEN_AI_TOKEN_TYPE_*`` value."""

ATTR_GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
"""The modality of the tokens a ``gen_ai.client.inference.usage.*`` point counts."""

ATTR_GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
"""The tool's catalog name; never a name the LLM made up."""

ATTR_GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
"""The planner's id of one tool execution (``call_<step>``, ``call_<step>_<i>``, ``call_<step>_join``)."""

ATTR_GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
"""The tool's description from the catalog."""

ATTR_GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
"""The kind of tool: a ``GEN_AI_TOOL_TYPE_*`` value."""

ATTR_GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
"""Captured input messages as JSON; only with content capture on (planner.md section 7.5)."""

ATTR_GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
"""Captured output messages as JSON; only with content capture on."""

ATTR_GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
"""Captured system prompt as JSON; only with content capture on."""

ATTR_GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
"""Captured tool catalog as JSON; only with content capture on."""

ATTR_GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
"""Captured tool arguments as JSON; only with content capture on."""

ATTR_GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
"""Captured tool result as JSON; only with content capture on."""

# Planner and LLM client attributes (planner.md section 7.2)

ATTR_PLANNER_RUN_ID: Final = "penguiflow.planner.run.id"
"""The planner run id; spans only, never a metric attribute."""

ATTR_PLANNER_MAX_ITERS: Final = "penguiflow.planner.max_iters"
"""The run's ``max_iters`` (int)."""

ATTR_PLANNER_HOP_BUDGET: Final = "penguiflow.planner.hop_budget"
"""The run's ``hop_budget``, when set (int)."""

ATTR_PLANNER_DEADLINE_S: Final = "penguiflow.planner.deadline_s"
"""The run's ``deadline_s``, when set (double)."""

ATTR_PLANNER_RESUMED: Final = "penguiflow.planner.resumed"
"""Set to true on the ``invoke_agent`` span of a ``resume()`` (bool)."""

ATTR_PLANNER_STEP_INDEX: Final = "penguiflow.planner.step.index"
"""The 0-based step a ``plan`` or ``execute_tool`` span belongs to (int)."""

ATTR_PLANNER_STEP_COUNT: Final = "penguiflow.planner.step.count"
"""Steps the run took, set at finish (int)."""

ATTR_PLANNER_HOPS_USED: Final = "penguiflow.planner.hops_used"
"""Tool executions the run started, set at finish (int)."""

ATTR_PLANNER_REPAIR_ATTEMPT: Final = "penguiflow.planner.repair.attempt"
"""Which try of the step's decision a ``chat`` span or repair event is; 1 is the first (int)."""

ATTR_PLANNER_REPAIR_COUNT: Final = "penguiflow.planner.repair.count"
"""Repairs the step needed, set when ``plan`` ends (int)."""

ATTR_PLANNER_ACTION: Final = "penguiflow.planner.action"
"""The decided action: a tool name, ``final_response``, ``parallel``, or ``OTHER`` for unknown names."""

ATTR_PLANNER_PARALLEL_INDEX: Final = "penguiflow.planner.parallel.index"
"""The branch index of a parallel ``execute_tool`` span (int)."""

ATTR_PLANNER_PARALLEL_JOIN: Final = "penguiflow.planner.parallel.join"
"""Set to true on the join's ``execute_tool`` span (bool)."""

ATTR_PLANNER_FINISH_REASON: Final = "penguiflow.planner.finish_reason"
"""How the run finished (``answer_complete``, ``no_path``, ``budget_exhausted``)."""

ATTR_PLANNER_PAUSE_REASON: Final = "penguiflow.planner.pause.reason"
"""The ``PlannerPauseReason`` of a pause."""

ATTR_PLANNER_BUDGET_KIND: Final = "penguiflow.planner.budget.kind"
"""Which budget ran out (``max_iters``, ``hop_budget``, ``deadline``)."""

ATTR_TOOL_SIDE_EFFECTS: Final = "penguiflow.tool.side_effects"
"""The tool's declared side effects (``pure``, ``read``, ``write``, ``external``, ``stateful``)."""

ATTR_TOOL_OBSERVATION_CLAMPED: Final = "penguiflow.tool.observation.clamped"
"""Set to true on ``execute_tool`` when the observation was clamped (bool)."""

ATTR_TOOL_OBSERVATION_ORIGINAL_CHARS: Final = "penguiflow.tool.observation.original_chars"
"""Length of the observation before clamping (int)."""

ATTR_TOOL_OBSERVATION_CLAMPED_CHARS: Final = "penguiflow.tool.observation.clamped_chars"
"""Length of the observation after clamping (int)."""

ATTR_LLM_RESPONSE_FORMAT: Final = "penguiflow.llm.response_format"
"""The structured-output level the call used (``json_schema``, ``json_object``, ``none``)."""

ATTR_LLM_RETRIES: Final = "penguiflow.llm.retries"
"""Retries the LLM client made inside one call (int)."""

ATTR_LLM_OUTPUT_PREVIEW: Final = "penguiflow.llm.output_preview"
"""The first 500 characters of an unparseable reply; on the repair event, with content capture only."""

# Attribute values

OUTCOME_OK: Final = "ok"
"""Returned and routed (attempt), or the trace ended without a terminal failure (root)."""

OUTCOME_ERROR: Final = "error"
"""Raised, timed out, hit its deadline or failed routing; the span's status is ERROR."""

OUTCOME_CANCELLED: Final = "cancelled"
"""Ended by trace cancellation, ``stop()`` or a non-``Exception`` ``BaseException``; status UNSET."""

OUTCOME_PAUSED: Final = "paused"
"""A planner run or tool paused for input; planner spans only, status UNSET."""

OUTCOMES: Final = (OUTCOME_OK, OUTCOME_ERROR, OUTCOME_CANCELLED, OUTCOME_PAUSED)
"""Every value of ``penguiflow.outcome``, shared by the runtime and the planner."""

ERROR_TYPE_TIMEOUT: Final = "timeout"
"""``error.type`` of an attempt or call that timed out (the policy bound or a raised ``TimeoutError``)."""

ERROR_TYPE_DEADLINE_EXCEEDED: Final = "deadline_exceeded"
"""``error.type`` of an attempt stopped by the message deadline, or of a deadline skip."""

ERROR_TYPE_JOIN_TIMEOUT: Final = "join_timeout"
"""``error.type`` of a root whose trace lost a ``join_k`` bucket to its timeout."""

ERROR_TYPE_CARDINALITY_OVERFLOW: Final = "cardinality_overflow"
"""``error.type`` on ``penguiflow.telemetry.errors``: a value was folded into ``OTHER``."""

ERROR_TYPE_INSTRUMENTATION_ERROR: Final = "instrumentation_error"
"""``error.type`` on ``penguiflow.telemetry.errors``: a hook caught an exception of its own."""

ERROR_TYPE_INVALID_OUTPUT: Final = "invalid_output"
"""``error.type`` of an ``execute_tool`` span whose tool returned output failing its model."""

ERROR_TYPE_INVALID_LLM_OUTPUT: Final = "invalid_llm_output"
"""``error.type`` of a ``plan`` span whose repairs all failed to parse."""

ERROR_TYPE_JSON_DECODE: Final = "json_decode"
"""``error.type`` of a repair whose reply was not JSON."""

ERROR_TYPE_SCHEMA_VALIDATION: Final = "schema_validation"
"""``error.type`` of a repair whose reply failed the action schema."""

OTHER: Final = "_OTHER"
"""The value that replaces any capped attribute value past its cap (section 9.4)."""

CANCEL_REASON_TRACE_CANCEL: Final = "trace_cancel"
"""``penguiflow.cancel.reason`` of spans ended by ``cancel(trace_id)``."""

CANCEL_REASON_STOP: Final = "stop"
"""``penguiflow.cancel.reason`` of spans ended by ``stop()``."""

CANCEL_REASONS: Final = (CANCEL_REASON_TRACE_CANCEL, CANCEL_REASON_STOP)
"""Every value of ``penguiflow.cancel.reason``."""

ERROR_PHASE_ROUTE: Final = "route"
"""``penguiflow.error.phase`` of a failure while routing an attempt's result."""

DROP_REASON_CANCELLED: Final = "cancelled"
"""Dropped because its trace was cancelled (purged, held or arriving later)."""

DROP_REASON_DEADLINE: Final = "deadline"
"""Skipped because its deadline passed; this series is the deadline-skip count."""

DROP_REASON_JOIN_TIMEOUT: Final = "join_timeout"
"""Parked in a ``join_k`` bucket that timed out."""

DROP_REASON_STOP: Final = "stop"
"""Queued, held, parked or unfetched when ``stop()`` ran."""

DROP_REASON_DUPLICATE: Final = "duplicate"
"""Removed by working-memory de-duplication at ingress."""

DROP_REASONS: Final = (
    DROP_REASON_CANCELLED,
    DROP_REASON_DEADLINE,
    DROP_REASON_JOIN_TIMEOUT,
    DROP_REASON_STOP,
    DROP_REASON_DUPLICATE,
)
"""Every value of ``penguiflow.drop.reason``."""

CONSUMER_KIND_STATE_STORE: Final = "state_store"
"""The flow's state store raised."""

CONSUMER_KIND_MIDDLEWARE: Final = "middleware"
"""A middleware raised."""

CONSUMER_KIND_BUS: Final = "bus"
"""The message bus raised."""

CONSUMER_KIND_REDACTOR: Final = "redactor"
"""The redactor raised."""

CONSUMER_KIND_RETRY_ON: Final = "retry_on"
"""A policy's ``retry_on`` predicate raised."""

CONSUMER_KINDS: Final = (
    CONSUMER_KIND_STATE_STORE,
    CONSUMER_KIND_MIDDLEWARE,
    CONSUMER_KIND_BUS,
    CONSUMER_KIND_REDACTOR,
    CONSUMER_KIND_RETRY_ON,
)
"""Every value of ``penguiflow.consumer.kind``."""

LINK_TYPE_CALLER: Final = "caller"
"""A root's link to the producer or caller span of another trace."""

LINK_TYPE_PRODUCER: Final = "producer"
"""A fan-in span's link to each producer of its ``join_k`` bucket."""

LINK_TYPE_RETRY: Final = "retry"
"""An attempt's link to the previous attempt it retries."""

LINK_TYPE_RESUME: Final = "resume"
"""A resumed ``invoke_agent`` span's link to the paused run's span."""

LINK_TYPES: Final = (LINK_TYPE_CALLER, LINK_TYPE_PRODUCER, LINK_TYPE_RETRY, LINK_TYPE_RESUME)
"""Every value of ``penguiflow.link.type``."""

QUEUE_NAME: Final = "{source}->{target}"
"""Template of ``penguiflow.queue.name``; the endpoints are node names, ``ingress`` or ``egress``."""

ENDPOINT_INGRESS: Final = "ingress"
"""Name of the flow's ingress in queue names, and the node of ``flow.emit_chunk`` chunks."""

ENDPOINT_EGRESS: Final = "egress"
"""Name of the flow's egress in queue names, and the node of unfetched results."""

GEN_AI_OPERATION_INVOKE_AGENT: Final = "invoke_agent"
"""``gen_ai.operation.name`` of ``invoke_agent`` spans."""

GEN_AI_OPERATION_PLAN: Final = "plan"
"""``gen_ai.operation.name`` of ``plan`` spans."""

GEN_AI_OPERATION_CHAT: Final = "chat"
"""``gen_ai.operation.name`` of ``chat`` spans and LLM client metrics."""

GEN_AI_OPERATION_EXECUTE_TOOL: Final = "execute_tool"
"""``gen_ai.operation.name`` of ``execute_tool`` spans."""

GEN_AI_OUTPUT_TYPE_JSON: Final = "json"
"""``gen_ai.output.type`` of every planner ``chat`` call."""

GEN_AI_TOOL_TYPE_FUNCTION: Final = "function"
"""``gen_ai.tool.type`` of catalog tools."""

GEN_AI_TOOL_TYPE_EXTENSION: Final = "extension"
"""``gen_ai.tool.type`` reserved for the later MCP tools."""

GEN_AI_TOKEN_TYPE_INPUT: Final = "input"
"""``gen_ai.token.type`` of input (prompt) tokens."""

GEN_AI_TOKEN_TYPE_OUTPUT: Final = "output"
"""``gen_ai.token.type`` of output (completion) tokens."""

GEN_AI_TOKEN_MODALITY_TEXT: Final = "text"
"""``gen_ai.token.modality`` of the planner's calls: it sends and reads text only."""

SEMCONV_OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
"""Comma-separated opt-ins to newer semantic conventions (semconv transition plan)."""

SEMCONV_OPT_IN_GENAI_LATEST: Final = "gen_ai_latest_experimental"
"""The opt-in that adds the ``gen_ai.client.inference.usage.*`` token counters (planner.md section 7.3)."""

# Cardinality caps (telemetry.md section 9.4)

ERROR_TYPE_CAP: Final = 50
"""Distinct ``error.type`` values per instrument before new ones become ``OTHER``."""

TENANT_CAP: Final = 100
"""Distinct ``penguiflow.tenant`` values on metrics before new ones become ``OTHER``."""

REQUEST_MODEL_CAP: Final = 50
"""Distinct ``gen_ai.request.model`` values per instrument before new ones become ``OTHER``."""

TOOL_NAME_CAP: Final = 256
"""Distinct ``gen_ai.tool.name`` values per instrument before new ones become ``OTHER``."""

SDK_CARDINALITY_LIMIT: Final = 2000
"""The SDK's own last-resort cap on attribute sets per stream and reader (not ours; for reference)."""

# Histogram buckets (telemetry.md section 9.2, planner.md section 7.3), written as floats so that
# the exported ``le`` strings read ``1.0``, never ``1``.

TRACE_S: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Boundaries in seconds of ``penguiflow.trace.duration``."""

NODE_S: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Boundaries in seconds of ``penguiflow.node.duration``."""

QUEUE_S: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Boundaries in seconds of the queue wait and blocked-put histograms."""

GENAI_S: Final[tuple[float, ...]] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""The semantic conventions' advisory boundaries in seconds for GenAI durations (doubling from 0.01)."""

GENAI_TOKENS: Final[tuple[float, ...]] = (
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
)  # fmt: skip
"""The semantic conventions' advisory boundaries for token counts (powers of 4 up to 4**13)."""

INVOKE_AGENT_S: Final[tuple[float, ...]] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
"""Boundaries in seconds of ``gen_ai.invoke_agent.duration``."""

PLANNER_STEPS: Final[tuple[float, ...]] = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
"""Boundaries of ``penguiflow.planner.steps``, in steps per run."""

# Prometheus exposition (telemetry.md sections 9.5 and 10)

SCOPE_LABELS: Final = ("otel_scope_name", "otel_scope_schema_url", "otel_scope_version")
"""Labels the Prometheus exporter adds to every series: scope name, schema URL and version."""

TARGET_INFO: Final = "target_info"
"""The exporter's resource series (``service_name``, ``service_instance_id``, ``telemetry_sdk_*``)."""

SDK_SCOPE_NAME: Final = "opentelemetry-sdk"
"""``otel_scope_name`` of the SDK's own metrics."""

SDK_SPAN_PROCESSED_TOTAL: Final = "otel_sdk_processor_span_processed_total"
"""SDK metric: spans a processor finished; ``error_type="queue_full"`` counts spans the BSP dropped."""

SDK_SPAN_QUEUE_SIZE: Final = "otel_sdk_processor_span_queue_size"
"""SDK metric: spans waiting in a batch processor's queue."""

SDK_SPAN_QUEUE_CAPACITY: Final = "otel_sdk_processor_span_queue_capacity"
"""SDK metric: the capacity of a batch processor's queue."""

SDK_SPAN_EXPORTED_TOTAL: Final = "otel_sdk_exporter_span_exported_total"
"""SDK metric: spans an exporter finished; ``error_type`` is the exception class of failed exports."""

SDK_SELF_METRIC_SAMPLES: Final = (
    SDK_SPAN_PROCESSED_TOTAL,
    SDK_SPAN_QUEUE_SIZE,
    SDK_SPAN_QUEUE_CAPACITY,
    SDK_SPAN_EXPORTED_TOTAL,
)
"""The SDK self-health samples dashboards and alerts may use (emitted by the SDK, not by us)."""

SDK_ERROR_TYPE_QUEUE_FULL: Final = "queue_full"
"""``error_type`` of spans the batch processor dropped because its queue was full."""

SDK_ERROR_TYPE_ALREADY_SHUTDOWN: Final = "already_shutdown"
"""``error_type`` of spans a processor received after its shutdown."""

# Metric catalog (telemetry.md section 9.3, planner.md section 7.3)

InstrumentKind: TypeAlias = Literal["histogram", "counter", "up_down_counter", "observable_up_down_counter"]
"""The OpenTelemetry instrument a metric is created as."""


@dataclass(frozen=True, slots=True)
class MetricAttribute:
    """One attribute of a metric; ``optional`` ones are set on some data points only.

    The exporter gives every series of a family the same labels: where another point carries an
    optional attribute, a point without it exports the label as ``""``, so ``{error_type!=""}``
    selects failures.
    """

    key: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One instrument and the Prometheus names the locked exporter gives it.

    ``prometheus`` is the family name of the ``# TYPE`` line in the classic text exposition
    (``prometheus_client.generate_latest``); counters keep their ``_total`` there, while the
    OpenMetrics exposition names the family without it. ``samples`` are the sample names Prometheus
    stores and queries use: ``_bucket``, ``_sum`` and ``_count`` for histograms, ``_total`` for
    counters, the family name itself for up-down counters, which are exported as gauges.
    """

    name: str
    instrument: InstrumentKind
    unit: str
    description: str
    attributes: tuple[MetricAttribute, ...]
    buckets: tuple[float, ...] | None
    prometheus: str
    samples: tuple[str, ...]

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        """The keys of every attribute, optional ones included, in catalog order."""
        return tuple(attribute.key for attribute in self.attributes)


METRIC_TRACE_DURATION: Final = MetricSpec(
    name="penguiflow.trace.duration",
    instrument="histogram",
    unit="s",
    description="Duration of a flow trace, from its first message entering the flow to its end.",
    attributes=(
        MetricAttribute(ATTR_FLOW_NAME),
        MetricAttribute(ATTR_OUTCOME),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
        MetricAttribute(ATTR_TENANT, optional=True),
    ),
    buckets=TRACE_S,
    prometheus="penguiflow_trace_duration_seconds",
    samples=(
        "penguiflow_trace_duration_seconds_bucket",
        "penguiflow_trace_duration_seconds_sum",
        "penguiflow_trace_duration_seconds_count",
    ),
)
"""One point per ended trace; ``error.type`` on failed traces, the tenant only when opted in."""

METRIC_TRACE_ACTIVE: Final = MetricSpec(
    name="penguiflow.trace.active",
    instrument="observable_up_down_counter",
    unit="{trace}",
    description="Flow traces started and not yet ended.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME),),
    buckets=None,
    prometheus="penguiflow_trace_active",
    samples=("penguiflow_trace_active",),
)
"""The runtime's active-trace count per flow, read at collection time."""

METRIC_TRACE_CANCELLATIONS: Final = MetricSpec(
    name="penguiflow.trace.cancellations",
    instrument="counter",
    unit="{trace}",
    description="Flow traces whose cancellation was accepted.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_TENANT, optional=True)),
    buckets=None,
    prometheus="penguiflow_trace_cancellations_total",
    samples=("penguiflow_trace_cancellations_total",),
)
"""Counts once per trace, on its first accepted ``cancel()``."""

METRIC_NODE_DURATION: Final = MetricSpec(
    name="penguiflow.node.duration",
    instrument="histogram",
    unit="s",
    description="Duration of one node invocation, routing excluded.",
    attributes=(
        MetricAttribute(ATTR_FLOW_NAME),
        MetricAttribute(ATTR_NODE_NAME),
        MetricAttribute(ATTR_OUTCOME),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
    ),
    buckets=NODE_S,
    prometheus="penguiflow_node_duration_seconds",
    samples=(
        "penguiflow_node_duration_seconds_bucket",
        "penguiflow_node_duration_seconds_sum",
        "penguiflow_node_duration_seconds_count",
    ),
)
"""One point per attempt, retries included; ``error.type`` on failed attempts."""

METRIC_NODE_ACTIVE: Final = MetricSpec(
    name="penguiflow.node.active",
    instrument="observable_up_down_counter",
    unit="{invocation}",
    description="Items a node's workers hold right now.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_NODE_NAME)),
    buckets=None,
    prometheus="penguiflow_node_active",
    samples=("penguiflow_node_active",),
)
"""The runtime's in-flight count per node, read at collection time."""

METRIC_NODE_ACTIVE_LIMIT: Final = MetricSpec(
    name="penguiflow.node.active.limit",
    instrument="observable_up_down_counter",
    unit="{invocation}",
    description="Items a node's workers may hold at once (its concurrency).",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_NODE_NAME)),
    buckets=None,
    prometheus="penguiflow_node_active_limit",
    samples=("penguiflow_node_active_limit",),
)
"""``NodePolicy.concurrency`` per node, read at collection time."""

METRIC_NODE_RETRIES: Final = MetricSpec(
    name="penguiflow.node.retries",
    instrument="counter",
    unit="{retry}",
    description="Failed node attempts that were retried.",
    attributes=(
        MetricAttribute(ATTR_FLOW_NAME),
        MetricAttribute(ATTR_NODE_NAME),
        MetricAttribute(ATTR_ERROR_TYPE),
    ),
    buckets=None,
    prometheus="penguiflow_node_retries_total",
    samples=("penguiflow_node_retries_total",),
)
"""One per scheduled retry, labelled with the failure that caused it."""

METRIC_NODE_FAILURES: Final = MetricSpec(
    name="penguiflow.node.failures",
    instrument="counter",
    unit="{failure}",
    description="Terminal node failures, after any retries.",
    attributes=(
        MetricAttribute(ATTR_FLOW_NAME),
        MetricAttribute(ATTR_NODE_NAME),
        MetricAttribute(ATTR_ERROR_TYPE),
    ),
    buckets=None,
    prometheus="penguiflow_node_failures_total",
    samples=("penguiflow_node_failures_total",),
)
"""One per ``node_failed`` point, labelled with the final failure."""

METRIC_QUEUE_SIZE: Final = MetricSpec(
    name="penguiflow.queue.size",
    instrument="observable_up_down_counter",
    unit="{message}",
    description="Messages waiting in an edge.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_QUEUE_NAME)),
    buckets=None,
    prometheus="penguiflow_queue_size",
    samples=("penguiflow_queue_size",),
)
"""Each edge's ``qsize()``, read at collection time."""

METRIC_QUEUE_CAPACITY: Final = MetricSpec(
    name="penguiflow.queue.capacity",
    instrument="observable_up_down_counter",
    unit="{message}",
    description="Capacity of a bounded edge.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_QUEUE_NAME)),
    buckets=None,
    prometheus="penguiflow_queue_capacity",
    samples=("penguiflow_queue_capacity",),
)
"""Each bounded node or ingress edge's ``maxsize``; unbounded and egress edges report none."""

METRIC_QUEUE_WAIT_DURATION: Final = MetricSpec(
    name="penguiflow.queue.wait.duration",
    instrument="histogram",
    unit="s",
    description="Time a message waited in an edge before a worker or fetch took it.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_QUEUE_NAME)),
    buckets=QUEUE_S,
    prometheus="penguiflow_queue_wait_duration_seconds",
    samples=(
        "penguiflow_queue_wait_duration_seconds_bucket",
        "penguiflow_queue_wait_duration_seconds_sum",
        "penguiflow_queue_wait_duration_seconds_count",
    ),
)
"""One point per dequeue or fetched result."""

METRIC_QUEUE_BLOCKED_DURATION: Final = MetricSpec(
    name="penguiflow.queue.blocked.duration",
    instrument="histogram",
    unit="s",
    description="Time a put waited for room in a full edge.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_QUEUE_NAME)),
    buckets=QUEUE_S,
    prometheus="penguiflow_queue_blocked_duration_seconds",
    samples=(
        "penguiflow_queue_blocked_duration_seconds_bucket",
        "penguiflow_queue_blocked_duration_seconds_sum",
        "penguiflow_queue_blocked_duration_seconds_count",
    ),
)
"""One point per completed put that had to wait; puts that never complete record nothing."""

METRIC_MESSAGE_DROPPED: Final = MetricSpec(
    name="penguiflow.message.dropped",
    instrument="counter",
    unit="{message}",
    description="Messages discarded without being processed.",
    attributes=(
        MetricAttribute(ATTR_FLOW_NAME),
        MetricAttribute(ATTR_NODE_NAME),
        MetricAttribute(ATTR_DROP_REASON),
    ),
    buckets=None,
    prometheus="penguiflow_message_dropped_total",
    samples=("penguiflow_message_dropped_total",),
)
"""Drops by reason; ``reason="deadline"`` is the deadline-skip count."""

METRIC_STREAM_CHUNKS: Final = MetricSpec(
    name="penguiflow.stream.chunks",
    instrument="counter",
    unit="{chunk}",
    description="Stream chunks emitted.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_NODE_NAME)),
    buckets=None,
    prometheus="penguiflow_stream_chunks_total",
    samples=("penguiflow_stream_chunks_total",),
)
"""One per ``emit_chunk``; the node is ``ingress`` for ``flow.emit_chunk``."""

METRIC_PROPAGATION_INVALID: Final = MetricSpec(
    name="penguiflow.propagation.invalid",
    instrument="counter",
    unit="{header}",
    description="Inbound trace-context headers that were present but invalid.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME, optional=True),),
    buckets=None,
    prometheus="penguiflow_propagation_invalid_total",
    samples=("penguiflow_propagation_invalid_total",),
)
"""Malformed ``traceparent`` values; no flow attribute when counted by ``headers_from_carrier``."""

METRIC_CONSUMER_FAILURES: Final = MetricSpec(
    name="penguiflow.consumer.failures",
    instrument="counter",
    unit="{failure}",
    description="Exceptions raised by a pluggable consumer and contained by the runtime.",
    attributes=(MetricAttribute(ATTR_FLOW_NAME), MetricAttribute(ATTR_CONSUMER_KIND)),
    buckets=None,
    prometheus="penguiflow_consumer_failures_total",
    samples=("penguiflow_consumer_failures_total",),
)
"""State store, middleware, bus, redactor or ``retry_on`` failures."""

METRIC_TELEMETRY_ERRORS: Final = MetricSpec(
    name="penguiflow.telemetry.errors",
    instrument="counter",
    unit="{error}",
    description="Problems inside penguiflow's own telemetry that it contained.",
    attributes=(MetricAttribute(ATTR_ERROR_TYPE),),
    buckets=None,
    prometheus="penguiflow_telemetry_errors_total",
    samples=("penguiflow_telemetry_errors_total",),
)
"""``cardinality_overflow`` or ``instrumentation_error``."""

METRIC_GEN_AI_CLIENT_OPERATION_DURATION: Final = MetricSpec(
    name="gen_ai.client.operation.duration",
    instrument="histogram",
    unit="s",
    description="Duration of one LLM call as the client saw it.",
    attributes=(
        MetricAttribute(ATTR_GEN_AI_OPERATION_NAME),
        MetricAttribute(ATTR_GEN_AI_PROVIDER_NAME),
        MetricAttribute(ATTR_GEN_AI_REQUEST_MODEL, optional=True),
        MetricAttribute(ATTR_GEN_AI_RESPONSE_MODEL, optional=True),
        MetricAttribute(ATTR_SERVER_ADDRESS, optional=True),
        MetricAttribute(ATTR_SERVER_PORT, optional=True),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
    ),
    buckets=GENAI_S,
    prometheus="gen_ai_client_operation_duration_seconds",
    samples=(
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_duration_seconds_sum",
        "gen_ai_client_operation_duration_seconds_count",
    ),
)
"""One point per ``chat`` call, repairs included; ``error.type`` on failed calls."""

METRIC_GEN_AI_CLIENT_TOKEN_USAGE: Final = MetricSpec(
    name="gen_ai.client.token.usage",
    instrument="histogram",
    unit="{token}",
    description="Tokens used by one LLM call, by token type.",
    attributes=(
        MetricAttribute(ATTR_GEN_AI_OPERATION_NAME),
        MetricAttribute(ATTR_GEN_AI_PROVIDER_NAME),
        MetricAttribute(ATTR_GEN_AI_TOKEN_TYPE),
        MetricAttribute(ATTR_GEN_AI_REQUEST_MODEL, optional=True),
        MetricAttribute(ATTR_GEN_AI_RESPONSE_MODEL, optional=True),
        MetricAttribute(ATTR_SERVER_ADDRESS, optional=True),
        MetricAttribute(ATTR_SERVER_PORT, optional=True),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
    ),
    buckets=GENAI_TOKENS,
    prometheus="gen_ai_client_token_usage",
    samples=(
        "gen_ai_client_token_usage_bucket",
        "gen_ai_client_token_usage_sum",
        "gen_ai_client_token_usage_count",
    ),
)
"""Two points per call whose usage is known (input and output); the unit adds no suffix."""


def _inference_usage(kind: str, description: str) -> MetricSpec:
    """``gen_ai.client.inference.usage.{kind}_tokens``, a semconv-genai token counter (planner.md 7.3).

    Only under ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, beside
    ``gen_ai.client.token.usage``.
    """
    prometheus = f"gen_ai_client_inference_usage_{kind}_tokens_total"
    return MetricSpec(
        name=f"gen_ai.client.inference.usage.{kind}_tokens",
        instrument="counter",
        unit="{token}",
        description=description,
        attributes=(
            MetricAttribute(ATTR_GEN_AI_OPERATION_NAME),
            MetricAttribute(ATTR_GEN_AI_PROVIDER_NAME),
            MetricAttribute(ATTR_GEN_AI_TOKEN_MODALITY),
            MetricAttribute(ATTR_GEN_AI_REQUEST_MODEL, optional=True),
            MetricAttribute(ATTR_GEN_AI_RESPONSE_MODEL, optional=True),
            MetricAttribute(ATTR_SERVER_ADDRESS, optional=True),
            MetricAttribute(ATTR_SERVER_PORT, optional=True),
        ),
        buckets=None,
        prometheus=prometheus,
        samples=(prometheus,),
    )


METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: Final = _inference_usage(
    "input", "Input (prompt) tokens used by LLM calls, cached tokens included."
)
"""Input tokens per call, under the opt-in (see ``_inference_usage``)."""

METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: Final = _inference_usage(
    "output", "Output (completion) tokens used by LLM calls, reasoning tokens included."
)
"""Output tokens per call, under the opt-in (see ``_inference_usage``)."""

METRIC_GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK: Final = MetricSpec(
    name="gen_ai.client.operation.time_to_first_chunk",
    instrument="histogram",
    unit="s",
    description="Time from an LLM request to its first streamed chunk.",
    attributes=(
        MetricAttribute(ATTR_GEN_AI_OPERATION_NAME),
        MetricAttribute(ATTR_GEN_AI_PROVIDER_NAME),
        MetricAttribute(ATTR_GEN_AI_REQUEST_MODEL, optional=True),
        MetricAttribute(ATTR_GEN_AI_RESPONSE_MODEL, optional=True),
        MetricAttribute(ATTR_SERVER_ADDRESS, optional=True),
        MetricAttribute(ATTR_SERVER_PORT, optional=True),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
    ),
    buckets=GENAI_S,
    prometheus="gen_ai_client_operation_time_to_first_chunk_seconds",
    samples=(
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_sum",
        "gen_ai_client_operation_time_to_first_chunk_seconds_count",
    ),
)
"""One point per streamed call that produced a chunk."""

METRIC_GEN_AI_INVOKE_AGENT_DURATION: Final = MetricSpec(
    name="gen_ai.invoke_agent.duration",
    instrument="histogram",
    unit="s",
    description="Duration of one planner run or resume.",
    attributes=(
        MetricAttribute(ATTR_GEN_AI_AGENT_NAME),
        MetricAttribute(ATTR_GEN_AI_PROVIDER_NAME),
        MetricAttribute(ATTR_OUTCOME),
        MetricAttribute(ATTR_GEN_AI_REQUEST_MODEL, optional=True),
        MetricAttribute(ATTR_PLANNER_FINISH_REASON, optional=True),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
    ),
    buckets=INVOKE_AGENT_S,
    prometheus="gen_ai_invoke_agent_duration_seconds",
    samples=(
        "gen_ai_invoke_agent_duration_seconds_bucket",
        "gen_ai_invoke_agent_duration_seconds_sum",
        "gen_ai_invoke_agent_duration_seconds_count",
    ),
)
"""One point per ``invoke_agent`` span; the finish reason only when the run finished."""

METRIC_GEN_AI_EXECUTE_TOOL_DURATION: Final = MetricSpec(
    name="gen_ai.execute_tool.duration",
    instrument="histogram",
    unit="s",
    description="Duration of one tool execution.",
    attributes=(
        MetricAttribute(ATTR_GEN_AI_AGENT_NAME),
        MetricAttribute(ATTR_GEN_AI_TOOL_NAME),
        MetricAttribute(ATTR_OUTCOME),
        MetricAttribute(ATTR_ERROR_TYPE, optional=True),
    ),
    buckets=GENAI_S,
    prometheus="gen_ai_execute_tool_duration_seconds",
    samples=(
        "gen_ai_execute_tool_duration_seconds_bucket",
        "gen_ai_execute_tool_duration_seconds_sum",
        "gen_ai_execute_tool_duration_seconds_count",
    ),
)
"""One point per ``execute_tool`` span: single calls, branches and joins."""

METRIC_PLANNER_RUNS_ACTIVE: Final = MetricSpec(
    name="penguiflow.planner.runs.active",
    instrument="up_down_counter",
    unit="{run}",
    description="Planner runs in progress.",
    attributes=(MetricAttribute(ATTR_GEN_AI_AGENT_NAME),),
    buckets=None,
    prometheus="penguiflow_planner_runs_active",
    samples=("penguiflow_planner_runs_active",),
)
"""+1 at ``run_start`` or ``resume``, -1 at ``run_end``, with the same attributes."""

METRIC_PLANNER_STEPS: Final = MetricSpec(
    name="penguiflow.planner.steps",
    instrument="histogram",
    unit="{step}",
    description="Steps one planner run took.",
    attributes=(MetricAttribute(ATTR_GEN_AI_AGENT_NAME), MetricAttribute(ATTR_OUTCOME)),
    buckets=PLANNER_STEPS,
    prometheus="penguiflow_planner_steps",
    samples=(
        "penguiflow_planner_steps_bucket",
        "penguiflow_planner_steps_sum",
        "penguiflow_planner_steps_count",
    ),
)
"""One point per ``run_end``; the unit adds no suffix."""

METRIC_PLANNER_REPAIRS: Final = MetricSpec(
    name="penguiflow.planner.repairs",
    instrument="counter",
    unit="{repair}",
    description="LLM replies that failed to parse and were retried.",
    attributes=(MetricAttribute(ATTR_GEN_AI_AGENT_NAME), MetricAttribute(ATTR_ERROR_TYPE)),
    buckets=None,
    prometheus="penguiflow_planner_repairs_total",
    samples=("penguiflow_planner_repairs_total",),
)
"""One per ``repair_attempt``; ``error.type`` is ``json_decode`` or ``schema_validation``."""

METRIC_PLANNER_PAUSES: Final = MetricSpec(
    name="penguiflow.planner.pauses",
    instrument="counter",
    unit="{pause}",
    description="Planner runs paused for input.",
    attributes=(MetricAttribute(ATTR_GEN_AI_AGENT_NAME), MetricAttribute(ATTR_PLANNER_PAUSE_REASON)),
    buckets=None,
    prometheus="penguiflow_planner_pauses_total",
    samples=("penguiflow_planner_pauses_total",),
)
"""One per ``pause``."""

METRIC_PLANNER_BUDGET_EXHAUSTIONS: Final = MetricSpec(
    name="penguiflow.planner.budget.exhaustions",
    instrument="counter",
    unit="{run}",
    description="Planner runs that ran out of a budget.",
    attributes=(MetricAttribute(ATTR_GEN_AI_AGENT_NAME), MetricAttribute(ATTR_PLANNER_BUDGET_KIND)),
    buckets=None,
    prometheus="penguiflow_planner_budget_exhaustions_total",
    samples=("penguiflow_planner_budget_exhaustions_total",),
)
"""One per ``budget_exhausted``, by budget kind."""

RUNTIME_METRICS: Final = (
    METRIC_TRACE_DURATION,
    METRIC_TRACE_ACTIVE,
    METRIC_TRACE_CANCELLATIONS,
    METRIC_NODE_DURATION,
    METRIC_NODE_ACTIVE,
    METRIC_NODE_ACTIVE_LIMIT,
    METRIC_NODE_RETRIES,
    METRIC_NODE_FAILURES,
    METRIC_QUEUE_SIZE,
    METRIC_QUEUE_CAPACITY,
    METRIC_QUEUE_WAIT_DURATION,
    METRIC_QUEUE_BLOCKED_DURATION,
    METRIC_MESSAGE_DROPPED,
    METRIC_STREAM_CHUNKS,
    METRIC_PROPAGATION_INVALID,
    METRIC_CONSUMER_FAILURES,
    METRIC_TELEMETRY_ERRORS,
)
"""The instruments of scope ``SCOPE_NAME``, in the order of telemetry.md section 9.3."""

PLANNER_METRICS: Final = (
    METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
    METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
    METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
    METRIC_GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
    METRIC_GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
    METRIC_GEN_AI_INVOKE_AGENT_DURATION,
    METRIC_GEN_AI_EXECUTE_TOOL_DURATION,
    METRIC_PLANNER_RUNS_ACTIVE,
    METRIC_PLANNER_STEPS,
    METRIC_PLANNER_REPAIRS,
    METRIC_PLANNER_PAUSES,
    METRIC_PLANNER_BUDGET_EXHAUSTIONS,
)
"""The instruments of scope ``PLANNER_SCOPE_NAME``, in the order of planner.md section 7.3."""

METRICS: Final[tuple[MetricSpec, ...]] = RUNTIME_METRICS + PLANNER_METRICS
"""Every instrument penguiflow_otel creates, runtime first."""
