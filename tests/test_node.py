"""Node and NodePolicy: construction, bad input, ``node.to()`` and ``invoke`` validation modes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flowkit import passthrough
from pydantic import BaseModel, ValidationError

from penguiflow_otel import Context, FlowError, Headers, Message, ModelRegistry, Node, NodePolicy, create


class Order(BaseModel):
    """An input model."""

    qty: int


class Receipt(BaseModel):
    """An output model."""

    total: int


async def other(msg: Any, ctx: Context) -> Any:
    """Another node function."""
    return None


# NodePolicy ------------------------------------------------------------------------------------


def test_node_policy_defaults_match_upstream() -> None:
    """A default policy validates both ways, never times out and never retries."""
    policy = NodePolicy()
    assert dataclasses.astuple(policy) == ("both", None, 0, 0.5, 2.0, None, 0.0, None, 1)


def test_node_policy_keeps_upstream_positional_order() -> None:
    """Upstream's six fields come first, so positional construction still works."""
    policy = NodePolicy("in", 1.5, 3, 0.1, 3.0, 2.0)
    assert (policy.validate, policy.timeout_s, policy.max_retries) == ("in", 1.5, 3)
    assert (policy.backoff_base, policy.backoff_mult, policy.max_backoff) == (0.1, 3.0, 2.0)
    assert [field.name for field in dataclasses.fields(NodePolicy)] == [
        "validate",
        "timeout_s",
        "max_retries",
        "backoff_base",
        "backoff_mult",
        "max_backoff",
        "jitter",
        "retry_on",
        "concurrency",
    ]


def test_node_policy_is_a_slots_dataclass() -> None:
    """A policy has no instance dict, so a misspelt attribute cannot be set."""
    policy = NodePolicy()
    assert not hasattr(policy, "__dict__")
    with pytest.raises(AttributeError):
        policy.timeoutt_s = 1.0  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["both", "in", "out", "none"])
def test_node_policy_accepts_each_validate_mode(mode: Any) -> None:
    """Each of the four validation modes is accepted."""
    assert NodePolicy(validate=mode).validate == mode


@pytest.mark.parametrize("mode", ["Both", "input", "", None])
def test_node_policy_rejects_an_unknown_validate_mode(mode: Any) -> None:
    """An unknown validation mode names the four allowed ones."""
    with pytest.raises(ValueError, match=r"^validate must be one of 'both', 'in', 'out', 'none'$"):
        NodePolicy(validate=mode)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 1.0])
def test_node_policy_accepts_jitter_between_zero_and_one(jitter: float) -> None:
    """Jitter in the closed interval [0, 1] is accepted."""
    assert NodePolicy(jitter=jitter).jitter == jitter


@pytest.mark.parametrize("jitter", [-0.01, 1.01, 5.0])
def test_node_policy_rejects_jitter_outside_zero_to_one(jitter: float) -> None:
    """Jitter outside [0, 1] is refused with the allowed range in the message."""
    with pytest.raises(ValueError, match=r"^jitter must be between 0\.0 and 1\.0$"):
        NodePolicy(jitter=jitter)


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, "2", None, True])
def test_node_policy_rejects_concurrency_that_is_not_a_positive_int(concurrency: Any) -> None:
    """Concurrency below 1, or not an int at all, is refused."""
    with pytest.raises(ValueError, match=r"^concurrency must be >= 1$"):
        NodePolicy(concurrency=concurrency)


def test_node_policy_accepts_every_kind_of_retry_on() -> None:
    """retry_on may be None, an exception type, a tuple of types or a predicate."""
    NodePolicy(retry_on=None)
    NodePolicy(retry_on=ValueError)
    NodePolicy(retry_on=(ValueError, TimeoutError))
    NodePolicy(retry_on=lambda exc: isinstance(exc, KeyError))


@pytest.mark.parametrize("retry_on", [42, "ValueError", (ValueError, 3), int, [ValueError]])
def test_node_policy_rejects_a_wrong_kind_of_retry_on(retry_on: Any) -> None:
    """retry_on of any other kind raises TypeError naming the accepted kinds."""
    with pytest.raises(
        TypeError,
        match=r"^retry_on must be an exception type, a tuple of exception types, or a callable$",
    ):
        NodePolicy(retry_on=retry_on)


# Node construction -----------------------------------------------------------------------------


def test_node_name_defaults_to_the_function_name() -> None:
    """Without a name, a node is named after its function."""
    assert Node(passthrough).name == "passthrough"
    assert Node(passthrough, name="custom").name == "custom"


def test_each_node_gets_a_fresh_id_and_its_own_default_policy() -> None:
    """Node ids are fresh 32-character hex strings and default policies are not shared."""
    first, second = Node(passthrough), Node(passthrough)
    assert first.node_id != second.node_id
    assert len(first.node_id) == 32
    int(first.node_id, 16)
    assert first.policy is not second.policy
    assert first.allow_cycle is False


def test_node_equality_and_hash_follow_the_node_id() -> None:
    """Two nodes over the same function are different; a node equals itself."""
    first, second = Node(passthrough, name="x"), Node(passthrough, name="x")
    assert first == first
    assert first != second
    assert len({first, second, first}) == 2
    assert hash(first) == hash(first.node_id)


def test_node_is_a_slots_dataclass() -> None:
    """A node has no instance dict."""
    assert not hasattr(Node(passthrough), "__dict__")


def test_node_to_declares_successors_in_order() -> None:
    """node.to(b, c) pairs the node with its successors, in the order given."""
    a, b, c = Node(passthrough, name="a"), Node(passthrough, name="b"), Node(passthrough, name="c")
    assert a.to(b, c) == (a, (b, c))
    assert a.to(b, c)[1][0] is b


def test_node_to_with_no_arguments_declares_a_sink() -> None:
    """node.to() declares a node with no successors."""
    a = Node(passthrough, name="a")
    assert a.to() == (a, ())


def test_node_may_belong_to_several_flows() -> None:
    """One node object can be placed in two flows."""
    a = Node(passthrough, name="a")
    first, second = create(a.to()), create(a.to())
    assert first.nodes == second.nodes == (a,)


def test_node_rejects_a_synchronous_function() -> None:
    """A plain def function is refused: node functions must be coroutines."""

    def sync(msg: Any, ctx: Any) -> Any:
        return msg

    bad: Any = sync
    with pytest.raises(TypeError, match=r"^Node function must be declared with async def$"):
        Node(bad)


def test_node_rejects_a_lambda() -> None:
    """A lambda is not an async function either."""
    bad: Any = lambda msg, ctx: msg  # noqa: E731
    with pytest.raises(TypeError, match=r"^Node function must be declared with async def$"):
        Node(bad)


def test_node_rejects_a_function_with_one_parameter() -> None:
    """A function without the context parameter is refused, naming the node and the count."""

    async def single(msg: Any) -> Any:
        return msg

    bad: Any = single
    with pytest.raises(
        ValueError, match=r"^Node 'single' must accept exactly two parameters \(message, ctx\); got 1$"
    ):
        Node(bad)


def test_node_rejects_a_function_with_three_parameters_using_the_given_name() -> None:
    """The arity message uses the node's given name, not the function's."""

    async def triple(msg: Any, ctx: Any, extra: Any) -> Any:
        return msg

    bad: Any = triple
    with pytest.raises(
        ValueError, match=r"^Node 'custom' must accept exactly two parameters \(message, ctx\); got 3$"
    ):
        Node(bad, name="custom")


def test_node_rejects_a_keyword_only_context_parameter() -> None:
    """The context must be passable positionally."""

    async def keyword_ctx(msg: Any, *, ctx: Any) -> Any:
        return msg

    bad: Any = keyword_ctx
    with pytest.raises(ValueError, match=r"^Context parameter must be positional$"):
        Node(bad)


def test_node_accepts_a_positional_only_context() -> None:
    """A positional-only signature is a valid node function."""

    async def positional(msg: Any, ctx: Context, /) -> Any:
        return msg

    assert Node(positional).name == "positional"


# invoke ----------------------------------------------------------------------------------------


def validating_node(mode: Any, seen: list[object], reply: object) -> Node:
    """A node named ``n`` recording its input and returning ``reply``."""

    async def n(msg: Any, ctx: Context) -> Any:
        seen.append(msg)
        return reply

    return Node(n, policy=NodePolicy(validate=mode))


@pytest.fixture
def registry() -> ModelRegistry:
    """A registry with Order -> Receipt for node ``n``."""
    models = ModelRegistry()
    models.register("n", Order, Receipt)
    return models


async def test_invoke_both_validates_input_and_output(registry: ModelRegistry) -> None:
    """In 'both' mode the function gets the validated input and the output comes back validated."""
    seen: list[object] = []
    node = validating_node("both", seen, {"total": "7"})
    result = await node.invoke({"qty": "3"}, Context(node), registry=registry)
    assert seen == [Order(qty=3)]
    assert result == Receipt(total=7)


async def test_invoke_in_validates_only_the_input(registry: ModelRegistry) -> None:
    """In 'in' mode the output is returned exactly as the function produced it."""
    seen: list[object] = []
    reply = {"total": "not a number"}
    node = validating_node("in", seen, reply)
    result = await node.invoke({"qty": 3}, Context(node), registry=registry)
    assert seen == [Order(qty=3)]
    assert result is reply


async def test_invoke_out_validates_only_the_output(registry: ModelRegistry) -> None:
    """In 'out' mode the function gets the raw input and the output comes back validated."""
    seen: list[object] = []
    raw = {"qty": "not a number"}
    node = validating_node("out", seen, {"total": 1})
    result = await node.invoke(raw, Context(node), registry=registry)
    assert seen[0] is raw
    assert result == Receipt(total=1)


async def test_invoke_none_skips_validation_even_with_a_registry() -> None:
    """In 'none' mode nothing is validated and the registry is not consulted."""
    seen: list[object] = []
    raw, reply = object(), object()
    node = validating_node("none", seen, reply)
    result = await node.invoke(raw, Context(node), registry=ModelRegistry())
    assert seen[0] is raw
    assert result is reply


async def test_invoke_without_a_registry_validates_nothing() -> None:
    """With no registry the function runs on the raw input and its result is returned as is."""
    seen: list[object] = []
    raw, reply = {"qty": "x"}, {"total": "y"}
    node = validating_node("both", seen, reply)
    result = await node.invoke(raw, Context(node), registry=None)
    assert seen[0] is raw
    assert result is reply


@pytest.mark.parametrize("mode", ["both", "out"])
async def test_invoke_returns_a_none_result_without_validating_it(registry: ModelRegistry, mode: Any) -> None:
    """A None result is returned as is, never validated against the output model."""
    node = validating_node(mode, [], None)
    assert await node.invoke({"qty": 1}, Context(node), registry=registry) is None


async def test_invoke_with_invalid_input_raises_before_calling_the_function(
    registry: ModelRegistry,
) -> None:
    """Input validation failures surface as ValidationError and the function never runs."""
    seen: list[object] = []
    node = validating_node("both", seen, {"total": 1})
    with pytest.raises(ValidationError):
        await node.invoke({"qty": "many"}, Context(node), registry=registry)
    assert seen == []


async def test_invoke_with_invalid_output_raises(registry: ModelRegistry) -> None:
    """Output validation failures surface as ValidationError."""
    node = validating_node("both", [], {"total": "lots"})
    with pytest.raises(ValidationError):
        await node.invoke({"qty": 1}, Context(node), registry=registry)


async def test_invoke_for_an_unregistered_node_raises_key_error() -> None:
    """A registry without the node's entry raises KeyError naming the node."""
    node = validating_node("both", [], None)
    with pytest.raises(KeyError, match=r"Node 'n' not registered"):
        await node.invoke({"qty": 1}, Context(node), registry=ModelRegistry())


# Validation inside a running flow --------------------------------------------------------------


async def test_flow_validates_node_input_with_the_run_registry(registry: ModelRegistry) -> None:
    """A flow run with a registry hands each node its validated input and validated output."""
    seen: list[object] = []
    node = validating_node("both", seen, {"total": "9"})
    flow = create(node.to())
    flow.run(registry=registry)
    try:
        await flow.emit({"qty": "4"})
        assert await flow.fetch() == Receipt(total=9)
        assert seen == [Order(qty=4)]
        assert flow.registry is registry
    finally:
        await flow.stop()


async def test_flow_reports_a_validation_failure_as_a_node_error(registry: ModelRegistry) -> None:
    """Invalid input in a flow fails the message with NODE_EXCEPTION carrying the ValidationError."""
    node = validating_node("both", [], {"total": 1})
    flow = create(node.to(), emit_errors_to_rookery=True)
    flow.run(registry=registry)
    try:
        await flow.emit({"qty": "many"})
        error = await flow.fetch()
        assert isinstance(error, FlowError)
        assert error.code == "NODE_EXCEPTION"
        assert isinstance(error.original_exc, ValidationError)
    finally:
        await flow.stop()


async def test_run_with_a_registry_missing_entries_names_them_sorted() -> None:
    """run(registry=...) lists, sorted, every validating node the registry lacks."""

    async def zeta(msg: Any, ctx: Context) -> Any:
        return msg

    async def alpha(msg: Any, ctx: Context) -> Any:
        return msg

    async def free(msg: Any, ctx: Context) -> Any:
        return msg

    z, a = Node(zeta), Node(alpha)
    f = Node(free, policy=NodePolicy(validate="none"))
    flow = create(z.to(a), a.to(f), f.to())
    with pytest.raises(
        RuntimeError,
        match=r"^ModelRegistry is missing entries for nodes requiring validation: alpha, zeta$",
    ):
        flow.run(registry=ModelRegistry())
    assert flow.statistics().running is False


async def test_message_model_node_returning_a_non_message_warns() -> None:
    """A node registered with a Message out-model that returns a plain value triggers a RuntimeWarning."""
    registry = ModelRegistry()
    registry.register("n", Message, Message)
    node = validating_node("in", [], {"plain": True})
    flow = create(node.to())
    flow.run(registry=registry)
    try:
        await flow.emit(Message(payload=1, headers=Headers(tenant="t")))
        with pytest.warns(RuntimeWarning, match="Message -> Message"):
            result = await flow.fetch()
        assert result == {"plain": True}
    finally:
        await flow.stop()
