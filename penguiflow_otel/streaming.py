"""Streaming helpers: SSE and WebSocket formats, flow-to-stream and stream-to-flow bridges."""

from ._streaming import chunk_to_ws_json as chunk_to_ws_json
from ._streaming import emit_stream_events as emit_stream_events
from ._streaming import format_sse_event as format_sse_event
from ._streaming import stream_flow as stream_flow

__all__ = ["chunk_to_ws_json", "emit_stream_events", "format_sse_event", "stream_flow"]

from ._public import publish

publish(__name__, globals(), __all__)
