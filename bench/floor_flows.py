"""The physical floor: the benchmark graphs built from bare ``asyncio.Queue`` hand-offs.

Each node is one consumer task that gets from its inbound queue, awaits the same ``passthrough`` body the
API graphs use, and puts the result on its outbound queue. Every queue, ingress and egress included, is
bounded at the default queue size of the PenguiFlow API. No retries, timeouts, traces or events: this is
what moving a message through the graph costs with nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .api_flows import passthrough
from .drive import FlowHandle

__all__ = ["GRAPHS", "QUEUE_MAXSIZE"]

QUEUE_MAXSIZE = 64  # PenguiFlow's DEFAULT_QUEUE_MAXSIZE


async def _node_loop(inbound: asyncio.Queue[Any], outbound: asyncio.Queue[Any]) -> None:
    while True:
        item = await inbound.get()
        await outbound.put(await passthrough(item, None))


def chain3() -> FlowHandle:
    """a -> b -> c over four bounded queues (ingress, a->b, b->c, egress). Starts the node tasks."""
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(QUEUE_MAXSIZE) for _ in range(4)]
    tasks = [
        asyncio.create_task(_node_loop(queues[i], queues[i + 1]), name=f"floor:{name}")
        for i, name in enumerate("abc")
    ]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return FlowHandle(emit=queues[0].put, fetch=queues[-1].get, stop=stop)


GRAPHS: dict[str, Callable[[], FlowHandle]] = {"chain3": chain3}
