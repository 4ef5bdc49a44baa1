"""Leaderboard tables in the terminal, as rich tables that fit the console's width.

A table wider than the console is split into parts between its value-column groups (a metric
with its + SCG and difference columns stays together); every part repeats the label columns,
so the method name is never dropped, and the table's note is printed once, under its last
part. Intervals are left to leaderboard.md and report.html. By default the commands print only
the headline (``print_headline``): its post-processors as rows ("+ SCG" under each method), so
it fits 80 columns.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from wsolbench.report.tables import DIFFERENCE, Table

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
            caption=escape(table.note) if number == len(parts) else None,  # the note once
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


def stacked(table: Table) -> Table:
    """``table`` with its post-processors as rows: under each row, one row per further
    post-processor ("+ SCG"), each metric one column, the difference columns left to the
    report. A metric the post-processor does not change is shown once, on the first row."""
    labels = table.label_count()
    groups = table.groups or [1] * (len(table.columns) - labels)
    starts, start = [], labels
    for size in groups:
        starts.append(start)
        start += size
    extra: dict[str, list[int | None]] = {}  # post-processor header -> its column per group
    for number, (begin, size) in enumerate(zip(starts, groups)):
        for column in range(begin + 1, begin + size):
            header = table.columns[column]
            if not header.startswith(DIFFERENCE):
                extra.setdefault(header, [None] * len(groups))[number] = column
    rows, best = [], set()
    for r, row in enumerate(table.rows):
        lines = [(row[:labels], starts)]
        for header, columns in extra.items():
            lines.append(([""] * (labels - 1) + [f"  {header}"], columns))
        for label_cells, columns in lines:
            label_cells = (list(label_cells) + [""] * labels)[:labels]
            cells = [row[c] if c is not None else "" for c in columns]
            best |= {(len(rows), labels + g) for g, c in enumerate(columns) if (r, c) in table.best}
            rows.append(label_cells + cells)
    return Table(
        table.key,
        table.title,
        table.note,
        table.columns[:labels] + [table.columns[begin] for begin in starts],
        rows,
        caption=table.caption,
        labels=labels,
        best=best,
    )


def print_headline(tables: list[Table], console: Console) -> None:
    """The headline tables (the first table when there is none), stacked, with their
    constant labels as a one-line caption and no note; split into parts only where even the
    stacked table is wider than the console."""
    headline = [table for table in tables if table.key == "headline"] or tables[:1]
    for table in headline:
        compact = stacked(table)
        widths = [
            max([len(compact.columns[c])] + [len(row[c]) for row in compact.rows])
            for c in range(len(compact.columns))
        ]
        if (
            sum(widths) + 3 * (len(widths) - 1) > console.width
        ):  # a space, a rule, a space  # too many metrics even stacked: the usual parts
            compact.note = ""
            print_tables([compact], console)
            continue
        rich = RichTable(
            title=escape(table.title),
            caption=escape(table.caption) or None,
            title_justify="left",
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1),
            collapse_padding=True,
        )
        labels = compact.label_count()
        for c, header in enumerate(compact.columns):
            rich.add_column(escape(header), justify="left" if c < labels else "right", no_wrap=True)
        for r, row in enumerate(compact.rows):
            rich.add_row(
                *(
                    f"[bold]{escape(cell)}[/]" if (r, c) in compact.best else escape(cell)
                    for c, cell in enumerate(row)
                )
            )
        console.print(rich)
