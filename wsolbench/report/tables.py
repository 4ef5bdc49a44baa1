"""The leaderboard's tables, built from the long results table.

Each builder returns ``Table`` objects (plain strings in cells), so Markdown, HTML and the
terminal render exactly the same numbers. A table or column whose metrics are absent from the
results is skipped (e.g. no masks -> no PxAP column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from wsolbench.evaluation.protocols import SPA_ERRORS, ColumnSpec, TableSpec, registered_protocols
from wsolbench.report.results import METRIC_SPECS, metric_specs

MISSING = "–"
METHOD_ORDER = (
    "cam",
    "has",
    "acol",
    "spg",
    "adl",
    "cutmix",
    "spa-noram",
    "spa",
    "bas",
    "tscam",
    "scm",
)
POSTPROCESSOR_ORDER = ("none", "scg")
# The five error types as (metric, printed name), from the spa protocol (the error figure).
ERROR_TYPES = tuple((metric, METRIC_SPECS[("spa", metric)].label) for metric in SPA_ERRORS.values())


# Columns that name a setting rather than hold a number (left-aligned, never split apart).
LABEL_COLUMNS = frozenset(
    {
        "Dataset",
        "Split",
        "Backbone",
        "Method",
        "Explainer",
        "Post-processor",
        "RAM",
        "SCG",
        "Metric",
        "Source",
    }
)


@dataclass
class Table:
    key: str
    title: str
    note: str  # which protocol produced the numbers
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""  # label columns with one value in every row, lifted out ("Dataset: x")
    labels: int = 0  # how many leading columns are labels (never split apart in a terminal)
    groups: list[int] = field(default_factory=list)  # widths of the value-column groups
    best: set[tuple[int, int]] = field(default_factory=set)  # (row, column) best per column
    # (row, column) -> "low, high"
    intervals: dict[tuple[int, int], str] = field(default_factory=dict)

    def label_count(self) -> int:
        """How many leading columns are labels: ``labels`` when set, else the leading run of
        known label columns (one rule for the terminal and the HTML page)."""
        if self.labels:
            return self.labels
        count = 0
        while count < len(self.columns) and self.columns[count] in LABEL_COLUMNS:
            count += 1
        return count


@dataclass(frozen=True)
class _Column:
    header: str
    protocol: str
    metric: str
    transform: Callable[[float], float] = lambda value: value
    decimals: int = 2
    better: int = 1  # +1 higher is better, -1 lower is better, 0 neither (thresholds)
    compare: bool = True  # False: the post-processor cannot change it (classification)
    measured: bool = True  # False: a setting, not a statistic of the test images (no interval)


def _error(value: float) -> float:
    return 100.0 - value


def _column(protocol: str, metric: str, error: bool = False, **overrides) -> _Column:
    """A column of one protocol's metric, read as the protocol names it (its label, decimals,
    direction); ``error`` shows ``100 - value`` as "<label> err"."""
    spec = METRIC_SPECS.get((protocol, metric)) or metric_specs()[(protocol, metric)]
    fields = dict(decimals=spec.decimals, better=spec.better, measured=spec.measured)
    if error:
        fields.update(transform=_error, better=-spec.better)
    return _Column(spec.label + (" err" if error else ""), protocol, metric, **(fields | overrides))


def _from_spec(column: ColumnSpec) -> _Column:
    overrides = {"compare": column.compare}
    if column.decimals is not None:
        overrides["decimals"] = column.decimals
    return _column(column.protocol, column.metric, error=column.error, **overrides)


def headline_columns() -> tuple[_Column, ...]:
    """Every protocol's metrics that name a headline position, in that order."""
    return tuple(
        _column(protocol, spec.name, decimals=1, compare=spec.postprocessed)
        for (protocol, _), spec in sorted(
            ((key, spec) for key, spec in metric_specs().items() if spec.headline),
            key=lambda item: item[1].headline,
        )
    )


HEADLINE = TableSpec(
    "headline",
    "Headline: accuracies in %, plain and + SCG",
    "spa protocol (Top-1 Cls, GT-known and Top-1 Loc), peak protocol (Peak-IoU), "
    "wsolevaluation protocol (MaxBoxAccV2, PxAP); classification does not depend on the "
    "post-processor.",
    (),
    order=0,
)
COST_COLUMNS = (  # wall times: measured, so no interval; lower is better
    _Column(
        "Maps ms / image",
        "cost",
        "explain_ms",
        decimals=1,
        better=-1,
        compare=False,
        measured=False,
    ),
    _Column(
        "Post-process + scoring ms / image",
        "cost",
        "score_ms",
        decimals=1,
        better=-1,
        measured=False,
    ),
)
COST = TableSpec(
    "cost",
    "Cost per image of the maps and their scoring",
    "Wall time per image on the machine named in the notes. Maps: the GT and top-5 class maps "
    "beyond the classification forward pass (a model's own CAM comes with it). Post-process + "
    "scoring: the post-processor and every protocol's evaluator.",
    (),
    order=1000,
)


def table_specs() -> list[tuple[TableSpec, str | None, tuple[_Column, ...]]]:
    """Every table of the leaderboard in order: (spec, owning protocol, columns); the
    protocols' own tables (``Protocol.tables``) between the headline and the cost table."""
    found = [(HEADLINE, None, headline_columns()), (COST, None, COST_COLUMNS)]
    for name, protocol in registered_protocols().items():
        for spec in protocol.tables():
            found.append((spec, name, tuple(_from_spec(c) for c in spec.columns)))
    return sorted(found, key=lambda item: item[0].order)


# The RAM ablation compares a model trained with RAM to its twin without (labels of the suite).
RAM_PAIRS = (("spa", "spa-noram"),)
# Row axes of a table, in order; the post-processor becomes columns (plain | + SCG | difference).
# "explainer" is an optional axis (post-hoc explainers); absent columns are skipped.
ROW_AXES = ("dataset", "split", "backbone", "method", "explainer")
AXIS_HEADERS = {
    "dataset": "Dataset",
    "split": "Split",
    "backbone": "Backbone",
    "method": "Method",
    "explainer": "Explainer",
}
LIFTABLE = ("dataset", "split", "backbone", "explainer")  # the method column always stays
PLAIN = ("none",)
SIGNIFICANT = "*"
DIFFERENCE = "Δ"
# Two different "CAM"s: the SPA paper's "CAM" rows are SPA's own network trained without RAM.
WHICH_CAM = (
    " Labels: cam = wsolevaluation's CAM (its GAP + fc head); spa-noram = SPA's network "
    '(class-map head) trained without RAM, the row the SPA paper\'s tables call "CAM".'
)


def build_tables(
    results: pd.DataFrame, suffix: str = "", decimals: int | None = None, bootstrap=None
) -> list[Table]:
    """Every leaderboard table the results support, in the SPA paper's order of comparison.

    Post-processors sit side by side: each metric shows plain | + SCG | difference, the best
    value per column is marked and, with ``bootstrap`` (``report.bootstrap.Bootstrap``), every
    value gets its 95 % interval and every difference a paired one, marked ``*`` when it
    excludes zero. ``suffix`` is appended to each title (published numbers are marked as
    reported); ``decimals`` overrides the number of decimals (published numbers keep theirs).
    """
    if results.empty:
        return []
    stats = _aggregate(results)
    significance = (
        (
            " Intervals: 95 % bootstrap over test images (paired for differences); "
            f"{SIGNIFICANT} = the difference's interval excludes 0."
        )
        if bootstrap
        else ""
    )
    tables = []
    for spec, owner, columns in table_specs():
        if decimals is not None:
            columns = tuple(replace(column, decimals=decimals) for column in columns)
        note = spec.note
        if {"cam", "spa-noram"} & set(stats["method"]):
            note += WHICH_CAM
        required = {(owner, metric) for metric in spec.requires}
        table = _build(
            stats,
            spec,
            title=spec.title + suffix,
            note=note + significance,
            columns=columns,
            bootstrap=bootstrap,
            required=required,
        )
        if table is not None:
            tables.append(table)
    if not suffix:  # measured numbers: the same maps under several protocols, where measured
        from wsolbench.report.protocols import cross_protocol_tables

        tables += cross_protocol_tables(results, bootstrap)
    return tables


def _aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds of each (setting, protocol, metric)."""
    axes = [axis for axis in ROW_AXES if axis in results.columns]
    keys = axes + ["postprocessor", "protocol", "metric"]
    frame = results.dropna(subset=["value"]).copy()
    frame[axes] = frame[axes].fillna("").astype(str)  # rows without an optional axis: ""
    grouped = frame.groupby(keys, sort=False)["value"]
    return pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(ddof=0), "count": grouped.count()}
    ).reset_index()


@dataclass
class _Cell:
    text: str = MISSING
    value: float | None = None  # for the best-per-column mark
    interval: str = ""


def _build(
    stats: pd.DataFrame, spec: TableSpec, title: str, note: str, columns, bootstrap, required
) -> Table | None:
    key = spec.key
    pairs = set(zip(stats["protocol"], stats["metric"]))
    present = [column for column in columns if (column.protocol, column.metric) in pairs]
    # A table needs at least one of its own defining metrics (not only a borrowed column).
    if not present or (required and not required & pairs):
        return None
    wanted = {(column.protocol, column.metric) for column in present}
    subset = stats[[pair in wanted for pair in zip(stats["protocol"], stats["metric"])]]
    axes = [axis for axis in ROW_AXES if axis in subset.columns]
    settings = _settings(subset, axes)
    if spec.layout == "ablation":
        return _build_ablation(subset, axes, settings, title, note, present, bootstrap)
    if not settings:
        return None
    lookup = {
        tuple(getattr(row, name) for name in axes + ["postprocessor", "protocol", "metric"]): row
        for row in subset.itertuples(index=False)
    }
    postprocessors = _postprocessors(subset)
    header, groups = _value_header(present, postprocessors)
    body = []
    for setting in settings:
        fields = dict(zip(axes, setting))
        cells = []
        for column in present:
            shown = postprocessors if column.compare else postprocessors[:1]
            cells += [_value_cell(lookup, setting, pp, column, fields, bootstrap) for pp in shown]
            cells += [
                _difference_cell(lookup, setting, pp, postprocessors[0], column, fields, bootstrap)
                for pp in _differenced(column, postprocessors)
            ]
        if any(cell.text != MISSING for cell in cells):
            body.append((list(setting), cells))
    if not body:
        return None
    return _assemble(
        key,
        title,
        note,
        axes,
        [AXIS_HEADERS[a] for a in axes],
        header,
        groups,
        body,
        _directions(present, postprocessors),
    )


def _build_ablation(subset, axes, settings, title, note, present, bootstrap) -> Table | None:
    """Rows no RAM / RAM / RAM difference per (dataset, backbone, ...), SCG as columns."""
    method_at = axes.index("method")
    lookup = {
        tuple(getattr(row, name) for name in axes + ["postprocessor", "protocol", "metric"]): row
        for row in subset.itertuples(index=False)
    }
    postprocessors = _postprocessors(subset)
    header, groups = _value_header(present, postprocessors)
    found = set(settings)
    body = []
    for with_ram, without in RAM_PAIRS:
        for group in dict.fromkeys(s[:method_at] + s[method_at + 1 :] for s in settings):
            ram = group[:method_at] + (with_ram,) + group[method_at:]
            plain = group[:method_at] + (without,) + group[method_at:]
            if ram not in found or plain not in found:
                continue
            rows = {"✗": plain, "✓": ram}
            for label, setting in rows.items():
                fields = dict(zip(axes, setting))
                cells = []
                for column in present:
                    cells += [
                        _value_cell(lookup, setting, pp, column, fields, bootstrap)
                        for pp in postprocessors
                    ]
                    cells += [
                        _difference_cell(
                            lookup, setting, pp, postprocessors[0], column, fields, bootstrap
                        )
                        for pp in _differenced(column, postprocessors)
                    ]
                body.append(
                    (list(setting[:method_at]) + [label] + list(setting[method_at + 1 :]), cells)
                )
            cells = []
            for column in present:
                for pp in postprocessors:
                    cells.append(_pair_difference(lookup, ram, plain, pp, column, axes, bootstrap))
                cells += [_Cell()] * len(_differenced(column, postprocessors))
            body.append(
                (list(group[:method_at]) + [f"{DIFFERENCE} RAM"] + list(group[method_at:]), cells)
            )
    if not body:
        return None
    headers = [AXIS_HEADERS[a] if a != "method" else "RAM" for a in axes]
    return _assemble(
        "ablation",
        title,
        note,
        axes,
        headers,
        header,
        groups,
        body,
        _directions(present, postprocessors),
        best_rows=[i for i, (labels, _) in enumerate(body) if labels[method_at] in ("✗", "✓")],
    )


def _postprocessors(subset: pd.DataFrame) -> list[str]:
    found = list(dict.fromkeys(subset["postprocessor"]))
    first_seen = {name: index for index, name in enumerate(found)}
    return sorted(found, key=lambda name: (_rank(name, POSTPROCESSOR_ORDER), first_seen[name]))


def pp_label(name: str) -> str:
    return "plain" if name in PLAIN else f"+ {name.upper()}"


def _value_header(present, postprocessors) -> tuple[list[str], list[int]]:
    header, groups = [], []
    for column in present:
        if len(postprocessors) == 1 or not column.compare:
            header.append(
                column.header
                if postprocessors[0] in PLAIN
                else f"{column.header} ({pp_label(postprocessors[0])})"
            )
            groups.append(1)
            continue
        first = (
            column.header
            if postprocessors[0] in PLAIN
            else f"{column.header} ({pp_label(postprocessors[0])})"
        )
        header += [first] + [pp_label(pp) for pp in postprocessors[1:]]
        differenced = _differenced(column, postprocessors)
        header += [
            DIFFERENCE if len(postprocessors) == 2 else f"{DIFFERENCE} {pp.upper()}"
            for pp in differenced
        ]
        groups.append(len(postprocessors) + len(differenced))
    return header, groups


def _differenced(column: _Column, postprocessors: list[str]) -> list[str]:
    """The post-processors whose difference to the first gets a column: none for a value with
    no better direction (Peak-T, the box threshold), shown side by side without a Δ."""
    return postprocessors[1:] if column.compare and column.better else []


def display_cell(table: Table, row: int, column: int, interval: bool = True) -> str:
    """A cell's text with its interval "[low, high]" when there is one."""
    text = table.rows[row][column]
    extra = table.intervals.get((row, column)) if interval else None
    return f"{text} [{extra}]" if extra else text


def _directions(present, postprocessors) -> list[int]:
    """Direction of 'best' per value column; differences are not ranked."""
    out = []
    for column in present:
        if not column.compare:
            out.append(column.better)
            continue
        out += [column.better] * len(postprocessors)
        out += [0] * len(_differenced(column, postprocessors))
    return out


def _value_cell(lookup, setting, pp, column: _Column, fields, bootstrap) -> _Cell:
    stat = lookup.get(setting + (pp, column.protocol, column.metric))
    if stat is None:
        return _Cell()
    cell = _Cell(_format(stat, column), column.transform(stat.mean))
    if bootstrap is not None and column.measured:
        interval = bootstrap.interval(
            dict(fields, postprocessor=pp), column.metric, column.protocol
        )
        if interval is not None:
            interval = interval.transformed(column.transform)
            cell.interval = (
                f"{interval.low:.{column.decimals}f}, {interval.high:.{column.decimals}f}"
            )
    return cell


def _difference_cell(lookup, setting, pp, base, column: _Column, fields, bootstrap) -> _Cell:
    a = lookup.get(setting + (pp, column.protocol, column.metric))
    b = lookup.get(setting + (base, column.protocol, column.metric))
    fields_a, fields_b = dict(fields, postprocessor=pp), dict(fields, postprocessor=base)
    return _difference(a, b, fields_a, fields_b, column, bootstrap)


def _pair_difference(lookup, ram, plain, pp, column: _Column, axes, bootstrap) -> _Cell:
    a = lookup.get(ram + (pp, column.protocol, column.metric))
    b = lookup.get(plain + (pp, column.protocol, column.metric))
    fields_a = dict(zip(axes, ram), postprocessor=pp)
    fields_b = dict(zip(axes, plain), postprocessor=pp)
    return _difference(a, b, fields_a, fields_b, column, bootstrap)


def _difference(a, b, fields_a, fields_b, column: _Column, bootstrap) -> _Cell:
    if a is None or b is None or not column.better:
        return _Cell()
    value = column.transform(a.mean) - column.transform(b.mean)
    text = f"{value:+.{column.decimals}f}"
    cell = _Cell(text, None)
    if bootstrap is not None:
        interval = bootstrap.difference(fields_a, fields_b, column.metric, column.protocol)
        if interval is not None:
            sign = -1.0 if column.transform is _error else 1.0
            low, high = sorted((sign * interval.low, sign * interval.high))
            cell.interval = f"{low:+.{column.decimals}f}, {high:+.{column.decimals}f}"
            if interval.significant:
                cell.text += SIGNIFICANT
    return cell


def _assemble(
    key, title, note, axes, label_headers, value_headers, groups, body, directions, best_rows=None
) -> Table:
    """Lift constant label columns into the caption, mark the best value per column."""
    lift = [
        i
        for i, axis in enumerate(axes)
        if axis in LIFTABLE and len({labels[i] for labels, _ in body}) == 1
    ]
    caption = ", ".join(f"{label_headers[i]}: {body[0][0][i]}" for i in lift if body[0][0][i])
    keep = [i for i in range(len(axes)) if i not in lift]
    rows = [[labels[i] for i in keep] + [cell.text for cell in cells] for labels, cells in body]
    offset = len(keep)
    best, intervals = set(), {}
    candidates = range(len(body)) if best_rows is None else best_rows
    for column, direction in enumerate(directions):
        values = [
            (body[r][1][column].value, r)
            for r in candidates
            if body[r][1][column].value is not None
        ]
        if direction and len(values) > 1:
            top = max(v * direction for v, _ in values)
            best |= {(r, offset + column) for v, r in values if v * direction == top}
    for r, (_, cells) in enumerate(body):
        for column, cell in enumerate(cells):
            if cell.interval:
                intervals[(r, offset + column)] = cell.interval
    return Table(
        key,
        title,
        note,
        [label_headers[i] for i in keep] + value_headers,
        rows,
        caption=caption,
        labels=offset,
        groups=groups,
        best=best,
        intervals=intervals,
    )


def _settings(subset: pd.DataFrame, axes: list[str]) -> list[tuple[str, ...]]:
    found = list(dict.fromkeys(map(tuple, subset[axes].itertuples(index=False))))
    first_seen = {setting: index for index, setting in enumerate(found)}
    method_at = axes.index("method")
    return sorted(
        found,
        key=lambda s: (
            s[:method_at],
            _rank(s[method_at], METHOD_ORDER),
            s[method_at + 1 :],
            first_seen[s],
        ),
    )


def _rank(name: str, order: tuple[str, ...]) -> int:
    return order.index(name) if name in order else len(order)


def _format(stat, column: _Column) -> str:
    if stat is None:
        return MISSING
    mean = column.transform(stat.mean)
    text = f"{mean:.{column.decimals}f}"
    if stat.count > 1:  # several seeds: mean ± std (std unchanged by 100 - x)
        text += f" ± {stat.std:.{column.decimals}f}"
    return text
