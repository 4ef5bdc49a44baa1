"""The ``wsolbench`` command line: one module per command group, registered here in order.

Each module in ``COMMANDS`` defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit code or None).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rich.console import Console
from rich.markup import escape
from rich_argparse import RichHelpFormatter

from wsolbench.errors import WsolbenchError

COMMANDS = (
    "bench",
    "train",
    "infer",
    "evaluate",
    "scg",
    "leaderboard",
    "data",
    "checkpoint",
    "list",
)

console = Console(stderr=True)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a WsolbenchError: one line naming the flag, exit 2."""

    def error(self, message: str):
        raise WsolbenchError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wsolbench",
        description="Weakly supervised object localization: train CAM, HaS, ACoL, SPG, ADL, "
        "CutMix and SPA under one protocol, post-process with SCG, and score maps exactly as "
        "wsolevaluation and the SPA code do.",
        formatter_class=RichHelpFormatter,
    )
    from wsolbench import __version__

    parser.add_argument("--version", action="version", version=f"wsolbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"wsolbench.cli.{name}")
        module.register(subparsers)
    return parser


def add_command(subparsers, name: str, help: str, description: str | None = None):
    """Add a sub-command parser with the project's help formatter."""
    return subparsers.add_parser(
        name, help=help, description=description or help, formatter_class=RichHelpFormatter
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command: the one exit path. A user error (``WsolbenchError``: bad input, a
    missing file, a full disk) is one line and exit code 2; anything else is a bug in
    wsolbench, reported in one line that names the file holding its traceback, exit code 1."""
    from wsolbench.io import session

    with session():  # every file the command writes goes through the writer's claims
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            code = args.func(args)
        except WsolbenchError as error:
            _error_line(f"[bold red]error:[/] {escape(str(error))}")
            return 2
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            return 130
        except Exception as error:  # noqa: BLE001  (the one place that catches everything)
            _error_line(internal_error_line(error))
            return 1
    return int(code or 0)


def internal_error_line(error: BaseException) -> str:
    """The line of an internal error; its traceback goes to a file that the line names."""
    from wsolbench.io import format_traceback, write_crash_report

    report = write_crash_report(format_traceback(error))
    detail = " ".join(str(error).split())[:200] or "no message"
    saved = f"traceback saved to {report}" if report else "the traceback could not be saved"
    return (
        f"[bold red]internal error:[/] {escape(type(error).__name__)}: {escape(detail)} "
        f"(a bug in wsolbench, please report it; {escape(saved)})"
    )


def _error_line(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
