"""Quickstart: a typed two-node flow. Run with `uv run python examples/quickstart/flow.py`."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from penguiflow_otel import ModelRegistry, Node, create


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    text: str
    words: int


async def shout(question: Question, ctx: object) -> Question:
    return Question(text=question.text.upper())


async def answer(question: Question, ctx: object) -> Answer:
    return Answer(text=f"{question.text}!", words=len(question.text.split()))


async def main() -> Answer:
    shout_node, answer_node = Node(shout, name="shout"), Node(answer, name="answer")
    registry = ModelRegistry()
    registry.register("shout", Question, Question)
    registry.register("answer", Question, Answer)
    flow = create(shout_node.to(answer_node), answer_node.to())
    flow.run(registry=registry)
    try:
        await flow.emit(Question(text="hello penguins"))
        result: Answer = await flow.fetch()
    finally:
        await flow.stop()
    return result


if __name__ == "__main__":
    print(asyncio.run(main()))
