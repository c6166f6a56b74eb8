"""The demo's ``agent`` stage: a ``ReactPlanner`` over three small tools, played by a ``ScriptedLLM``.

Every trace makes the same moves (planner.md §8.3): one ``lookup_order`` call; a reply that is not
JSON, which the planner repairs; a parallel plan of two ``get_weather`` branches joined by
``compare``; then a final answer. The script is a function of the messages the planner sends, not a
list of replies, so concurrent traces never take each other's replies: each trace's conversation
alone decides the next reply, and the same order always gets the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from .._message import FinalAnswer, Message
from .._node import Node
from ..catalog import tool
from ..planner import PlannerFinish, PlannerPause, PlannerRequest, ReactPlanner, ToolContext, planner_node
from ..testing import ScriptedLLM

__all__ = ["AGENT_NAME", "GARBAGE_REPLY", "AgentAnswer", "agent_node", "demo_llm", "to_answer"]

AGENT_NAME = "order_agent"
GARBAGE_REPLY = "Sure! Let me check the weather at both ends first."
"""The unparseable reply of the second step: prose where one JSON object was asked for."""

_CHUNK_CHARS = 32
_CITIES = ("Lima", "Oslo", "Quito")
_WEATHER = {"Lima": (18.0, "overcast"), "Oslo": (-3.5, "snow"), "Quito": (14.0, "sunny")}


# Tools -----------------------------------------------------------------------------------------


class OrderRef(BaseModel):
    """Which order to look up."""

    order: str


class Order(BaseModel):
    """Where an order ships from and to."""

    order: str
    origin: str
    destination: str
    items: int


class City(BaseModel):
    """A city to read the weather of."""

    city: str


class Weather(BaseModel):
    """The weather in one city."""

    city: str
    celsius: float
    sky: str


class Readings(BaseModel):
    """Weather readings to compare."""

    readings: list[Weather]


class Comparison(BaseModel):
    """The warmest and coldest of the readings and the spread between them."""

    warmest: str
    coldest: str
    spread_c: float


def _order_number(order: str) -> int:
    digits = "".join(char for char in order if char.isdigit())
    return int(digits) if digits else len(order)


@tool(desc="Look up an order: where it ships from and to, and how many items it has.", side_effects="read")
async def lookup_order(args: OrderRef, ctx: ToolContext) -> Order:
    number = _order_number(args.order)
    origin, destination = _CITIES[number % 3], _CITIES[(number + 1) % 3]
    return Order(order=args.order, origin=origin, destination=destination, items=number % 4 + 2)


@tool(desc="Current weather of a city (Lima, Oslo or Quito).", side_effects="read")
async def get_weather(args: City, ctx: ToolContext) -> Weather:
    celsius, sky = _WEATHER.get(args.city, (20.0, "unknown"))
    return Weather(city=args.city, celsius=celsius, sky=sky)


@tool(desc="Compare weather readings: the warmest, the coldest and the spread in Celsius.")
async def compare(args: Readings, ctx: ToolContext) -> Comparison:
    ordered = sorted(args.readings, key=lambda reading: reading.celsius)
    return Comparison(
        warmest=ordered[-1].city,
        coldest=ordered[0].city,
        spread_c=round(ordered[-1].celsius - ordered[0].celsius, 1),
    )


# The scripted model ----------------------------------------------------------------------------


def _reply(messages: list[dict[str, str]]) -> str | dict[str, Any]:
    """The next reply of one trace's conversation."""
    bodies = [json.loads(message["content"]) for message in messages if message["role"] == "user"]
    order = str(bodies[0]["context"]["order"])
    seen = [body["observation"] for body in bodies if "observation" in body]  # tool results so far
    if not seen:
        return ScriptedLLM.call(lookup_order.__name__, order=order)
    if len(seen) == 1:
        # The demo planner has no memory, so a second system message is the planner's repair note.
        repairing = sum(message["role"] == "system" for message in messages) > 1
        if not repairing:
            return GARBAGE_REPLY
        found = seen[0]
        return ScriptedLLM.parallel(
            [
                (get_weather.__name__, {"city": found["origin"]}),
                (get_weather.__name__, {"city": found["destination"]}),
            ],
            join={"node": compare.__name__, "inject": {"readings": "$results"}},
        )
    found, comparison = seen[0], seen[1]["join"]["observation"]
    return ScriptedLLM.final(
        f"{order} ({found['items']} items) ships from {found['origin']} to {found['destination']}; "
        f"{comparison['warmest']} is {comparison['spread_c']} °C warmer than {comparison['coldest']}."
    )


def demo_llm() -> ScriptedLLM:
    """A fresh scripted model for the demo planner (no network); it streams its replies in pieces."""
    return ScriptedLLM(_reply, model="scripted-demo", chunk_size=_CHUNK_CHARS)


# The stage -------------------------------------------------------------------------------------


class AgentAnswer(FinalAnswer):
    """What ``render`` returns: the planner's answer (or why it has none) and its finish reason."""

    finish_reason: str


def _request(parts: Sequence[object]) -> PlannerRequest:
    """The join's three branch results as a query; the order id travels in ``llm_context``."""
    enriched = next(str(part) for part in parts if str(part).startswith("enriched("))
    order = enriched.removeprefix("enriched(").removesuffix(")")
    listed = ", ".join(sorted(str(part) for part in parts))
    return PlannerRequest(
        query=f"Where does {order} ship, and how does the weather compare at both ends? ({listed})",
        llm_context={"order": order},
    )


def agent_node(llm: ScriptedLLM, *, capture_content: bool | None) -> Node:
    """The ``agent`` node: a planner node over the three tools, driven by ``llm``."""
    planner = ReactPlanner(
        llm_client=llm,
        nodes=[lookup_order, get_weather, compare],
        name=AGENT_NAME,
        stream_final_response=True,  # streamed calls feed the time-to-first-chunk metric and panel
        capture_content=capture_content,
    )
    return planner_node(planner, name="agent", to_request=_request)


def to_answer(message: Message[Any]) -> Message[Any]:
    """``message`` with its planner result replaced by an ``AgentAnswer``."""
    result: PlannerFinish | PlannerPause = message.payload
    if isinstance(result, PlannerPause):
        answer = AgentAnswer(text=f"paused: {result.reason}", finish_reason="paused")
    elif result.reason == "answer_complete":
        answer = AgentAnswer(text=str(result.payload["raw_answer"]), finish_reason=result.reason)
    else:
        failure = result.payload.get("failure_reason") if isinstance(result.payload, dict) else None
        answer = AgentAnswer(text=f"no answer ({failure})", finish_reason=result.reason)
    return message.model_copy(update={"payload": answer})
