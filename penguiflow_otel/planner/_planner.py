"""``ReactPlanner``: configuration, ``run()`` / ``resume()`` / ``step()``, sessions and the agent span."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from .._clock import Clock
from .._registry import ModelRegistry
from ..llm._types import JSONLLMClient
from ..telemetry import names as n
from ..telemetry._resolve import Providers, resolve_providers
from ._actions import PlannerAction, response_format
from ._catalog import NodeSpec, ToolPolicy, build_catalog, check_catalog
from ._clamp import ObservationGuardrailConfig
from ._config import PlannerConfig, build_client, clock_functions, require_positive
from ._errors import InvalidLLMOutputError, PauseTokenError
from ._events import EventCallback, EventEmitter
from ._memory import (
    InMemoryShortTermMemory,
    MemoryIsolation,
    MemoryKey,
    ShortTermMemory,
    ShortTermMemoryConfig,
    resolve_memory_key,
)
from ._pause import RECORD_VERSION, InMemoryPlannerStateStore, PlannerStateStore
from ._repair import decide
from ._results import PlannerFinish, PlannerPause
from ._run import Finish, Pause, PlannerRun, json_safe_entries
from ._telemetry import AgentInfo, RunTelemetry, capture_enabled, content_json, resume_links, span_ids
from ._trajectory import Trajectory, new_llm_record

__all__ = ["ReactPlanner"]

LOGGER = logging.getLogger("penguiflow_otel.planner")
_AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ReactPlanner:
    """An LLM planner over a typed tool catalog (planner.md section 4).

    Immutable configuration with no per-run state: ``run()`` and ``resume()`` may proceed
    concurrently on one instance; calls of one session (``tool_context["session_id"]``) are serialised.

    Raises:
        ValueError: Neither ``catalog`` nor ``nodes``; neither ``llm`` nor ``llm_client``; a bad setting.
        CatalogError: The catalog fails its checks.
        TypeError: An unknown (for example out-of-scope upstream) keyword argument.
    """

    def __init__(
        self,
        llm: str | Mapping[str, Any] | None = None,
        *,
        llm_client: JSONLLMClient | None = None,
        catalog: Sequence[NodeSpec] | None = None,
        nodes: Sequence[object] | None = None,
        registry: ModelRegistry | None = None,
        max_iters: int = 8,
        temperature: float = 0.0,
        json_schema_mode: bool = True,
        system_prompt_extra: str | None = None,
        pause_enabled: bool = True,
        state_store: PlannerStateStore | None = None,
        observation_guardrail: ObservationGuardrailConfig | None = None,
        repair_attempts: int = 3,
        max_consecutive_arg_failures: int = 3,
        deadline_s: float | None = None,
        hop_budget: int | None = None,
        time_source: Clock | Callable[[], float] | None = None,
        event_callback: EventCallback | None = None,
        llm_timeout_s: float = 360.0,
        llm_max_retries: int = 3,
        reasoning_effort: str | None = None,
        absolute_max_parallel: int = 50,
        tool_policy: ToolPolicy | None = None,
        stream_final_response: bool = False,
        short_term_memory: ShortTermMemoryConfig | ShortTermMemory | None = None,
        name: str = "react_planner",
        max_parallel: int = 10,
        tool_timeout_s: float | None = 60.0,
        pause_ttl_s: float | None = 86_400.0,
        capture_content: bool | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not _AGENT_NAME.match(name):
            raise ValueError(f"name must match ^[A-Za-z0-9_.-]{{1,64}}$, got {name!r}")
        for label, value in (
            ("max_iters", max_iters),
            ("repair_attempts", repair_attempts),
            ("max_consecutive_arg_failures", max_consecutive_arg_failures),
            ("absolute_max_parallel", absolute_max_parallel),
            ("max_parallel", max_parallel),
        ):
            require_positive(label, value, allow_none=False)
        for label, optional in (
            ("deadline_s", deadline_s),
            ("tool_timeout_s", tool_timeout_s),
            ("pause_ttl_s", pause_ttl_s),
        ):
            require_positive(label, optional)
        if hop_budget is not None and hop_budget < 0:
            raise ValueError(f"hop_budget must be >= 0, got {hop_budget!r}")
        if catalog is not None:
            specs = check_catalog(catalog)
        elif nodes is not None:
            specs = build_catalog(nodes, registry)
        else:
            raise ValueError("ReactPlanner needs catalog= (NodeSpecs) or nodes= (tool functions or Nodes)")
        if tool_policy is not None:
            specs = [spec for spec in specs if tool_policy.includes(spec)]
        if llm_client is None:
            if llm is None:
                raise ValueError("ReactPlanner needs llm= (a model string or settings dict) or llm_client=")
            llm_client = build_client(
                llm,
                temperature=temperature,
                timeout_s=llm_timeout_s,
                max_retries=llm_max_retries,
                reasoning_effort=reasoning_effort,
            )
            used_temperature: float | None = temperature
        else:
            used_temperature = None
        memory, memory_config = self._memory(short_term_memory)
        monotonic, wall = clock_functions(time_source)
        self._providers = (tracer_provider, meter_provider)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._config = PlannerConfig(
            name=name,
            client=llm_client,
            temperature=used_temperature,
            catalog={spec.name: spec for spec in specs},
            system_prompt_extra=system_prompt_extra,
            response_format=response_format(json_schema_mode),
            max_iters=max_iters,
            repair_attempts=repair_attempts,
            max_consecutive_arg_failures=max_consecutive_arg_failures,
            deadline_s=deadline_s,
            hop_budget=hop_budget,
            absolute_max_parallel=absolute_max_parallel,
            max_parallel=max_parallel,
            tool_timeout_s=tool_timeout_s,
            pause_enabled=pause_enabled,
            pause_ttl_s=pause_ttl_s,
            state_store=state_store if state_store is not None else InMemoryPlannerStateStore(),
            guardrail=observation_guardrail or ObservationGuardrailConfig(),
            stream=stream_final_response,
            memory=memory,
            memory_config=memory_config,
            event_callback=event_callback,
            capture_content=capture_content,
            monotonic=monotonic,
            wall=wall,
        )

    @staticmethod
    def _memory(
        setting: ShortTermMemoryConfig | ShortTermMemory | None,
    ) -> tuple[ShortTermMemory | None, ShortTermMemoryConfig | None]:
        if setting is None:
            return None, None
        if isinstance(setting, ShortTermMemoryConfig):
            if setting.strategy == "none":
                return None, setting
            return InMemoryShortTermMemory(setting), setting
        if isinstance(setting, ShortTermMemory):
            return setting, None
        raise TypeError("short_term_memory must be a ShortTermMemoryConfig or a ShortTermMemory")

    def __repr__(self) -> str:
        return f"ReactPlanner(name={self.name!r}, tools={list(self._config.catalog)!r})"

    @property
    def name(self) -> str:
        """The agent name (``gen_ai.agent.name``)."""
        return self._config.name

    @property
    def catalog(self) -> tuple[NodeSpec, ...]:
        """The tools this planner may call, after the tool policy."""
        return tuple(self._config.catalog.values())

    @property
    def llm_client(self) -> JSONLLMClient:
        """The LLM client."""
        return self._config.client

    @property
    def state_store(self) -> PlannerStateStore:
        """Where pause records are kept."""
        return self._config.state_store

    # Public calls ---------------------------------------------------------------------------

    async def run(
        self,
        query: str,
        *,
        llm_context: Mapping[str, Any] | None = None,
        tool_context: dict[str, Any] | None = None,
        memory_key: MemoryKey | None = None,
        event_callback: EventCallback | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Plan and act until the query is answered, a budget runs out, or a tool pauses the run.

        Raises:
            TypeError: ``llm_context`` is not JSON-serialisable (raised before anything starts).
            asyncio.CancelledError: The caller cancelled; every span has ended.
        """
        llm_ctx = _json_copy(llm_context)
        tools = tool_context if tool_context is not None else {}
        session_id = tools.get("session_id") or (memory_key.session_id if memory_key is not None else None)
        trajectory = Trajectory(
            query=query,
            run_id=uuid.uuid4().hex,
            session_id=str(session_id) if session_id is not None else None,
            llm_context=llm_ctx,
            tool_context=json_safe_entries(tools)[0],
        )
        async with self._session(trajectory.session_id):
            return await self._drive(trajectory, tools, None, memory_key, event_callback, None)

    async def resume(
        self,
        token: str,
        user_input: str | None = None,
        *,
        tool_context: dict[str, Any] | None = None,
        memory_key: MemoryKey | None = None,
        event_callback: EventCallback | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Continue a paused run; the paused tool is not re-executed.

        Raises:
            PauseTokenError: The token is unknown, expired or already used (``.reason``).
            ValueError: The record has an unsupported ``version``.
        """
        record = await self._load(token)
        trajectory = Trajectory.from_serialised(record["trajectory"])
        tools = {**dict(record.get("tool_context") or {}), **(tool_context or {})}
        if user_input is not None:
            trajectory.resume_inputs.append(
                {"after_step": len(trajectory.steps), "user_input": user_input, "at": self._config.wall()}
            )
        async with self._session(trajectory.session_id):
            return await self._drive(trajectory, tools, record, memory_key, event_callback, user_input)

    async def step(self, trajectory: Trajectory) -> PlannerAction:
        """One decision with repair for ``trajectory``; no tool runs and no step is appended.

        Raises:
            InvalidLLMOutputError: Repair gave up.
            LLMError: The client failed (after its retries).
        """
        copy = Trajectory.from_serialised(trajectory.serialise())
        telemetry = self._telemetry(capture_enabled(self._config.capture_content))
        current = trace.get_current_span()
        emitter = EventEmitter(
            (), run_id=copy.run_id, session_id=copy.session_id, capture_content=telemetry.capture
        )
        run = self._new_run(copy, telemetry, emitter, current, {}, None, None)
        plan_span = telemetry.start_span(
            n.SPAN_PLAN.format(planner=self.name),
            n.GEN_AI_OPERATION_PLAN,
            run.agent_ctx,
            attributes={n.ATTR_PLANNER_STEP_INDEX: len(copy.steps)},
        )
        try:
            decision = await decide(run, plan_span, new_llm_record())
        finally:
            plan_span.end()
        if decision.action is not None:
            return decision.action
        if isinstance(decision.cause, Exception):
            raise decision.cause
        raise InvalidLLMOutputError(str(decision.last_error), str(decision.raw_preview or ""))

    # Internals ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _session(self, session_id: str | None) -> AsyncIterator[None]:
        if session_id is None:
            yield
            return
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        async with lock:
            yield

    async def _load(self, token: str) -> dict[str, Any]:
        record = await self._config.state_store.load_planner_state(token)
        if record is None:
            raise PauseTokenError("unknown")
        if record.get("version") != RECORD_VERSION:
            raise ValueError(
                f"unsupported pause record version {record.get('version')!r}; this planner reads version 1"
            )
        expires_at = record.get("expires_at")
        if expires_at is not None and self._config.wall() >= float(expires_at):
            raise PauseTokenError("expired")
        return record

    def _telemetry(self, capture: bool) -> RunTelemetry:
        tracer_provider, meter_provider = self._providers
        resolved = resolve_providers()
        providers = Providers(
            tracer_provider if tracer_provider is not None else resolved.tracer_provider,
            meter_provider if meter_provider is not None else resolved.meter_provider,
        )
        info = AgentInfo.from_client(self.name, self._config.client, self._config.temperature)
        return RunTelemetry(providers, info, capture_content=capture)

    def _new_run(
        self,
        trajectory: Trajectory,
        telemetry: RunTelemetry,
        emitter: EventEmitter,
        agent_span: trace.Span,
        tools: dict[str, Any],
        record: Mapping[str, Any] | None,
        memory: Mapping[str, Any] | None,
    ) -> PlannerRun:
        constraints = dict(record.get("constraints") or {}) if record is not None else {}
        remaining = constraints.get("deadline_remaining_s") if record is not None else self._config.deadline_s
        return PlannerRun(
            self._config,
            trajectory,
            telemetry=telemetry,
            emitter=emitter,
            agent_span=agent_span,
            agent_ctx=trace.set_span_in_context(agent_span),
            tool_context=tools,
            deadline_at=None if remaining is None else self._config.monotonic() + float(remaining),
            hops_used=int(constraints.get("hops_used", 0)),
            hop_budget=constraints.get("hop_budget", self._config.hop_budget)
            if record
            else self._config.hop_budget,
            hop_exhausted=bool(constraints.get("hop_exhausted", False)),
            memory=memory,
            memory_key=None,
        )

    def _agent_attributes(
        self, trajectory: Trajectory, telemetry: RunTelemetry, resumed: bool
    ) -> dict[str, Any]:
        config = self._config
        attributes: dict[str, Any] = {
            n.ATTR_PLANNER_RUN_ID: trajectory.run_id,
            n.ATTR_PLANNER_MAX_ITERS: config.max_iters,
        }
        optional = {
            n.ATTR_GEN_AI_REQUEST_TEMPERATURE: telemetry.info.temperature,
            n.ATTR_GEN_AI_CONVERSATION_ID: trajectory.session_id,
            n.ATTR_PLANNER_HOP_BUDGET: config.hop_budget,
            n.ATTR_PLANNER_DEADLINE_S: config.deadline_s,
            n.ATTR_PLANNER_RESUMED: True if resumed else None,
        }
        attributes.update({key: value for key, value in optional.items() if value is not None})
        return attributes

    async def _memory_context(
        self, trajectory: Trajectory, tools: Mapping[str, Any], memory_key: MemoryKey | None
    ) -> tuple[Mapping[str, Any] | None, MemoryKey | None]:
        memory = self._config.memory
        if memory is None:
            return None, None
        # a custom ShortTermMemory comes without a config: its key follows the default isolation
        config = self._config.memory_config
        isolation = config.isolation if config is not None else MemoryIsolation()
        key = resolve_memory_key(memory_key, tools, isolation)
        if key is None:
            return None, None
        try:
            return await memory.get_llm_context(key), key
        except Exception:
            LOGGER.warning("short-term memory read failed; this call runs without memory", exc_info=True)
            return None, key

    async def _drive(
        self,
        trajectory: Trajectory,
        tools: dict[str, Any],
        record: Mapping[str, Any] | None,
        memory_key: MemoryKey | None,
        event_callback: EventCallback | None,
        user_input: str | None,
    ) -> PlannerFinish | PlannerPause:
        capture = capture_enabled(self._config.capture_content)
        telemetry = self._telemetry(capture)
        callbacks = tuple(cb for cb in (self._config.event_callback, event_callback) if cb is not None)
        emitter = EventEmitter(
            callbacks, run_id=trajectory.run_id, session_id=trajectory.session_id, capture_content=capture
        )
        links = resume_links(record)
        agent_span = telemetry.start_span(
            n.SPAN_INVOKE_AGENT.format(planner=self.name),
            n.GEN_AI_OPERATION_INVOKE_AGENT,
            None,
            attributes=self._agent_attributes(trajectory, telemetry, record is not None),
            links=links,
        )
        started, started_at = time.perf_counter(), self._config.wall()
        first_step = len(trajectory.steps)
        state = _EndState()
        agent_attrs = {n.ATTR_GEN_AI_AGENT_NAME: self.name}
        run = self._new_run(trajectory, telemetry, emitter, agent_span, tools, record, None)
        telemetry.record("runs_active", 1, agent_attrs)
        try:
            run.memory, run.memory_key = await self._memory_context(trajectory, tools, memory_key)
            self._open(run, record, user_input)
            try:
                ending = await run.loop()
            except Exception as exc:
                LOGGER.exception("planner %s: internal error; the run ends no_path/internal_error", self.name)
                ending = Finish("no_path", "internal_error", f"{type(exc).__name__}: {exc}")
            return await self._conclude(run, ending, state, first_step, started_at)
        finally:
            self._close(run, state, started, agent_attrs)

    def _open(self, run: PlannerRun, record: Mapping[str, Any] | None, user_input: str | None) -> None:
        telemetry, span = run.telemetry, run.agent_span
        if record is not None:
            if span.is_recording():
                span.add_event(n.EVENT_PLANNER_RESUME)
            telemetry.set_content(span, n.ATTR_GEN_AI_INPUT_MESSAGES, _user_message(user_input or ""))
            run.emit("resume", user_input=user_input, resumed_run_id=run.trajectory.run_id)
        else:
            telemetry.set_content(span, n.ATTR_GEN_AI_INPUT_MESSAGES, _user_message(run.trajectory.query))
            run.emit("run_start", query=run.trajectory.query, llm_context=run.trajectory.llm_context)
        if telemetry.capture:
            telemetry.set_content(
                span, n.ATTR_GEN_AI_TOOL_DEFINITIONS, content_json([s.to_tool_record() for s in self.catalog])
            )

    async def _conclude(
        self, run: PlannerRun, ending: Finish | Pause, state: _EndState, first_step: int, started_at: float
    ) -> PlannerFinish | PlannerPause:
        if isinstance(ending, Pause):
            paused = await self._save_pause(run, ending, state, started_at)
            if isinstance(paused, PlannerPause):
                return paused
            ending = paused
        outcome = n.OUTCOME_OK if ending.reason == "answer_complete" else n.OUTCOME_ERROR
        state.outcome, state.finish_reason = outcome, ending.reason
        _add_segment(run, started_at, outcome)
        result = run.finish_result(ending)
        self._mark_finish(run, ending, first_step)
        if ending.reason == "answer_complete" and isinstance(result.payload, dict):
            await self._remember(run, str(result.payload.get("raw_answer", "")))
        run.emit(
            "finish",
            reason=ending.reason,
            failure_reason=ending.failure_reason,
            payload=result.payload,
        )
        return result

    async def _save_pause(
        self, run: PlannerRun, pause: Pause, state: _EndState, started_at: float
    ) -> PlannerPause | Finish:
        token = run.new_token()
        _add_segment(run, started_at, n.OUTCOME_PAUSED)
        record = run.pause_record(pause, token, self._config.wall())
        try:
            await self._config.state_store.save_planner_state(token, record)
        except Exception as exc:
            LOGGER.warning("planner %s: saving the pause record failed (%s)", self.name, type(exc).__name__)
            run.trajectory.segments.pop()
            return Finish("no_path", "pause_store_error", f"{type(exc).__name__}: {exc}")
        state.outcome = n.OUTCOME_PAUSED
        span = run.agent_span
        if span.is_recording():
            span.add_event(
                n.EVENT_PLANNER_PAUSE,
                {n.ATTR_PLANNER_PAUSE_REASON: pause.reason, n.ATTR_GEN_AI_TOOL_CALL_ID: pause.tool_call_id},
            )
        run.telemetry.record(
            "pauses", 1, {n.ATTR_GEN_AI_AGENT_NAME: self.name, n.ATTR_PLANNER_PAUSE_REASON: pause.reason}
        )
        run.emit("pause", reason=pause.reason, payload=pause.payload, tool_call_id=pause.tool_call_id)
        return run.pause_result(pause, token)

    def _mark_finish(self, run: PlannerRun, ending: Finish, first_step: int) -> None:
        span = run.agent_span
        if not span.is_recording():
            return
        segment_steps = run.trajectory.steps[first_step:]
        attributes: dict[str, Any] = {
            n.ATTR_PLANNER_FINISH_REASON: ending.reason,
            n.ATTR_PLANNER_STEP_COUNT: len(run.trajectory.steps),
            n.ATTR_PLANNER_HOPS_USED: run.hops_used,
        }
        for key, source in (
            (n.ATTR_GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"),
            (n.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens"),
        ):
            values = [s.llm.get(source) for s in segment_steps if s.llm.get(source) is not None]
            if values:
                attributes[key] = sum(values)
        span.set_attributes(attributes)
        if ending.reason == "answer_complete":
            run.capture_answer(str((ending.answer or {}).get("raw_answer", "")))
        else:
            run.telemetry.fail(span, ending.reason, str(ending.failure_reason))

    async def _remember(self, run: PlannerRun, answer: str) -> None:
        memory, key = self._config.memory, run.memory_key
        if memory is None or key is None:
            return
        tools = [
            s.action["next_node"] for s in run.trajectory.steps if s.action and s.kind in ("tool", "parallel")
        ]
        turn = {
            "user": run.trajectory.query,
            "assistant": answer,
            "trajectory_digest": {"tools_invoked": tools, "step_count": len(run.trajectory.steps)},
        }
        try:
            await memory.add_turn(key, turn)
        except Exception:
            LOGGER.warning("short-term memory write failed; the turn is not remembered", exc_info=True)

    def _close(self, run: PlannerRun, state: _EndState, started: float, agent_attrs: dict[str, Any]) -> None:
        telemetry, span = run.telemetry, run.agent_span
        span.set_attribute(n.ATTR_OUTCOME, state.outcome)
        span.end()
        duration = time.perf_counter() - started
        attributes: dict[str, Any] = {
            **agent_attrs,
            n.ATTR_GEN_AI_PROVIDER_NAME: telemetry.info.provider_name,
            n.ATTR_OUTCOME: state.outcome,
        }
        if telemetry.info.request_model is not None:
            attributes[n.ATTR_GEN_AI_REQUEST_MODEL] = telemetry.info.request_model
        if state.finish_reason is not None:
            attributes[n.ATTR_PLANNER_FINISH_REASON] = state.finish_reason
            if state.finish_reason != "answer_complete":
                attributes[n.ATTR_ERROR_TYPE] = state.finish_reason
        telemetry.record("agent_duration", duration, attributes)
        telemetry.record("steps", len(run.trajectory.steps), {**agent_attrs, n.ATTR_OUTCOME: state.outcome})
        telemetry.record("runs_active", -1, agent_attrs)
        run.emit("run_end", outcome=state.outcome, latency_ms=duration * 1000)


class _EndState:
    """How the call ended, for the ``finally`` that closes the agent span (cancelled unless set)."""

    __slots__ = ("finish_reason", "outcome")

    def __init__(self) -> None:
        self.outcome: str = n.OUTCOME_CANCELLED
        self.finish_reason: str | None = None


def _json_copy(llm_context: Mapping[str, Any] | None) -> dict[str, Any]:
    if llm_context is None:
        return {}
    try:
        return dict(json.loads(json.dumps(dict(llm_context), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"llm_context must be JSON-serialisable: {exc}") from exc


def _user_message(text: str) -> str:
    return content_json([{"role": "user", "parts": [{"type": "text", "content": text}]}])


def _add_segment(run: PlannerRun, started_at: float, outcome: str) -> None:
    trace_id, span_id = span_ids(run.agent_span)
    run.trajectory.segments.append(
        {
            "trace_id": trace_id,
            "span_id": span_id,
            "started_at": started_at,
            "ended_at": run.config.wall(),
            "outcome": outcome,
        }
    )
