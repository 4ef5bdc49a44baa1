"""`wsolbench list methods|backbones|postprocessors|explainers|protocols`: what is registered,
with defaults."""

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
        help="List registered methods, backbones, post-processors, explainers or protocols.",
        description="List what is registered, with each entry's hyperparameters and defaults "
        "(set them with `wsolbench train --hparam KEY=VALUE`). "
        "Methods and backbones all also take "
        "backbone, num_classes, pretrained, weights and large_feature_map. A protocol's defaults "
        "are its suite [evaluation] settings.",
    )
    parser.add_argument(
        "kind",
        choices=sorted(KINDS),
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
