"""Soak: 200,000 one-message traces through a three-node flow leave no per-trace state behind.

runtime.md section 22: at most 1,000 traces in flight at once, 10 % cancelled at random points and
5 % failing terminally. The event loop's debug mode is off, since this test measures a long run.
Error logging on ``penguiflow_otel.core`` is raised to CRITICAL for the run so the 10,000 failure
tracebacks are not formatted into pytest's log capture; the runtime does the same work otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from typing import Any

import pytest

from penguiflow_otel import Context, FlowError, FlowErrorCode, Headers, Message, Node, create

TRACES = 200_000
MAX_ACTIVE = 1_000
CANCEL_SHARE = 0.10
FAIL_SHARE = 0.05
NODE_NAMES = ("parse", "enrich", "answer")


class Plan:
    """What happens to each trace: the node that fails it (0 for none) and the cancel delay (-1 for none)."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.fail_at = bytearray(TRACES)
        self.cancel_after = [-1] * TRACES
        for index in range(TRACES):
            draw = rng.random()
            if draw < CANCEL_SHARE:
                self.cancel_after[index] = rng.randrange(0, 24)
            elif draw < CANCEL_SHARE + FAIL_SHARE:
                self.fail_at[index] = rng.randrange(1, len(NODE_NAMES) + 1)


def make_node(position: int, plan: Plan) -> Node:
    """A node that forwards its message, or raises for the traces planned to fail here."""
    fail_at = plan.fail_at

    async def step(message: Any, ctx: Context) -> Any:
        if fail_at[message.payload] == position:
            raise ValueError("planned failure")
        return message

    return Node(step, name=NODE_NAMES[position - 1])


@pytest.mark.soak
@pytest.mark.timeout(120)
async def test_soak_leaves_every_per_trace_table_empty(caplog: pytest.LogCaptureFixture) -> None:
    """After 200,000 traces with cancels and failures, every per-trace table is empty and the ring bounded."""
    asyncio.get_running_loop().set_debug(False)
    caplog.set_level(logging.CRITICAL, logger="penguiflow_otel.core")
    plan = Plan(seed=20240601)
    first, second, third = (make_node(position, plan) for position in (1, 2, 3))
    flow = create(first.to(second), second.to(third), third.to(), emit_errors_to_rookery=True)
    headers = Headers(tenant="soak")
    outcomes: Counter[str] = Counter()
    in_flight = 0
    most_in_flight = 0
    most_active = 0
    indices = iter(range(TRACES))

    async def drive() -> None:
        nonlocal in_flight, most_in_flight, most_active
        for index in indices:
            trace_id = f"soak-{index}"
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            message: Message[int] = Message(payload=index, headers=headers, trace_id=trace_id)
            await flow.emit(message, trace_id=trace_id)
            if index % 500 == 0:
                most_active = max(most_active, flow.statistics().active_traces)
            delay = plan.cancel_after[index]
            if delay >= 0:
                for _ in range(delay):
                    await asyncio.sleep(0)
                outcomes["cancel accepted" if await flow.cancel(trace_id) else "cancel refused"] += 1
            result = await flow.fetch(trace_id=trace_id)
            in_flight -= 1
            if isinstance(result, FlowError):
                outcomes[str(result.code)] += 1
            else:
                assert result.trace_id == trace_id
                assert result.payload == index
                outcomes["ok"] += 1

    started = time.perf_counter()
    flow.run()
    await asyncio.gather(*(drive() for _ in range(MAX_ACTIVE)))
    elapsed = time.perf_counter() - started

    cancels = sum(1 for delay in plan.cancel_after if delay >= 0)
    failures = sum(1 for node in plan.fail_at if node)
    assert outcomes == {
        "cancel accepted": cancels,
        FlowErrorCode.TRACE_CANCELLED.value: cancels,
        FlowErrorCode.NODE_EXCEPTION.value: failures,
        "ok": TRACES - cancels - failures,
    }
    assert most_in_flight == MAX_ACTIVE
    stats = flow.statistics()
    assert stats.active_traces == 0
    assert stats.pending == 0
    assert stats.buffered_results == 0
    assert all(size == 0 for size in stats.trace_tables.values()), stats.trace_tables
    assert stats.cancelled_ring <= 1024
    assert await flow.stop() == 0
    print(f"soak: {TRACES} traces in {elapsed:.1f}s; most active traces sampled: {most_active}")
