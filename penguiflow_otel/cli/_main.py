"""Argument parsing and dispatch for ``penguiflow-otel``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="penguiflow-otel", description="The PenguiFlow async flow runtime, OpenTelemetry-native."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the bundled example flow and show what it did",
        description="Run the bundled flow (fan-out, join, a retry, a cancelled trace, streaming) and report.",
    )
    demo.add_argument("--messages", type=_positive_int, default=20, help="traces to send (default 20)")
    demo.add_argument("--json", action="store_true", help="print the report as one JSON object")
    demo.add_argument(
        "--serve", action="store_true", help="keep /metrics up (with a stalled flow) until Ctrl-C"
    )
    demo.add_argument("--port", type=_port, default=0, help="port for /metrics (default: one the OS picks)")
    demo.add_argument(
        "--otlp", metavar="ENDPOINT", help="send spans over OTLP/HTTP to ENDPOINT instead of a file"
    )
    demo.add_argument(
        "--traces-file", default="penguiflow-demo-traces.jsonl", help="where spans are written as JSON lines"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from ._demo import DemoOptions, run_demo

        options = DemoOptions(
            messages=args.messages,
            as_json=args.json,
            serve=args.serve,
            port=args.port,
            otlp=args.otlp,
            traces_file=args.traces_file,
        )
        return asyncio.run(run_demo(options))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
