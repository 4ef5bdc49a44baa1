"""Leaderboard tables as GitHub Markdown."""

from __future__ import annotations

from collections.abc import Iterable

from wsolbench.report.tables import Table, display_cell


def escape_cell(text: str) -> str:
    """Keep a cell on one line and stop its pipes, tags and backslashes from acting."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    text = text.replace("*", "\\*")  # the significance mark, not emphasis
    return text.replace("&", "&amp;").replace("<", "&lt;")  # no "<" left: no raw HTML


def table_markdown(table: Table) -> str:
    header = "| " + " | ".join(escape_cell(column) for column in table.columns) + " |"
    align = (
        "|"
        + "|".join(
            "---" if index < _label_columns(table) else "---:"
            for index in range(len(table.columns))
        )
        + "|"
    )
    lines = [f"### {escape_cell(table.title)}", "", f"_Protocol: {escape_cell(table.note)}_", ""]
    if table.caption:
        lines += [f"_{escape_cell(table.caption)}; best value per column in bold._", ""]
    lines += [header, align]
    for r, row in enumerate(table.rows):
        cells = []
        for c in range(len(row)):
            text = escape_cell(display_cell(table, r, c))
            cells.append(f"**{text}**" if (r, c) in table.best else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def leaderboard_markdown(
    title: str,
    tables: Iterable[Table],
    reported: Iterable[Table] = (),
    figures: Iterable[tuple[str, str]] = (),
    preamble: str = "",
    comparison: Iterable[Table] = (),
    warnings: Iterable[str] = (),
) -> str:
    """The whole ``leaderboard.md``: measured tables, measured beside published (when any
    match), the published ones, then figures; ``warnings`` are one line each, under the
    preamble."""
    parts = [f"# {escape_cell(title)}", ""]
    if preamble:
        parts += [escape_cell(preamble), ""]
    for warning in warnings:
        parts += [f"**Warning:** {escape_cell(warning)}", ""]
    tables = list(tables)
    parts += ["## Measured results", ""]
    if not tables:
        parts += ["_No results to show._", ""]
    parts += [table_markdown(table) for table in tables]
    parts += comparison_markdown(comparison)
    reported = list(reported)
    if reported:
        parts += [
            "## Published numbers (reported, not measured here)",
            "",
            "These rows are copied from the papers listed in "
            "`leaderboards/reported/SOURCES.md`; they are never mixed with measured rows.",
            "",
        ]
        parts += [table_markdown(table) for table in reported]
    figures = list(figures)
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{escape_cell(caption)}]({path})\n" for caption, path in figures]
    return "\n".join(parts).rstrip() + "\n"


def comparison_markdown(comparison: Iterable[Table]) -> list[str]:
    """The "Reproduced vs reported" section (nothing when no measured number was published)."""
    comparison = list(comparison)
    if not comparison:
        return []
    intro = (
        "Measured numbers beside the published numbers they reproduce (same dataset, "
        "split, backbone, method, post-processor, protocol and metric)."
    )
    return ["## Reproduced vs reported", "", intro, ""] + [
        table_markdown(table) for table in comparison
    ]


def _label_columns(table: Table) -> int:
    """How many leading columns are labels (left-aligned) rather than numbers."""
    if table.labels:
        return table.labels
    for index, column in enumerate(table.columns):
        if column not in (
            "Dataset",
            "Split",
            "Backbone",
            "Method",
            "Post-processor",
            "RAM",
            "SCG",
            "Metric",
            "Source",
        ):
            return index
    return len(table.columns)
