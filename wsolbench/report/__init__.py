"""Leaderboards from the results table: Markdown, HTML, figures, CSV/JSON and terminal tables.

``render_leaderboard`` is what ``wsolbench bench`` and ``wsolbench leaderboard`` call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape

from wsolbench.io import write_text
from wsolbench.report.bootstrap import Bootstrap
from wsolbench.report.browser import browser_view
from wsolbench.report.comparison import comparison_tables
from wsolbench.report.figures import render_figures, slug
from wsolbench.report.html import leaderboard_html
from wsolbench.report.markdown import leaderboard_markdown
from wsolbench.report.per_image import load as load_per_image
from wsolbench.report.reported import (
    measured_split_sizes,
    published_for,
    read_reported,
    reported_tables,
)
from wsolbench.report.results import (
    COLUMNS,
    make_rows,
    read_curves,
    read_results,
    results_frame,
    write_curves,
    write_results,
)
from wsolbench.report.shift_figure import plot_error_shift
from wsolbench.report.tables import Table, build_tables
from wsolbench.report.terminal import print_headline, print_tables

DEFAULT_TITLE = "wsolbench leaderboard"


def render_leaderboard(
    results: pd.DataFrame,
    out_dir: str | Path,
    curves: Sequence[Mapping[str, Any]] | None = None,
    overlays: Mapping[str, Any] | None = None,
    title: str = DEFAULT_TITLE,
    reported: pd.DataFrame | None = None,
    notes: str = "",
    per_image: tuple[list, list] | None = None,
    bootstrap: Bootstrap | None = None,
) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``.

    ``notes`` (e.g. how to reproduce the numbers and what it cost) follow the preamble.

    ``reported`` (published numbers, see ``read_reported``): those of the results' datasets
    are rendered in their own, clearly marked section and never mixed with the measured rows;
    a one-line warning says when a measured split is much smaller than the published one.

    ``per_image`` (records and image sets, see ``report.per_image``) adds bootstrap intervals to
    the tables (or pass a ready ``bootstrap``), the error-type shift figure and the failure
    browser of ``report.html``.
    """
    out_dir = Path(out_dir)
    records, images = per_image if per_image is not None else ([], [])
    if bootstrap is None and records:
        bootstrap = Bootstrap(records)
    tables = build_tables(results, bootstrap=bootstrap)
    published, comparison, warnings = _published(results, reported, records)
    figures = render_figures(results, out_dir / "figures", curves=curves, overlays=overlays)
    figures += _shift_figures(records, out_dir / "figures")
    relative = [(caption, path.relative_to(out_dir).as_posix()) for caption, path in figures]
    preamble = " ".join(part for part in (_preamble(results), notes) if part)
    markdown_path, html_path = out_dir / "leaderboard.md", out_dir / "report.html"
    write_text(
        markdown_path,
        leaderboard_markdown(
            title, tables, published, relative, preamble, comparison=comparison, warnings=warnings
        ),
    )
    write_text(
        html_path,
        leaderboard_html(
            title,
            tables,
            published,
            figures,
            preamble,
            browser=browser_view(records, images),
            comparison=comparison,
            warnings=warnings,
        ),
    )
    written = {"markdown": markdown_path, "html": html_path}
    written.update({f"figure:{path.stem}": path for _, path in figures})
    return written


def print_leaderboard(
    results: pd.DataFrame,
    console: Console | None = None,
    reported: pd.DataFrame | None = None,
    bootstrap: Bootstrap | None = None,
    records: Sequence = (),
    verbose: bool = True,
) -> list[Table]:
    """Print the leaderboard tables (and, apart, the published ones of the results' datasets)
    as rich tables that fit the console; with ``bootstrap``, significant differences are
    marked; ``records`` (per-image statistics) tell how many images each split had, for the
    warning about a split much smaller than the published one. Without ``verbose``: only the
    headline (``print_headline``), the warnings and how many tables the report has besides."""
    console = console or Console()
    tables = build_tables(results, bootstrap=bootstrap)
    if not tables:
        console.print("[yellow]no results to show[/]")
    if not verbose:
        published, comparison, warnings = _published(results, reported, records)
        if tables:
            print_headline(tables, console)
        others = len(tables) - 1 + len(comparison) + len(published)
        if others > 0:
            console.print(
                f"{others} more table(s) in the report"
                + (" (reproduced vs reported and published ones included)" if published else "")
                + "; --verbose prints them here",
                highlight=False,
            )
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        return tables + comparison + published
    print_tables(tables, console)
    if reported is not None:
        published, comparison, warnings = _published(results, reported, records)
        if comparison:
            console.rule("[bold]Reproduced vs reported")
            print_tables(comparison, console)
        if published:
            console.rule("[bold]Published numbers (reported, not measured here)")
            print_tables(published, console)
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        tables = tables + comparison + published
    return tables


def _published(
    results: pd.DataFrame, reported: pd.DataFrame | None, records: Sequence
) -> tuple[list[Table], list[Table], list[str]]:
    """The published tables and the comparison for the results' datasets, and the warnings."""
    if reported is None:
        return [], [], []
    chosen = published_for(results, reported, measured_split_sizes(records))
    return (
        reported_tables(chosen.frame) if not chosen.frame.empty else [],
        comparison_tables(results, chosen.frame),
        chosen.warnings,
    )


def _shift_figures(records: list, folder: Path) -> list[tuple[str, Path]]:
    figures = []
    for dataset, backbone in dict.fromkeys(
        (r.key.get("dataset"), r.key.get("backbone")) for r in records
    ):
        group = [
            r
            for r in records
            if (r.key.get("dataset"), r.key.get("backbone")) == (dataset, backbone)
        ]
        path = folder / f"error_shift_{slug(str(dataset), str(backbone))}.png"
        where = f"{dataset}, {backbone}"
        if plot_error_shift(group, path, f"Error types per image, plain -> + SCG ({where})"):
            figures.append(
                (
                    f"How each image's outcome changes under SCG, per method ({where}); "
                    "band width = share of test images",
                    path,
                )
            )
    return figures


def _preamble(results: pd.DataFrame) -> str:
    if results.empty:
        return ""
    seeds = results["seed"].nunique() if "seed" in results else 1
    splits = ", ".join(sorted(results["split"].astype(str).unique()))
    return (
        f"{len(results)} numbers from split(s) {splits}; "
        f"{seeds} seed(s) (mean ± std shown when there are several). "
        "Error columns are 100 - accuracy."
    )


__all__ = [
    "COLUMNS",
    "DEFAULT_TITLE",
    "Bootstrap",
    "Table",
    "build_tables",
    "comparison_tables",
    "load_per_image",
    "make_rows",
    "print_leaderboard",
    "read_curves",
    "read_reported",
    "read_results",
    "render_leaderboard",
    "reported_tables",
    "results_frame",
    "write_curves",
    "write_results",
]
