"""A router's routing is part of its invocation (runtime.md section 17.2).

``predicate_router`` and ``union_router`` emit from inside their node function, so a routing policy runs
under the attempt's timeout and a failing policy is retried like any node error.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowkit import EventRecorder, make_message, passthrough

from penguiflow_otel import (
    FlowError,
    FlowErrorCode,
    Node,
    NodePolicy,
    PenguiFlow,
    RoutingRequest,
    create,
    predicate_router,
)


def routed(router: Node, **kwargs: Any) -> tuple[PenguiFlow, Node]:
    """``router`` in front of one egress node ``target``."""
    target = Node(passthrough, name="target")
    return create(router.to(target), target.to(), **kwargs), target


async def test_a_slow_routing_policy_is_bounded_by_the_routers_timeout(recorder: EventRecorder) -> None:
    """A policy that never answers makes the router attempt time out (NODE_TIMEOUT), not hang."""
    never = asyncio.Event()

    async def stalled_policy(request: RoutingRequest) -> Any:
        await never.wait()
        return request.proposed

    router = predicate_router("router", lambda message: "target", policy=stalled_policy)
    router.policy = NodePolicy(validate="none", timeout_s=0.05)
    flow, _ = routed(router, emit_errors_to_rookery=True, middlewares=[recorder])
    flow.run()
    message = make_message("stuck")
    await flow.emit(message)
    async with asyncio.timeout(2):
        error = await flow.fetch()
    await flow.stop()

    assert isinstance(error, FlowError)
    assert error.code == FlowErrorCode.NODE_TIMEOUT.value
    assert error.node_name == "router"
    assert [kind for kind in recorder.kinds(message.trace_id) if kind != "node_cancelled"] == [
        "node_start",
        "node_timeout",
        "node_failed",
    ]


async def test_a_failing_routing_policy_is_retried_with_the_router(recorder: EventRecorder) -> None:
    """A policy raising on the first attempt is an attempt error; the retry routes the message."""
    calls: list[int] = []

    def flaky_policy(request: RoutingRequest) -> Any:
        calls.append(len(calls))
        if len(calls) == 1:
            raise ConnectionError("policy store unavailable")
        return request.proposed

    router = predicate_router("router", lambda message: "target", policy=flaky_policy)
    router.policy = NodePolicy(validate="none", max_retries=1, backoff_base=0.0)
    flow, _ = routed(router, middlewares=[recorder])
    flow.run()
    message = make_message("retry me")
    await flow.emit(message)
    async with asyncio.timeout(2):
        result = await flow.fetch()
    await flow.stop()

    assert result is message
    assert calls == [0, 1]
    router_steps = [
        (event.event_type, event.attempt)
        for event in recorder.events
        if event.node_name == "router" and event.trace_id == message.trace_id
    ]
    assert router_steps == [
        ("node_start", 0),
        ("node_error", 0),
        ("node_retry", 1),
        ("node_start", 1),
        ("node_success", 1),
    ]
    assert "phase" not in recorder.first("node_error").extra
