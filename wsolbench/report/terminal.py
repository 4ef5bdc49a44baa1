"""Leaderboard tables in the terminal, as rich tables."""
from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from wsolbench.report.tables import Table

_LABEL_COLUMNS = {"Dataset", "Split", "Backbone", "Method", "Post-processor", "RAM", "SCG",
                  "Metric", "Source"}
_WRAPPED_COLUMNS = {"Source"}  # a long text wraps, so narrow terminals keep the numbers


def rich_table(table: Table) -> RichTable:
    # Label columns with one value in every row (one dataset, one backbone) move into the title,
    # so narrow terminals keep room for the numbers.
    constant = [
        i for i, column in enumerate(table.columns)
        if column in _LABEL_COLUMNS and len(table.rows) > 1 and len({row[i] for row in table.rows}) == 1
    ]
    title = table.title
    if constant:
        title += " - " + ", ".join(f"{table.columns[i]}: {table.rows[0][i]}" for i in constant)
    # Names come from user files: escape them so "[...]" is not read as rich markup.
    out = RichTable(title=escape(title), caption=escape(table.note), caption_justify="left",
                    title_justify="left")
    keep = [i for i in range(len(table.columns)) if i not in constant]
    for i in keep:
        column = table.columns[i]
        out.add_column(escape(column),
                       justify="left" if column in _LABEL_COLUMNS else "right",
                       no_wrap=column not in _WRAPPED_COLUMNS)
    for row in table.rows:
        out.add_row(*(escape(row[i]) for i in keep))
    return out


def print_tables(tables: Iterable[Table], console: Console) -> None:
    for table in tables:
        console.print(rich_table(table))
        console.print()
