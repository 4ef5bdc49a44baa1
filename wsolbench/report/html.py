"""A self-contained ``report.html``: inline CSS and scripts, figures embedded as base64 PNG, no
requests.

Every page is rendered here, from the Jinja2 templates in ``report/templates`` with
autoescaping on: every string from results, file names or datasets reaches the page escaped,
data for the page's scripts is embedded with ``tojson`` (which escapes ``<``, ``>``, ``&`` and
``'``, so it cannot close its ``<script>``), and the scripts write data with ``textContent``.
No other module builds HTML (``tests/test_pages.py`` walks the source to keep it so).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from wsolbench.report.outcomes import badge_styles
from wsolbench.report.tables import LABEL_COLUMNS, SIGNIFICANT, Table

PAGE_TEMPLATE = "report.html.j2"
STICKY_COLUMN = "Method"  # stays in view while a wide table scrolls sideways


@cache
def environment() -> jinja2.Environment:
    """The one template environment: autoescaping, and an error for any undefined name."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wsolbench.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "separators": (",", ":")}
    return env


def render(template: str, **context: Any) -> str:
    """A template of ``report/templates`` rendered with ``context`` (every value escaped)."""
    return environment().get_template(template).render(**context)


def table_view(table: Table) -> dict[str, Any]:
    """What the table template shows of a ``Table``: its texts and each cell's classes."""
    labels = table.label_count()
    sticky = table.columns.index(STICKY_COLUMN) if STICKY_COLUMN in table.columns[:labels] else 0
    # A text column after the numbers (the comparison's Source) reads as a label, left-aligned.
    text_columns = {
        c for c, column in enumerate(table.columns) if c < labels or column in LABEL_COLUMNS
    }
    header = [
        {"text": column, "classes": _classes(label=c in text_columns, sticky=c == sticky)}
        for c, column in enumerate(table.columns)
    ]
    rows = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, text in enumerate(row):
            number = c not in text_columns
            cells.append(
                {
                    "text": text,
                    "number": number,
                    "interval": table.intervals.get((r, c), "") if number else "",
                    "classes": _classes(
                        label=not number,
                        sticky=c == sticky,
                        num=number,
                        best=number and (r, c) in table.best,
                        # a difference whose interval excludes zero
                        significant=number and text.endswith(SIGNIFICANT),
                    ),
                }
            )
        rows.append(cells)
    return {
        "title": table.title,
        "note": table.note,
        "caption": table.caption,
        "header": header,
        "rows": rows,
    }


def _classes(**flags: bool) -> str:
    return " ".join(name for name, on in flags.items() if on)


def png_data_uri(path: Path) -> str:
    """A PNG file as a ``data:`` URI (base64: no character that needs escaping)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def leaderboard_html(
    title: str,
    tables: Iterable[Table],
    reported: Iterable[Table] = (),
    figures: Iterable[tuple[str, Path]] = (),
    preamble: str = "",
    browser: dict[str, Any] | None = None,
    comparison: Iterable[Table] = (),
    warnings: Iterable[str] = (),
) -> str:
    """The whole report as one HTML string.

    ``browser`` is the failure browser's view (``report.browser.browser_view``); ``warnings``
    are one-line notes shown under the preamble (e.g. a split much smaller than the published
    one)."""
    return render(
        PAGE_TEMPLATE,
        title=title,
        preamble=preamble,
        warnings=list(warnings),
        tables=[table_view(t) for t in tables],
        comparison=[table_view(t) for t in comparison],
        reported=[table_view(t) for t in reported],
        figures=[{"caption": caption, "src": png_data_uri(path)} for caption, path in figures],
        browser=browser,
        outcomes=badge_styles(),
    )
