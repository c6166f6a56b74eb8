"""Message envelope and payload types."""

from ._message import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought

__all__ = [
    "FinalAnswer",
    "Headers",
    "Message",
    "PlanStep",
    "StreamChunk",
    "Thought",
    "WM",
]

from ._public import publish

publish(__name__, globals(), __all__)
