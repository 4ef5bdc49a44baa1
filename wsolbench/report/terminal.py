"""Leaderboard tables in the terminal, as rich tables that fit the console's width.

A table wider than the console is split into parts between its value-column groups (a metric
with its + SCG and difference columns stays together); every part repeats the label columns,
so the method name is never dropped. Intervals are left to leaderboard.md and report.html.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from wsolbench.report.tables import Table

_WRAPPED_COLUMNS = {"Source"}  # a long text wraps, so narrow terminals keep the numbers


def _width(table: Table, column: int) -> int:
    """Characters a column takes in a rich table: content, two spaces of padding, one border."""
    return max([len(table.columns[column])] + [len(row[column]) for row in table.rows]) + 3


def split_columns(table: Table, width: int) -> list[list[int]]:
    """Column indices of each part: the label columns, then as many whole groups as fit."""
    labels = list(range(table.label_count()))
    groups = table.groups or [1] * (len(table.columns) - len(labels))
    base = 1 + sum(_width(table, c) for c in labels)
    parts, current, used, start = [], [], base, len(labels)
    for size in groups:
        group = list(range(start, start + size))
        start += size
        need = sum(_width(table, c) for c in group)
        if current and used + need > width:
            parts.append(labels + current)
            current, used = [], base
        current += group
        used += need
    if current or not parts:
        parts.append(labels + current)
    return parts


def rich_tables(table: Table, width: int = 80) -> list[RichTable]:
    parts = split_columns(table, width)
    out = []
    for number, columns in enumerate(parts, 1):
        title = table.title + (f" ({number}/{len(parts)})" if len(parts) > 1 else "")
        if table.caption:
            title += " - " + table.caption
        # Names come from user files: escape them so "[...]" is not read as rich markup.
        rich = RichTable(
            title=escape(title),
            caption=escape(table.note),
            caption_justify="left",
            title_justify="left",
        )
        labels = table.label_count()
        for c in columns:
            rich.add_column(
                escape(table.columns[c]),
                justify="left" if c < labels else "right",
                no_wrap=table.columns[c] not in _WRAPPED_COLUMNS,
            )
        for r, row in enumerate(table.rows):
            cells = [
                f"[bold]{escape(row[c])}[/]" if (r, c) in table.best else escape(row[c])
                for c in columns
            ]
            rich.add_row(*cells)
        out.append(rich)
    return out


def rich_table(table: Table) -> RichTable:
    """The whole table as one rich table (no splitting)."""
    return rich_tables(table, width=10**6)[0]


def print_tables(tables: Iterable[Table], console: Console) -> None:
    for table in tables:
        for part in rich_tables(table, console.width):
            console.print(part)
            console.print()
