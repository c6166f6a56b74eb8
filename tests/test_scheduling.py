"""The execution model's scheduling guarantees (runtime.md sections 7 and 8).

Each guarantee is checked by counting loop steps (``asyncio.sleep(0)``) or by driving a coroutine by
hand: an ``emit`` that completes without suspending finishes on its first ``send(None)``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

from flowkit import EventRecorder, Gate, make_message, passthrough, promptly, settle

from penguiflow_otel import Context, FlowEvent, Node, create


def completes_without_suspending(coro: Coroutine[Any, Any, None]) -> bool:
    """Run ``coro`` one step; True when it finished in that step (it never suspended)."""
    try:
        coro.send(None)
    except StopIteration:
        return True
    coro.close()
    return False


# fan-out -----------------------------------------------------------------------------------------


async def test_a_full_successor_blocks_its_later_siblings() -> None:
    """With the first successor's edge full, the second receives nothing until the first makes room."""
    blocker = Gate()
    reached_second: list[object] = []

    async def first_body(message: Any, ctx: Context) -> None:
        await blocker.hold(message, ctx)

    async def second_body(message: Any, ctx: Context) -> None:
        reached_second.append(message.payload)

    hub = Node(passthrough, name="hub")
    first, second = Node(first_body, name="first"), Node(second_body, name="second")
    flow = create(hub.to(first, second), first.to(), second.to(), queue_maxsize=1)
    flow.run()
    for payload in ("x1", "x2", "x3"):
        await flow.emit(make_message(payload))

    def hub_blocked_on_first() -> bool:
        stats = flow.statistics()
        return (
            stats.edge_size["hub->first"] == 1
            and stats.edge_size["ingress->hub"] == 0
            and stats.node_inflight["hub"] == 1
            and reached_second == ["x1", "x2"]
        )

    await promptly(hub_blocked_on_first)
    await settle()
    assert reached_second == ["x1", "x2"]
    assert blocker.seen == ["x1"]

    blocker.release()
    await promptly(lambda: reached_second == ["x1", "x2", "x3"])
    assert blocker.seen == ["x1", "x2"]
    blocker.release(2)
    await flow.stop()


# invocation --------------------------------------------------------------------------------------


async def test_node_code_runs_inline_in_its_worker_task_and_keeps_its_context_variables() -> None:
    """Messages run in one worker task (no task per message); a contextvar set by node code persists."""
    seen_by: contextvars.ContextVar[list[object]] = contextvars.ContextVar("seen_by")
    tasks: list[asyncio.Task[Any] | None] = []
    task_counts: list[int] = []
    histories: list[list[object]] = []

    async def remember(message: Any, ctx: Context) -> Any:
        tasks.append(asyncio.current_task())
        task_counts.append(len(asyncio.all_tasks()))
        history = seen_by.get(None)
        if history is None:
            history = []
            seen_by.set(history)
        history.append(message.payload)
        histories.append(list(history))
        return message

    flow = create(Node(remember, name="remember").to())
    flow.run()
    for index in range(3):
        await flow.emit(make_message(index))
        await flow.fetch()
    await flow.stop()

    assert histories == [[0], [0, 1], [0, 1, 2]]
    assert tasks[0] is not None
    assert tasks[0].get_name() == "penguiflow:remember"
    assert all(task is tasks[0] for task in tasks)
    assert len(set(task_counts)) == 1


# scheduling guarantees ---------------------------------------------------------------------------


async def test_flow_emit_into_a_queue_with_room_completes_without_suspending() -> None:
    """Without a message bus, flow.emit into an edge with room finishes in its first step."""
    flow = create(Node(passthrough, name="node").to())
    flow.run()
    message = make_message("fast")

    assert completes_without_suspending(flow.emit(message))
    assert flow.statistics().edge_size["ingress->node"] == 1
    async with asyncio.timeout(2):
        assert await flow.fetch() is message
    await flow.stop()


async def test_ctx_emit_into_a_queue_with_room_completes_without_suspending() -> None:
    """Inside a node, ctx.emit into a successor edge with room finishes in its first step."""
    outcomes: list[bool] = []

    async def forward(message: Any, ctx: Context) -> None:
        outcomes.append(completes_without_suspending(ctx.emit(message)))

    head, tail = Node(forward, name="head"), Node(passthrough, name="tail")
    flow = create(head.to(tail), tail.to())
    flow.run()
    message = make_message("fast")
    await flow.emit(message)
    async with asyncio.timeout(2):
        assert await flow.fetch() is message
    await flow.stop()

    assert outcomes == [True]


async def test_a_worker_takes_an_item_queued_before_run_in_its_first_step() -> None:
    """An item queued before run() is being processed after a single loop step."""
    started: list[object] = []

    async def note(message: Any, ctx: Context) -> Any:
        started.append(message.payload)
        return message

    flow = create(Node(note, name="node").to())
    flow.emit_nowait(make_message("early"))
    flow.run()
    await asyncio.sleep(0)

    assert started == ["early"]
    await flow.stop()


async def test_a_waiting_worker_takes_an_item_in_the_step_after_the_put() -> None:
    """An idle worker woken by a put runs the node in the very next loop step."""
    started: list[object] = []

    async def note(message: Any, ctx: Context) -> Any:
        started.append(message.payload)
        return message

    flow = create(Node(note, name="node").to())
    flow.run()
    await settle()
    flow.emit_nowait(make_message("woken"))
    assert started == []
    await asyncio.sleep(0)

    assert started == ["woken"]
    await flow.stop()


async def test_a_worker_that_woke_a_fetch_lets_the_caller_resume_before_its_next_item() -> None:
    """After a delivery wakes a waiting fetch, the caller resumes before the worker starts its next item."""
    order: list[str] = []

    async def sink(message: Any, ctx: Context) -> Any:
        order.append(f"start {message.payload}")
        return message

    flow = create(Node(sink, name="sink").to())
    flow.run()

    async def fetch_twice() -> None:
        for _ in range(2):
            result = await flow.fetch()
            order.append(f"fetched {result.payload}")

    fetcher = asyncio.create_task(fetch_twice())
    await settle()
    flow.emit_nowait(make_message("m1"))
    flow.emit_nowait(make_message("m2"))
    async with asyncio.timeout(2):
        await fetcher
    await flow.stop()

    assert order == ["start m1", "fetched m1", "start m2", "fetched m2"]


async def test_nothing_runs_between_a_successful_attempt_its_routing_and_node_success() -> None:
    """A callback scheduled by node code runs only after node_success was dispatched (no added suspension)."""
    order: list[str] = []

    async def schedule_then_return(message: Any, ctx: Context) -> Any:
        asyncio.get_running_loop().call_soon(order.append, "loop step")
        return message

    async def on_success(event: FlowEvent) -> None:
        if event.event_type == "node_success" and event.node_name == "head":
            order.append("node_success")

    head, tail = Node(schedule_then_return, name="head"), Node(passthrough, name="tail")
    flow = create(head.to(tail), tail.to(), middlewares=[on_success])
    flow.run()
    await flow.emit(make_message("m"))
    async with asyncio.timeout(2):
        await flow.fetch()
    await flow.stop()

    assert order == ["node_success", "loop step"]


# trace accounting --------------------------------------------------------------------------------


async def test_a_result_without_a_trace_id_is_filed_under_the_trace_its_worker_holds(
    recorder: EventRecorder,
) -> None:
    """A bare payload returned for a traced message keeps the trace active and is fetched by its trace id."""

    async def unwrap(message: Any, ctx: Context) -> Any:
        return {"answer": message.payload}

    flow = create(Node(unwrap, name="unwrap").to(), middlewares=[recorder])
    flow.run()
    message = make_message(42)
    await flow.emit(message, trace_id=message.trace_id)
    await recorder.wait_for("node_success")

    assert recorder.first("node_success").trace_pending == 2  # the held input and its result
    await promptly(lambda: flow.statistics().node_inflight["unwrap"] == 0)
    assert flow.statistics().active_traces == 1
    assert flow.statistics().pending == 1
    async with asyncio.timeout(2):
        assert await flow.fetch(trace_id=message.trace_id) == {"answer": 42}
    assert flow.statistics().active_traces == 0
    await flow.stop()
