"""The typed tool catalog: decorator metadata, model resolution, checks and the prompt record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel
from weather_tools import CityArgs, Weather

from penguiflow_otel import Context, ModelRegistry, Node, NodePolicy
from penguiflow_otel.catalog import RESERVED_ACTIONS, CatalogError, NodeSpec, ToolPolicy, build_catalog, tool
from penguiflow_otel.planner import PlannerFinish, ReactPlanner, ToolContext
from penguiflow_otel.testing import ScriptedLLM


@tool(
    desc="Current weather for a city", side_effects="read", tags=("weather", "geo", "weather"), timeout_s=10
)
async def get_weather(args: CityArgs, ctx: ToolContext) -> Weather:
    return Weather(city=args.city, temp_c=18.0)


async def lookup(args: CityArgs, ctx: ToolContext) -> dict[str, Any]:
    """Look a city up.

    This second paragraph is not part of the description.
    """
    return {"city": args.city}


async def untyped_return(args: CityArgs, ctx: ToolContext):  # type: ignore[no-untyped-def]
    return {"anything": True}


def test_build_catalog_reads_models_description_and_metadata_from_the_function() -> None:
    """Models come from the annotations; the decorator's metadata lands on the NodeSpec."""
    (spec,) = build_catalog([get_weather])
    assert spec.name == "get_weather"
    assert spec.desc == "Current weather for a city"
    assert spec.args_model is CityArgs
    assert spec.out_model is Weather
    assert spec.side_effects == "read"
    assert spec.tags == ("weather", "geo")
    assert spec.timeout_s == 10


def test_description_falls_back_to_the_docstring_first_paragraph_then_the_name() -> None:
    """Without ``desc`` the docstring's first paragraph is used, else the tool name."""
    lookup_spec, untyped_spec = build_catalog([lookup, untyped_return])
    assert lookup_spec.desc == "Look a city up."
    assert untyped_spec.desc == "untyped_return"


def test_a_missing_return_annotation_gives_a_permissive_dict_model() -> None:
    """A tool without a return annotation accepts any dict as output."""
    (spec,) = build_catalog([untyped_return])
    assert spec.out_model.model_validate({"x": [1, 2]}).model_dump() == {"x": [1, 2]}


def test_registry_models_take_precedence_over_annotations() -> None:
    """A name registered in the ModelRegistry uses the registry's models."""

    class Other(BaseModel):
        value: int

    registry = ModelRegistry()
    registry.register("lookup", Other, Other)
    (spec,) = build_catalog([lookup], registry)
    assert spec.args_model is Other


def test_a_flow_node_is_a_tool_with_its_policy_timeout_and_no_retries() -> None:
    """A Node becomes a tool named after the node; its NodePolicy timeout applies when @tool sets none."""

    async def fetch(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city=args.city, temp_c=1.0)

    node = Node(fetch, name="fetch_weather", policy=NodePolicy(timeout_s=3.0, max_retries=5))
    (spec,) = build_catalog([node])
    assert spec.name == "fetch_weather"
    assert spec.node is node
    assert spec.timeout_s == 3.0


async def test_a_flow_node_tool_calling_ctx_emit_is_a_tool_error() -> None:
    """A Node used as a tool gets a ToolContext, which has no emit: calling it is a tool_error step."""
    reached: list[str] = []

    async def relay(message: CityArgs, ctx: Context) -> Weather:
        reached.append(type(ctx).__name__)
        await ctx.emit(message)
        return Weather(city=message.city, temp_c=0.0)

    llm = ScriptedLLM([ScriptedLLM.call("relay", city="Lima"), ScriptedLLM.final("could not relay")])
    planner = ReactPlanner(llm_client=llm, nodes=[Node(relay, name="relay")])
    result = await planner.run("relay it")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert reached == ["ToolContext"]
    step = result.metadata["steps"][0]
    assert (step["kind"], step["error_code"]) == ("error", "tool_error")
    assert step["failure"]["node"] == "relay"
    assert step["error"] == (
        "tool 'relay' raised AttributeError: 'ToolContext' object has no attribute 'emit'"
    )
    assert json.loads(llm.calls[1].messages[-1]["content"])["failure"]["error_code"] == "tool_error"


def test_a_duplicate_name_is_a_catalog_error_naming_the_tool() -> None:
    """Two tools with one name are refused at build time."""
    with pytest.raises(CatalogError, match="duplicate tool name 'get_weather'") as info:
        build_catalog([get_weather, get_weather])
    assert info.value.tool == "get_weather"


@pytest.mark.parametrize("reserved", sorted(RESERVED_ACTIONS))
def test_a_tool_named_like_an_opcode_is_refused_with_a_rename_hint(reserved: str) -> None:
    """A tool named final_response or parallel is a CatalogError suggesting @tool(name=...)."""

    @tool(name=reserved)
    async def clash(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city="x", temp_c=0.0)

    with pytest.raises(CatalogError) as info:
        build_catalog([clash])
    assert str(info.value) == (
        f"'{reserved}' is a reserved action name; rename the tool (e.g. @tool(name=\"run_{reserved}\"))"
    )


def test_a_malformed_name_is_a_catalog_error() -> None:
    """Names must match the catalog's name pattern."""

    @tool(name="has space")
    async def spaced(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city="x", temp_c=0.0)

    with pytest.raises(CatalogError, match="'has space' must match"):
        build_catalog([spaced])


def test_dotted_names_are_accepted_for_future_remote_tools() -> None:
    """Names may contain dots (``server.tool``)."""

    @tool(name="github.search")
    async def search(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city="x", temp_c=0.0)

    assert build_catalog([search])[0].name == "github.search"


def test_unresolvable_models_are_a_catalog_error() -> None:
    """A first parameter that is not a pydantic model cannot be a tool."""

    async def bad(args: str, ctx: ToolContext) -> Weather:
        return Weather(city=args, temp_c=0.0)

    with pytest.raises(CatalogError, match="tool 'bad': its first parameter must be annotated"):
        build_catalog([bad])


def test_an_example_that_does_not_validate_is_a_catalog_error() -> None:
    """Examples are validated against the args model at build time."""

    @tool(examples=[{"args": {"town": "Lima"}, "description": "wrong field"}])
    async def example_tool(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city=args.city, temp_c=0.0)

    with pytest.raises(CatalogError, match="example 0 does not validate"):
        build_catalog([example_tool])


def test_a_sync_function_is_a_type_error() -> None:
    """Tools must be declared with async def."""

    def sync_tool(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city=args.city, temp_c=0.0)

    with pytest.raises(TypeError, match="must be declared with async def"):
        build_catalog([sync_tool])


def test_the_planner_rechecks_a_prebuilt_catalog() -> None:
    """ReactPlanner(catalog=...) runs the build-time checks again."""
    (spec,) = build_catalog([get_weather])
    with pytest.raises(CatalogError, match="duplicate"):
        ReactPlanner(llm_client=ScriptedLLM([]), catalog=[spec, spec])
    bad = NodeSpec(node=get_weather, name="parallel", desc="d", args_model=CityArgs, out_model=Weather)
    with pytest.raises(CatalogError, match="reserved action name"):
        ReactPlanner(llm_client=ScriptedLLM([]), catalog=[bad])


def test_the_tool_record_is_json_safe_and_keeps_only_set_hints() -> None:
    """to_tool_record gives schemas, tags, examples, set hints and the JSON-safe extra entries."""

    @tool(
        desc="d",
        cost_hint="low",
        examples=[{"args": {"city": "Lima"}, "description": "a city"}],
        extra={"owner": "geo-team", "callback": print, "blob": object()},
    )
    async def described(args: CityArgs, ctx: ToolContext) -> Weather:
        return Weather(city=args.city, temp_c=0.0)

    record = build_catalog([described])[0].to_tool_record()
    assert record["args_schema"] == CityArgs.model_json_schema()
    assert record["out_schema"] == Weather.model_json_schema()
    assert record["cost_hint"] == "low"
    assert "latency_hint_ms" not in record
    assert record["extra"] == {"owner": "geo-team"}
    assert record["examples"] == [{"args": {"city": "Lima"}, "description": "a city"}]


def test_tool_policy_filters_the_catalog_once_at_construction() -> None:
    """Allowed, denied and required tags remove tools from what the planner offers."""
    policy = ToolPolicy(
        allowed_tools=frozenset({"get_weather", "lookup"}), require_tags=frozenset({"weather"})
    )
    planner = ReactPlanner(llm_client=ScriptedLLM([]), nodes=[get_weather, lookup], tool_policy=policy)
    assert [spec.name for spec in planner.catalog] == ["get_weather"]
    denied = ReactPlanner(
        llm_client=ScriptedLLM([]),
        nodes=[get_weather, lookup],
        tool_policy=ToolPolicy(denied_tools=frozenset({"lookup"})),
    )
    assert [spec.name for spec in denied.catalog] == ["get_weather"]
