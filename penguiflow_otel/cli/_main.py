"""Argument parsing and dispatch for ``penguiflow-otel``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Reports a usage mistake in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    parser = _Parser(
        prog="penguiflow-otel", description="The PenguiFlow async flow runtime, OpenTelemetry-native."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_new(commands)
    _add_dev(commands)
    demo = commands.add_parser(
        "demo",
        help="run the bundled example flow and show what it did",
        description=(
            "Run the bundled flow (fan-out, join, a retry, a cancelled trace, streaming, then an agent "
            "stage: a scripted planner with a tool call, a repaired reply and a parallel plan; no "
            "network) and report."
        ),
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
    demo.add_argument(
        "--capture-content",
        action="store_true",
        help="put the planner's prompts, tool arguments and answers on spans (off by default)",
    )
    return parser


def _add_new(commands: argparse._SubParsersAction[_Parser]) -> None:
    new = commands.add_parser(
        "new",
        help="create a project: tools, a planner (and a flow), telemetry set-up and offline tests",
        description="Create the project NAME in DIR/NAME from a template.",
    )
    new.add_argument("name", metavar="NAME", help="project name: a letter, then letters, digits, '-' or '_'")
    new.add_argument(
        "--template",
        default="react",
        help="react (the default: three tools, a planner in a streaming flow) or minimal (one tool)",
    )
    new.add_argument("--output-dir", type=Path, default=Path(), metavar="DIR", help="where to create NAME/")
    new.add_argument("--force", action="store_true", help="render into an existing directory")
    new.add_argument("--dry-run", action="store_true", help="list the files without writing anything")
    new.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _add_dev(commands: argparse._SubParsersAction[_Parser]) -> None:
    dev = commands.add_parser(
        "dev",
        help="serve a project's flow or planner on 127.0.0.1: chat, SSE streaming, /health, /metrics",
        description="Serve the flow or planner of a project made by `penguiflow-otel new` (extra: dev).",
    )
    dev.add_argument(
        "--project-root", type=Path, default=Path(), metavar="DIR", help="the project (default .)"
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; no authentication)"
    )
    dev.add_argument(
        "--port", type=_port, default=8001, help="port to bind (default 8001; 0 lets the OS pick)"
    )
    dev.add_argument("--env-file", type=Path, metavar="PATH", help="variables to load (default DIR/.env)")
    dev.add_argument(
        "--capture-content",
        action="store_true",
        help="put prompts, tool arguments and answers on spans (off by default)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    from ._errors import CommandError

    try:
        return _dispatch(args)
    except CommandError as exc:
        print(f"penguiflow-otel {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "new":
        from ._new import NewOptions, run_new

        return run_new(
            NewOptions(
                name=args.name,
                template=args.template,
                output_dir=args.output_dir,
                force=args.force,
                dry_run=args.dry_run,
                quiet=args.quiet,
            )
        )
    if args.command == "dev":
        from ._dev import DevOptions, run_dev

        return run_dev(
            DevOptions(
                project_root=args.project_root,
                host=args.host,
                port=args.port,
                env_file=args.env_file,
                capture_content=args.capture_content,
            )
        )
    if args.command == "demo":
        from ._demo import DemoOptions, run_demo

        options = DemoOptions(
            messages=args.messages,
            as_json=args.json,
            serve=args.serve,
            port=args.port,
            otlp=args.otlp,
            traces_file=args.traces_file,
            capture_content=args.capture_content,
        )
        return asyncio.run(run_demo(options))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
