"""A ReactPlanner over two tools, offline by default, against a real endpoint when configured.

Run with `uv run python examples/planner_agent/agent.py ["question"]`. Without configuration a
`ScriptedLLM` plays the model (no network); with `PENGUIFLOW_OTEL_LLM_MODEL` set (and
`PENGUIFLOW_OTEL_LLM_BASE_URL` or `PENGUIFLOW_OTEL_LLM_API_KEY`) it calls that OpenAI-compatible
endpoint. Either way it prints the answer, the finish reason and the span tree of the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from pydantic import BaseModel

from penguiflow_otel.catalog import tool
from penguiflow_otel.llm import JSONLLMClient, OpenAICompatibleClient
from penguiflow_otel.planner import PlannerFinish, ReactPlanner, ToolContext
from penguiflow_otel.testing import ScriptedLLM, capture_telemetry

WEATHER = {"Lima": (18.0, "overcast"), "Oslo": (-3.5, "snow"), "Quito": (14.0, "sunny")}


class City(BaseModel):
    city: str


class Weather(BaseModel):
    city: str
    celsius: float
    sky: str


class Celsius(BaseModel):
    celsius: float


class Fahrenheit(BaseModel):
    fahrenheit: float


@tool(desc="Current weather of a city (Lima, Oslo or Quito).", side_effects="read")
async def get_weather(args: City, ctx: ToolContext) -> Weather:
    celsius, sky = WEATHER.get(args.city, (20.0, "unknown"))
    return Weather(city=args.city, celsius=celsius, sky=sky)


@tool(desc="Convert a temperature from Celsius to Fahrenheit.")
async def to_fahrenheit(args: Celsius, ctx: ToolContext) -> Fahrenheit:
    return Fahrenheit(fahrenheit=round(args.celsius * 9 / 5 + 32, 1))


def scripted_llm() -> ScriptedLLM:
    """Plays the model offline: weather first, then the conversion, then the answer."""

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        bodies = [json.loads(m["content"]) for m in messages if m["role"] == "user"]
        seen = [body["observation"] for body in bodies if "observation" in body]  # tool results so far
        if not seen:
            return ScriptedLLM.call("get_weather", city="Lima")
        weather = seen[0]
        if len(seen) == 1:
            return ScriptedLLM.call("to_fahrenheit", celsius=weather["celsius"])
        fahrenheit = seen[1]["fahrenheit"]
        return ScriptedLLM.final(
            f"{weather['city']}: {weather['celsius']} °C ({fahrenheit} °F), {weather['sky']}."
        )

    return ScriptedLLM(reply)


def llm_client() -> JSONLLMClient:
    if os.environ.get("PENGUIFLOW_OTEL_LLM_MODEL"):
        print(f"model: {os.environ['PENGUIFLOW_OTEL_LLM_MODEL']} (OpenAI-compatible endpoint)")
        return OpenAICompatibleClient()  # model, base URL and key come from the environment
    print("model: scripted (offline; set PENGUIFLOW_OTEL_LLM_MODEL to use a real endpoint)")
    return scripted_llm()


async def main(question: str) -> PlannerFinish:
    planner = ReactPlanner(llm_client=llm_client(), nodes=[get_weather, to_fahrenheit], name="weather_agent")
    with capture_telemetry() as telemetry:  # spans in memory, to print the tree below
        result = await planner.run(question)
        tree = telemetry.tree()
    if not isinstance(result, PlannerFinish):
        raise SystemExit(f"the run paused unexpectedly: {result.reason}")
    answer = result.payload["raw_answer"] if result.reason == "answer_complete" else result.payload
    print(f"answer: {answer}")
    print(f"finish reason: {result.reason}")
    print(f"span tree of trace {result.metadata['trace_id']}:")
    for depth, name in tree:
        print(f"  {'  ' * depth}{name}")
    return result


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "How warm is it in Lima, in Fahrenheit?"))
