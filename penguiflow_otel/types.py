"""Message envelope and payload types."""

from ._message import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought

__all__ = ["WM", "FinalAnswer", "Headers", "Message", "PlanStep", "StreamChunk", "Thought"]
