"""The ``jsonl`` span exporter: one ``ReadableSpan.to_json(indent=None)`` object per line, appended to a file.

Imported by ``configure()`` only (it needs the SDK). It runs on the batch processor's thread, so a
slow disk never blocks the event loop; a write error is logged and reported as a failed export.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonLinesSpanExporter"]

_logger = logging.getLogger("penguiflow_otel.telemetry")


class JsonLinesSpanExporter(SpanExporter):
    """Appends each exported span to ``path`` as one JSON object per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # Opened here, so that an unwritable path fails configure() rather than every export.
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by shutdown()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``, one line each, and flush."""
        text = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            try:
                self._file.write(text)
                self._file.flush()
            except OSError:
                _logger.exception("could not write spans to %s", self.path)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file; later exports fail."""
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered beyond each export's own flush."""
        return True
