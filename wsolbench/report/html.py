"""A self-contained ``report.html``: inline CSS, figures embedded as base64 PNG, no requests.

Every string that comes from results or file names goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path

from wsolbench.report.tables import SIGNIFICANT, Table

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { border-bottom: 2px solid #333; }
h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
table { border-collapse: collapse; margin: 0.6em 0 1.6em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.protocol { color: #555; font-style: italic; margin: 0.2em 0; }
section.reported table th { background: #fff3d6; }
section.reported h3::after { content: " [reported]"; color: #b36b00; font-size: 0.8em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
td.best { font-weight: bold; background: #eef7ee; }
td.label { white-space: nowrap; }
td.significant { color: #1a4e9e; font-weight: bold; }  /* significant, either sign */
div.scroll { overflow-x: auto; }
span.ci { color: #777; font-size: 0.8em; white-space: nowrap; }
p.caption { margin: 0.2em 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
"""
# Click a header to sort by it (numbers by value, labels alphabetically; click again: reverse).
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column], text = cell ? (cell.getAttribute("data-value") || cell.textContent) : "";
        var number = parseFloat(text);
        return isNaN(number) ? text : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def table_html(table: Table) -> str:
    escape = html.escape
    head = "".join(f'<th title="click to sort">{escape(column)}</th>' for column in table.columns)
    labels = table.label_count()
    body = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, cell in enumerate(row):
            if c < labels:
                cells.append(f'<td class="label">{escape(cell)}</td>')
                continue
            classes = "num best" if (r, c) in table.best else "num"
            if cell.endswith(SIGNIFICANT):  # a difference whose interval excludes zero
                classes += " significant"
            interval = table.intervals.get((r, c))
            extra = f' <span class="ci">[{escape(interval)}]</span>' if interval else ""
            cells.append(
                f'<td class="{classes}" data-value="{escape(cell)}">{escape(cell)}{extra}</td>'
            )
        body.append(f"<tr>{''.join(cells)}</tr>")
    caption = (
        f'<p class="caption">{escape(table.caption)}; best value per column in bold.</p>\n'
        if table.caption
        else ""
    )
    return (
        f"<h3>{escape(table.title)}</h3>\n"
        f'<p class="protocol">Protocol: {escape(table.note)}</p>\n{caption}'
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table></div>\n"
    )


def figure_html(caption: str, path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{alt}</figcaption></figure>\n"
    )


def comparison_html(comparison: Iterable[Table]) -> list[str]:
    """The "Reproduced vs reported" section (nothing when no measured number was published)."""
    comparison = list(comparison)
    if not comparison:
        return []
    opening = (
        '<section class="comparison"><h2>Reproduced vs reported</h2><p>Measured numbers '
        "beside the published numbers they reproduce (same dataset, split, backbone, "
        "method, post-processor, protocol and metric).</p>"
    )
    return [opening] + [table_html(table) for table in comparison] + ["</section>"]


def leaderboard_html(
    title: str,
    tables: Iterable[Table],
    reported: Iterable[Table] = (),
    figures: Iterable[tuple[str, Path]] = (),
    preamble: str = "",
    browser: str = "",
    comparison: Iterable[Table] = (),
) -> str:
    """The whole report as one HTML string."""
    escape = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if preamble:
        parts.append(f"<p>{escape(preamble)}</p>")
    parts.append("<section><h2>Measured results</h2>")
    tables = list(tables)
    parts += [table_html(table) for table in tables] or ["<p>No results to show.</p>"]
    parts.append("</section>")
    parts += comparison_html(comparison)
    reported = list(reported)
    if reported:
        parts.append(
            '<section class="reported"><h2>Published numbers (reported, not measured '
            "here)</h2><p>Copied from the papers listed in "
            "<code>leaderboards/reported/SOURCES.md</code>; never mixed with measured "
            "rows.</p>"
        )
        parts += [table_html(table) for table in reported]
        parts.append("</section>")
    figures = list(figures)
    if figures:
        parts.append("<section><h2>Figures</h2>")
        parts += [figure_html(caption, path) for caption, path in figures]
        parts.append("</section>")
    if browser:
        parts.append(browser)
    parts.append(f"<script>{SORT_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
