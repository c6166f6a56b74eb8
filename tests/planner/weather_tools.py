"""The weather tool the planner tests hand their planners, with its argument and result models."""

from __future__ import annotations

from pydantic import BaseModel

from penguiflow_otel.catalog import tool
from penguiflow_otel.planner import ToolContext


class CityArgs(BaseModel):
    """The arguments of a per-city tool."""

    city: str


class Weather(BaseModel):
    """A city's temperature."""

    city: str
    temp_c: float


@tool(desc="Current weather", side_effects="read")
async def get_weather(args: CityArgs, ctx: ToolContext) -> Weather:
    """18 °C wherever asked."""
    return Weather(city=args.city, temp_c=18.0)
