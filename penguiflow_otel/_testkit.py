"""Placeholder replaced by the testkit implementation."""

from typing import Any

__all__ = [
    "_StubContext",
    "assert_node_sequence",
    "assert_preserves_message_envelope",
    "get_recorded_events",
    "run_one",
    "simulate_error",
]
_StubContext: Any = None
run_one: Any = None
assert_node_sequence: Any = None
get_recorded_events: Any = None
simulate_error: Any = None
assert_preserves_message_envelope: Any = None
