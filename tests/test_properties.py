"""Property tests over random flow shapes, failures, retries and cancels (runtime.md section 22).

Each example builds a fresh flow (a chain, a fan-out, a fan-out joined by ``join_k``, or a
controller self-loop) with random concurrency, queue sizes, failing attempts and cancels landing at
random points, fetches every trace's results, waits until the flow is quiet, then checks the
invariants through the public API only: ``statistics()``, fetched results and recorded FlowEvents.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from flowkit import assert_empty
from hypothesis import event, given, settings
from hypothesis import strategies as st

from penguiflow_otel import (
    WM,
    Context,
    FinalAnswer,
    FlowError,
    FlowErrorCode,
    FlowEvent,
    Headers,
    Message,
    Node,
    NodePolicy,
    PenguiFlow,
    TraceCancelled,
    create,
    join_k,
)

MAX_EXAMPLES = int((os.environ.get("CI") and 200) or 50)
QUIET_DEADLINE_S = 10.0
END_EVENTS = frozenset({"node_success", "node_error", "node_timeout"})

Shape = Literal["chain", "fanout", "join", "controller"]
FetchMode = Literal["scoped", "roundtrip", "plain"]
Trigger = Literal["any", "node_start", "node_retry", "node_success"]


@dataclass(frozen=True)
class CancelPlan:
    """Cancel trace ``trace`` after the ``nth`` event matching ``trigger``, then ``delay`` loop steps."""

    trigger: Trigger
    nth: int
    trace: int
    delay: int


@dataclass(frozen=True)
class Scenario:
    """One random flow and workload."""

    shape: Shape
    width: int
    concurrency: tuple[int, ...]
    queue_maxsize: int
    fail_percent: int
    max_retries: int
    backoff_base: float
    hang_on_failure: bool
    errors_to_rookery: bool
    modes: tuple[FetchMode, ...]
    hops: tuple[int, ...]
    cancels: tuple[CancelPlan, ...]
    seed: int


@st.composite
def cancel_plans(draw: st.DrawFn, trace_count: int) -> CancelPlan:
    """A cancel of a random trace at a random point: any event, or an event of that trace."""
    trigger: Trigger = draw(st.sampled_from(["any", "node_start", "node_retry", "node_success"]))
    return CancelPlan(
        trigger=trigger,
        nth=draw(st.integers(1, 40) if trigger == "any" else st.integers(1, 2)),
        trace=draw(st.integers(0, trace_count - 1)),
        delay=draw(st.integers(0, 6)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Draw a flow shape and a workload that cannot deadlock by construction."""
    shape: Shape = draw(st.sampled_from(["chain", "fanout", "join", "controller"]))
    width = {"chain": draw(st.integers(1, 3)), "fanout": draw(st.integers(2, 3))}.get(shape, 2)
    node_count = {"chain": width, "fanout": width + 1, "join": 3, "controller": 1}[shape]
    queue_maxsize = draw(st.sampled_from([0, 1, 2]))
    max_traces = 6
    if shape == "controller" and queue_maxsize > 0:
        # A controller's workers put into its own self-edge: with at most queue_maxsize traces in
        # the loop, the self-edge always has room for a blocked worker's item.
        max_traces = queue_maxsize
    trace_count = draw(st.integers(1, max_traces))
    fail_percent = draw(st.sampled_from([0, 0, 20, 50]))
    cancels = draw(st.lists(cancel_plans(trace_count), max_size=3))
    return Scenario(
        shape=shape,
        width=width,
        concurrency=tuple(draw(st.lists(st.integers(1, 3), min_size=node_count, max_size=node_count))),
        queue_maxsize=queue_maxsize,
        fail_percent=fail_percent,
        max_retries=draw(st.integers(0, 2)),
        backoff_base=draw(st.sampled_from([0.0, 0.001])),
        hang_on_failure=draw(st.booleans()),
        errors_to_rookery=draw(st.booleans()),
        modes=tuple(
            draw(
                st.lists(
                    st.sampled_from(["scoped", "roundtrip", "plain"]),
                    min_size=trace_count,
                    max_size=trace_count,
                )
            )
        ),
        hops=tuple(draw(st.lists(st.integers(1, 3), min_size=trace_count, max_size=trace_count))),
        cancels=tuple(cancels),
        seed=draw(st.integers(0, 2**16)),
    )


class Workload:
    """Node bodies whose failures depend only on (node, trace, hop, attempt), never on scheduling."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.attempts: Counter[tuple[str, str, int]] = Counter()

    def _fails(self, name: str, trace_id: str, hop: int, attempt: int) -> bool:
        key = f"{self.scenario.seed}|{name}|{trace_id}|{hop}|{attempt}".encode()
        return zlib.crc32(key) % 100 < self.scenario.fail_percent

    def body(self, name: str, *, controller: bool = False) -> Any:
        """An async node function named ``name``; a controller returns its WM unchanged."""
        hang = self.scenario.hang_on_failure

        async def work(message: Any, ctx: Context) -> Any:
            hop = message.payload.hops if isinstance(message.payload, WM) else 0
            key = (name, message.trace_id, hop)
            attempt = self.attempts[key]
            self.attempts[key] += 1
            await asyncio.sleep(0)  # a point where a cancel can land mid-invocation
            if self._fails(name, message.trace_id, hop, attempt):
                if hang and attempt % 2 == 0:
                    await asyncio.Event().wait()  # ended by the policy timeout
                raise RuntimeError(f"planned failure in {name}")
            if controller:
                return message
            return message.model_copy(update={"payload": f"{name}:{message.payload}"})

        work.__name__ = name
        return work

    def policy(self, concurrency: int) -> NodePolicy:
        """The retry, timeout and concurrency policy every node of the scenario uses."""
        scenario = self.scenario
        return NodePolicy(
            validate="none",
            timeout_s=0.01 if scenario.hang_on_failure else None,
            max_retries=scenario.max_retries,
            backoff_base=scenario.backoff_base,
            concurrency=concurrency,
        )

    def node(self, name: str, index: int, **kwargs: Any) -> Node:
        """A node of the scenario with its drawn concurrency."""
        return Node(
            self.body(name, controller=kwargs.get("allow_cycle", False)),
            name=name,
            policy=self.policy(self.scenario.concurrency[index]),
            **kwargs,
        )


def build_flow(scenario: Scenario, workload: Workload, recorder: Recorder) -> tuple[PenguiFlow, int]:
    """The scenario's flow and how many results one clean trace yields."""
    options: dict[str, Any] = {
        "queue_maxsize": scenario.queue_maxsize,
        "emit_errors_to_rookery": scenario.errors_to_rookery,
        "middlewares": [recorder],
    }
    if scenario.shape == "chain":
        nodes = [workload.node(f"step{index}", index) for index in range(scenario.width)]
        adjacencies = [node.to(nxt) for node, nxt in itertools.pairwise(nodes)]
        return create(*adjacencies, nodes[-1].to(), **options), 1
    if scenario.shape == "fanout":
        source = workload.node("source", 0)
        branches = [workload.node(f"branch{index}", index + 1) for index in range(scenario.width)]
        return create(source.to(*branches), *(branch.to() for branch in branches), **options), scenario.width
    if scenario.shape == "join":
        source = workload.node("source", 0)
        left, right = workload.node("left", 1), workload.node("right", 2)
        join = join_k("join", 2, timeout_s=0.02 if scenario.fail_percent else None)
        return create(source.to(left, right), left.to(join), right.to(join), join.to(), **options), 1
    controller = workload.node("controller", 0, allow_cycle=True)
    return create(controller.to(controller), **options), 1


class Recorder:
    """A middleware recording FlowEvents and starting the planned cancels at their trigger events."""

    def __init__(self, plans: tuple[CancelPlan, ...], trace_ids: list[str]) -> None:
        self.events: list[FlowEvent] = []
        self.plans = plans
        self.trace_ids = trace_ids
        self.flow: PenguiFlow | None = None
        self.cancels: list[tuple[str, asyncio.Task[bool]]] = []
        self._counts: Counter[tuple[str, str | None]] = Counter()

    async def __call__(self, flow_event: FlowEvent) -> None:
        self.events.append(flow_event)
        for trigger in ("any", flow_event.event_type):
            key = (trigger, None if trigger == "any" else flow_event.trace_id)
            self._counts[key] += 1
            for plan in self.plans:
                target = self.trace_ids[plan.trace]
                if plan.trigger != trigger or (trigger != "any" and flow_event.trace_id != target):
                    continue
                if self._counts[key] == plan.nth:
                    self._start_cancel(target, plan.delay)

    def _start_cancel(self, trace_id: str, delay: int) -> None:
        assert self.flow is not None

        async def cancel_later(flow: PenguiFlow) -> bool:
            for _ in range(delay):
                await asyncio.sleep(0)
            return await flow.cancel(trace_id)

        task = asyncio.get_running_loop().create_task(cancel_later(self.flow))
        self.cancels.append((trace_id, task))


def assert_every_start_has_one_end(events: list[FlowEvent]) -> None:
    """Per (node, trace): a node_start is closed by exactly one end event before the next start."""
    open_attempts: dict[tuple[str | None, str | None], bool] = {}
    for flow_event in events:
        key = (flow_event.node_name, flow_event.trace_id)
        kind = flow_event.event_type
        if kind == "node_start":
            assert not open_attempts.get(key), f"second node_start before an end: {key}"
            open_attempts[key] = True
        elif kind in END_EVENTS:
            assert open_attempts.get(key), f"{kind} without an open node_start: {key}"
            open_attempts[key] = False
        elif kind == "node_trace_cancelled":
            open_attempts[key] = False  # ends an open attempt, or an item between attempts
        elif kind in ("node_failed", "node_retry"):
            assert not open_attempts.get(key), f"{kind} while an attempt is open: {key}"
    assert not any(open_attempts.values()), open_attempts


async def wait_until_quiet(
    flow: PenguiFlow, recorder: Recorder, trace_fetchers: dict[str, asyncio.Task[None]]
) -> None:
    """Wait until every planned cancel has returned, no trace is active, and each fetcher of a
    cancelled trace has seen the cancellation (it may be woken in the same step the trace ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUIET_DEADLINE_S

    def quiet() -> bool:
        if flow.statistics().active_traces or not all(task.done() for _, task in recorder.cancels):
            return False
        cancelled = {trace_id for trace_id, task in recorder.cancels if task.result()}
        return all(task.done() for trace_id, task in trace_fetchers.items() if trace_id in cancelled)

    while not quiet():
        assert loop.time() < deadline, f"flow never became quiet: {flow.statistics()}"
        await asyncio.sleep(0.001)  # join timers and backoff sleeps run on loop time


def result_trace(item: object) -> str | None:
    """The trace a fetched result belongs to."""
    return getattr(item, "trace_id", None)


def is_cancel_outcome(item: object) -> bool:
    """Whether a fetched value is the synthesised TRACE_CANCELLED error."""
    return isinstance(item, FlowError) and item.code == FlowErrorCode.TRACE_CANCELLED


@pytest.mark.timeout(90)  # 200 examples under CI; the 20 s default is sized for single cases
@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(scenario=scenarios())
async def test_random_flows_keep_the_trace_invariants(scenario: Scenario) -> None:
    """Pending returns to 0, fetch stays in its trace, no per-trace table survives, starts have one end."""
    trace_ids = [f"trace-{index}" for index in range(len(scenario.modes))]
    workload = Workload(scenario)
    recorder = Recorder(scenario.cancels, trace_ids)
    flow, clean_yield = build_flow(scenario, workload, recorder)
    recorder.flow = flow
    results: dict[str, list[object]] = {trace_id: [] for trace_id in trace_ids}
    saw_cancel: set[str] = set()

    async def fetch_trace(trace_id: str) -> None:
        while True:
            try:
                item = await flow.fetch(trace_id=trace_id)
            except TraceCancelled as exc:
                saw_cancel.add(str(exc.trace_id))  # compared with the cancelled traces below
                return
            if is_cancel_outcome(item):
                assert result_trace(item) == trace_id
                saw_cancel.add(trace_id)
                return
            assert result_trace(item) == trace_id, "fetch(trace_id=X) returned another trace's result"
            results[trace_id].append(item)

    async def fetch_plain() -> None:
        while True:
            item = await flow.fetch()
            trace_id = result_trace(item)
            assert trace_id is not None
            assert scenario.modes[trace_ids.index(trace_id)] == "plain", "plain fetch got a claimed trace"
            results[trace_id].append(item)

    flow.run()
    plain_fetcher = asyncio.create_task(fetch_plain())
    trace_fetchers = {
        trace_id: asyncio.create_task(fetch_trace(trace_id))
        for trace_id, mode in zip(trace_ids, scenario.modes, strict=True)
        if mode == "scoped"
    }
    await asyncio.sleep(0)  # scoped fetchers claim their traces before anything is emitted
    for index, (trace_id, mode) in enumerate(zip(trace_ids, scenario.modes, strict=True)):
        payload: object = WM(query=trace_id, budget_hops=scenario.hops[index])
        if scenario.shape != "controller":
            payload = trace_id
        message: Message[Any] = Message(payload=payload, headers=Headers(tenant="t"), trace_id=trace_id)
        if mode == "roundtrip":
            await flow.emit(message, trace_id=trace_id)
            trace_fetchers[trace_id] = asyncio.create_task(fetch_trace(trace_id))
        else:
            await flow.emit(message)
    await wait_until_quiet(flow, recorder, trace_fetchers)
    fetchers = [plain_fetcher, *trace_fetchers.values()]
    for fetcher in fetchers:
        fetcher.cancel()
    outcomes = await asyncio.gather(*fetchers, return_exceptions=True)
    for outcome in outcomes:
        assert outcome is None or isinstance(outcome, asyncio.CancelledError), outcome

    stats = flow.statistics()
    assert_empty(stats)

    cancelled = {trace_id for trace_id, task in recorder.cancels if task.result()}
    assert stats.cancelled_ring == len(cancelled)
    scoped = {t for t, mode in zip(trace_ids, scenario.modes, strict=True) if mode != "plain"}
    assert saw_cancel == cancelled & scoped
    assert_every_start_has_one_end(recorder.events)
    fetched = [item for items in results.values() for item in items]
    assert len({id(item) for item in fetched}) == len(fetched), "a result was returned twice"
    failed = Counter(e.trace_id for e in recorder.events if e.event_type == "node_failed")
    for trace_id in trace_ids:
        errors = [
            item
            for item in results[trace_id]
            if isinstance(item, FlowError) and item.code != FlowErrorCode.JOIN_TIMEOUT
        ]
        assert len(errors) <= failed[trace_id]
        if not scenario.errors_to_rookery:
            assert not errors
        elif trace_id not in cancelled:
            assert len(errors) == failed[trace_id]
        if scenario.fail_percent == 0 and trace_id not in cancelled:
            assert len(results[trace_id]) == clean_yield
            if scenario.shape == "controller":
                assert all(isinstance(item, Message) for item in results[trace_id])
                assert [item.payload for item in results[trace_id]] == [  # type: ignore[attr-defined]
                    FinalAnswer(text="Hop budget exhausted")
                ]
    recorder.plans = ()  # no cancel may start once the flow is stopping
    assert await flow.stop() == 0
    stopped = Counter(e.node_name for e in recorder.events if e.event_type == "node_cancelled")
    assert set(stopped.values()) == {1}

    for trace_id in cancelled:
        kinds = [e.event_type for e in recorder.events if e.trace_id == trace_id]
        if "node_retry" in kinds and kinds.index("trace_cancel_start") > kinds.index("node_retry"):
            event("cancel after a retry was scheduled")
    if cancelled:
        event("some trace cancelled")
    if any(e.event_type == "node_trace_cancelled" for e in recorder.events):
        event("a worker was interrupted")
