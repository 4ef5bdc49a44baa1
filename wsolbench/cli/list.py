"""`wsolbench list methods|backbones|postprocessors|explainers|protocols|suites`: what is
registered, with defaults, and the built-in suites with what each reproduces and costs."""

from __future__ import annotations

import argparse
import inspect

from rich.console import Console
from rich.table import Table

from wsolbench.cli import add_command
from wsolbench.registry import (
    BACKBONES,
    EXPLAINERS,
    METHODS,
    POSTPROCESSORS,
    PROTOCOLS,
    Registry,
)

KINDS = {
    "methods": METHODS,
    "backbones": BACKBONES,
    "postprocessors": POSTPROCESSORS,
    "explainers": EXPLAINERS,
    "protocols": PROTOCOLS,
}


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "list",
        help="List registered methods, backbones, post-processors, explainers, protocols, or "
        "the built-in suites.",
        description="List what is registered, with each entry's hyperparameters and defaults "
        "(set them with `wsolbench train --hparam KEY=VALUE`). "
        "Methods and backbones all also take "
        "backbone, num_classes, pretrained, weights and large_feature_map. A protocol's defaults "
        "are its suite evaluation settings. `list suites`: each built-in suite with the "
        "published table it reproduces, its dataset, methods and expected cost.",
    )
    parser.add_argument(
        "kind",
        choices=sorted([*KINDS, "suites"]),
        nargs="?",
        default="methods",
        help="what to list (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def describe(registry: Registry, name: str) -> tuple[str, str]:
    """(defaults as 'key=value, ...', first line of the docstring) of one entry."""
    defaults = registry.hyperparameters(name)  # the common build arguments are in the help
    text = ", ".join(f"{key}={value!r}" for key, value in defaults.items()) or "-"
    doc = inspect.getdoc(registry.get(name)) or ""
    return text, doc.splitlines()[0] if doc else ""


def run(args: argparse.Namespace) -> int:
    if args.kind == "suites":
        return list_suites()
    registry = KINDS[args.kind]
    table = Table(title=f"wsolbench {args.kind}")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("defaults")
    table.add_column("description")
    for name in registry.names():
        defaults, description = describe(registry, name)
        table.add_row(name, defaults, description)
    Console().print(table)
    return 0


def list_suites(console: Console | None = None) -> int:
    """The built-in suites (``BUILTIN_SUITES``' order), each from its own fields: its name, the
    table it reproduces, then its dataset, methods and cost (two lines each at 80 columns)."""
    from rich.markup import escape

    from wsolbench.suite import BUILTIN_SUITES, suite_summary

    console = console or Console()
    console.print("[bold]wsolbench suites[/] (run one with `wsolbench bench --suite NAME`)")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    for name in BUILTIN_SUITES:
        summary = {key: escape(value) for key, value in suite_summary(name).items()}
        details = " | ".join(summary[key] for key in ("dataset", "methods", "cost"))
        grid.add_row(summary["name"], f"{summary['reproduces']}\n[dim]{details}[/]")
    console.print(grid)
    return 0
