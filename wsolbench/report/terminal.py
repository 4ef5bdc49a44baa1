"""Leaderboard tables in the terminal, as rich tables."""
from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from wsolbench.report.tables import Table

_LABEL_COLUMNS = {"Dataset", "Split", "Backbone", "Method", "Post-processor", "RAM", "SCG"}


def rich_table(table: Table) -> RichTable:
    # Names come from user files: escape them so "[...]" is not read as rich markup.
    out = RichTable(title=escape(table.title), caption=escape(table.note), caption_justify="left",
                    title_justify="left")
    for column in table.columns:
        out.add_column(escape(column),
                       justify="left" if column in _LABEL_COLUMNS else "right",
                       no_wrap=column not in _LABEL_COLUMNS)
    for row in table.rows:
        out.add_row(*(escape(cell) for cell in row))
    return out


def print_tables(tables: Iterable[Table], console: Console) -> None:
    for table in tables:
        console.print(rich_table(table))
        console.print()
