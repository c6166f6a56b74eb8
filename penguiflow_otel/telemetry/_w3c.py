"""W3C trace context parsing and trace-id mapping, in pure Python (no OpenTelemetry import).

The runtime's ``_message.py`` calls :func:`parse_traceparent`; telemetry maps flow trace ids to
OpenTelemetry trace ids with :func:`otel_trace_id`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, NamedTuple

__all__ = ["TraceParent", "is_w3c_trace_id", "otel_trace_id", "parse_traceparent"]

MAX_TRACEPARENT_LENGTH: Final = 512
_HEX_FIELD = re.compile(r"[0-9a-f]+\Z")
_W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}\Z")
_ZERO_TRACE_ID: Final = "0" * 32
_ZERO_SPAN_ID: Final = "0" * 16
_HASH_PERSON: Final = b"penguiflow.tid"


class TraceParent(NamedTuple):
    """The fields of a valid ``traceparent`` header."""

    version: str
    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        """Whether the caller sampled this trace (flag bit 0)."""
        return bool(self.flags & 0x01)


def _hex(field: str, length: int) -> bool:
    return len(field) == length and _HEX_FIELD.match(field) is not None


def parse_traceparent(value: str | None) -> TraceParent | None:
    """Parse a ``traceparent`` header; return ``None`` when it is absent or malformed.

    Rules: at most 512 characters as given; leading and trailing spaces and tabs are trimmed and no
    other whitespace is allowed; ``version-traceid-parentid-flags`` in lowercase hex of lengths 2,
    32, 16 and 2; version not ``ff``; version ``00`` has exactly four fields (later versions may have
    more); neither the trace id nor the parent id is all zeros.
    """
    if value is None or len(value) > MAX_TRACEPARENT_LENGTH:
        return None
    text = value.strip(" \t")
    parts = text.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[0], parts[1], parts[2], parts[3]
    if not (_hex(version, 2) and _hex(trace_id, 32) and _hex(parent_id, 16) and _hex(flags, 2)):
        return None
    if version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    return TraceParent(version, trace_id, parent_id, int(flags, 16))


def is_w3c_trace_id(trace_id: str) -> bool:
    """Whether ``trace_id`` is already a W3C trace id: 32 lowercase hex digits, not all zeros."""
    return len(trace_id) == 32 and trace_id != _ZERO_TRACE_ID and _W3C_TRACE_ID.match(trace_id) is not None


def otel_trace_id(trace_id: str) -> tuple[int, bool]:
    """Map a flow trace id to a 128-bit OpenTelemetry trace id.

    Returns ``(id, mapped)``: a W3C-form id is used as is (``mapped`` False); any other string is
    hashed with BLAKE2b (``mapped`` True), and a zero hash becomes 1.
    """
    if is_w3c_trace_id(trace_id):
        return int(trace_id, 16), False
    digest = hashlib.blake2b(trace_id.encode(), digest_size=16, person=_HASH_PERSON).digest()
    return int.from_bytes(digest, "big") or 1, True
