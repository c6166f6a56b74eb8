"""Routing requests and policies (penguiflow_otel.policies)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from penguiflow_otel.policies import (
    DictRoutingPolicy,
    PolicyCallable,
    PolicyLike,
    RoutingDecisionType,
    RoutingPolicy,
    RoutingRequest,
    evaluate_policy,
)


@dataclass
class FakeNode:
    """Stands in for a Node: routing reads only name and node_id."""

    name: str | None
    node_id: str


ROUTER = FakeNode("router", "router-id")
LEFT = FakeNode("left", "left-id")
RIGHT = FakeNode(None, "right-id")


def make_request(trace_id: str | None = "t1", message: object = "msg") -> RoutingRequest:
    """A request from ROUTER proposing LEFT and RIGHT."""
    return RoutingRequest(
        message=message, context=None, node=ROUTER, proposed=(LEFT, RIGHT), trace_id=trace_id
    )


def test_routing_request_fields_keep_their_order() -> None:
    """RoutingRequest is a slots dataclass of message, context, node, proposed, trace_id."""
    names = [field.name for field in dataclasses.fields(RoutingRequest)]
    assert names == ["message", "context", "node", "proposed", "trace_id"]
    assert not hasattr(make_request(), "__dict__")


def test_node_name_falls_back_to_the_node_id() -> None:
    """node_name is the router's name, or its id when the name is empty."""
    assert make_request().node_name == "router"
    unnamed = RoutingRequest("m", None, FakeNode(None, "anon-id"), (), None)
    assert unnamed.node_name == "anon-id"


def test_proposed_names_keep_order_with_the_id_fallback() -> None:
    """proposed_names is a tuple of names (else ids) in proposal order."""
    assert make_request().proposed_names == ("left", "right-id")


async def test_evaluate_policy_prefers_select() -> None:
    """An object with select() is asked through select, even if it is also callable."""

    class Both:
        def select(self, request: RoutingRequest) -> RoutingDecisionType:
            return "via-select"

        def __call__(self, request: RoutingRequest) -> RoutingDecisionType:
            return "via-call"

    assert await evaluate_policy(Both(), make_request()) == "via-select"


async def test_evaluate_policy_calls_a_plain_function() -> None:
    """A function is called with the request."""

    def by_message(request: RoutingRequest) -> RoutingDecisionType:
        return [f"to-{request.message}"]

    assert await evaluate_policy(by_message, make_request(message="x")) == ["to-x"]


async def test_evaluate_policy_awaits_async_policies() -> None:
    """An awaitable returned by select() or by a function is awaited."""

    class AsyncSelect:
        async def select(self, request: RoutingRequest) -> RoutingDecisionType:
            return LEFT

    async def async_function(request: RoutingRequest) -> RoutingDecisionType:
        return (RIGHT, "left")

    assert await evaluate_policy(AsyncSelect(), make_request()) is LEFT
    assert await evaluate_policy(async_function, make_request()) == (RIGHT, "left")


def test_policy_aliases_accept_objects_and_functions() -> None:
    """PolicyLike covers RoutingPolicy objects and PolicyCallable functions."""

    def drop(request: RoutingRequest) -> Awaitable[RoutingDecisionType] | RoutingDecisionType:
        return None

    function: PolicyCallable = drop
    policy: RoutingPolicy = DictRoutingPolicy({})
    likes: list[PolicyLike] = [function, policy]
    assert likes == [drop, policy]


def test_dict_policy_looks_up_the_trace_id_by_default() -> None:
    """Without a key_getter the key is the request's trace id."""
    policy = DictRoutingPolicy({"t1": "left", "t2": ["left", "right"]})
    assert policy.select(make_request("t1")) == "left"
    assert policy.select(make_request("t2")) == ["left", "right"]


def test_dict_policy_returns_decisions_as_stored() -> None:
    """select returns the stored object itself, synchronously."""
    decision = ["left"]
    assert DictRoutingPolicy({"t1": decision}).select(make_request()) is decision


@pytest.mark.parametrize("trace_id", [None, "unknown"])
def test_dict_policy_falls_back_to_the_default(trace_id: str | None) -> None:
    """A None or unmapped key yields the default."""
    policy = DictRoutingPolicy({"t1": "left", "None": "wrong"}, default="fallback")
    assert policy.select(make_request(trace_id)) == "fallback"


def test_dict_policy_default_is_none_unless_given() -> None:
    """With no default an unmapped key drops the message (None)."""
    assert DictRoutingPolicy({}).select(make_request()) is None


def test_key_getter_chooses_the_lookup_key() -> None:
    """A key_getter replaces the trace id as key."""
    policy = DictRoutingPolicy({"vip": "right"}, key_getter=lambda request: str(request.message))
    assert policy.select(make_request(message="vip")) == "right"


def test_dict_policy_copies_its_mapping() -> None:
    """Changing the caller's mapping later does not change the policy."""
    mapping: dict[str, RoutingDecisionType] = {"t1": "left"}
    policy = DictRoutingPolicy(mapping)
    mapping["t1"] = "right"
    assert policy.select(make_request()) == "left"


def test_update_mapping_replaces_the_whole_mapping() -> None:
    """Keys missing from the new mapping fall back to the default."""
    policy = DictRoutingPolicy({"t1": "left"}, default="fallback")
    policy.update_mapping({"t2": "right"})
    assert policy.select(make_request("t1")) == "fallback"
    assert policy.select(make_request("t2")) == "right"


def test_set_default_replaces_the_fallback() -> None:
    """set_default changes what an unmapped key yields."""
    policy = DictRoutingPolicy({})
    policy.set_default("right")
    assert policy.select(make_request()) == "right"


def test_from_json_builds_a_policy_with_options() -> None:
    """from_json decodes an object and forwards default and key_getter."""
    policy = DictRoutingPolicy.from_json(
        '{"vip": ["left", "right"]}', default="fallback", key_getter=lambda r: str(r.message)
    )
    assert policy.select(make_request(message="vip")) == ["left", "right"]
    assert policy.select(make_request(message="other")) == "fallback"


@pytest.mark.parametrize("payload", ["[1, 2]", '"left"', "null", "3"])
def test_from_json_refuses_non_objects(payload: str) -> None:
    """JSON that is not an object raises TypeError."""
    with pytest.raises(TypeError, match=r"^JSON payload must decode to a mapping$"):
        DictRoutingPolicy.from_json(payload)


def test_from_json_file_reads_utf8_json(tmp_path: Path) -> None:
    """from_json_file loads a UTF-8 file holding a JSON object."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"t1": "café"}, ensure_ascii=False), encoding="utf-8")
    assert DictRoutingPolicy.from_json_file(path).select(make_request()) == "café"
    assert DictRoutingPolicy.from_json_file(str(path), default="d").select(make_request("x")) == "d"


def test_from_json_file_refuses_non_objects(tmp_path: Path) -> None:
    """A file holding a JSON array raises from_json's TypeError."""
    path = tmp_path / "policy.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(TypeError, match=r"^JSON payload must decode to a mapping$"):
        DictRoutingPolicy.from_json_file(path)


def test_from_env_decodes_json_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable's JSON object becomes the mapping; default and key_getter are forwarded."""
    monkeypatch.setenv("ROUTES", '{"t1": "left"}')
    policy = DictRoutingPolicy.from_env("ROUTES", default="fallback")
    assert policy.select(make_request("t1")) == "left"
    assert policy.select(make_request("t9")) == "fallback"
    keyed = DictRoutingPolicy.from_env("ROUTES", key_getter=lambda r: "t1")
    assert keyed.select(make_request(None)) == "left"


def test_from_env_uses_a_given_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loader receives the raw value and its mapping is used."""
    monkeypatch.setenv("ROUTES", "t1=left")
    seen: list[str] = []

    def load(raw: str) -> Mapping[str, RoutingDecisionType]:
        seen.append(raw)
        key, value = raw.split("=")
        return {key: value}

    assert DictRoutingPolicy.from_env("ROUTES", loader=load).select(make_request()) == "left"
    assert seen == ["t1=left"]


def test_from_env_refuses_an_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable raises KeyError naming it."""
    monkeypatch.delenv("PENGUIFLOW_OTEL_TEST_ROUTES", raising=False)
    with pytest.raises(KeyError) as info:
        DictRoutingPolicy.from_env("PENGUIFLOW_OTEL_TEST_ROUTES")
    assert info.value.args == ("Environment variable 'PENGUIFLOW_OTEL_TEST_ROUTES' not set",)


def test_from_env_refuses_a_non_mapping_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default JSON decoding to a non-object raises the loader TypeError."""
    monkeypatch.setenv("ROUTES", '["left"]')
    with pytest.raises(TypeError, match=r"^Policy loader must return a mapping$"):
        DictRoutingPolicy.from_env("ROUTES")


def test_from_env_refuses_a_non_mapping_from_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loader returning a non-mapping raises TypeError."""
    monkeypatch.setenv("ROUTES", "left")
    with pytest.raises(TypeError, match=r"^Policy loader must return a mapping$"):
        DictRoutingPolicy.from_env("ROUTES", loader=lambda raw: [raw])
