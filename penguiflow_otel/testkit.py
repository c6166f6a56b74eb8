"""Test helpers for flows (upstream-compatible)."""

from ._testkit import (
    _StubContext as _StubContext,
)
from ._testkit import (
    assert_node_sequence,
    assert_preserves_message_envelope,
    get_recorded_events,
    run_one,
    simulate_error,
)

__all__ = [
    "assert_node_sequence",
    "assert_preserves_message_envelope",
    "get_recorded_events",
    "run_one",
    "simulate_error",
]

from ._public import publish

publish(__name__, globals(), __all__)
