"""The leaderboard's tables, built from the long results table.

Each builder returns ``Table`` objects (plain strings in cells), so Markdown, HTML and the
terminal render exactly the same numbers. A table or column whose metrics are absent from the
results is skipped (e.g. no masks -> no PxAP column).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import pandas as pd

MISSING = "–"
METHOD_ORDER = ("cam", "has", "acol", "spg", "adl", "cutmix", "spa-noram", "spa")
POSTPROCESSOR_ORDER = ("none", "identity", "scg")
ERROR_TYPES = (("err_cls", "Cls"), ("err_mins", "M-Ins"), ("err_part", "Part"),
               ("err_more", "More"), ("err_ot", "OT"))


@dataclass
class Table:
    key: str
    title: str
    note: str  # which protocol produced the numbers
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Column:
    header: str
    protocol: str
    metric: str
    transform: Callable[[float], float] = lambda value: value
    decimals: int = 2


def _error(value: float) -> float:
    return 100.0 - value


LOC_ERROR_COLUMNS = (
    _Column("Top-1 Loc err", "spa", "top1_loc", _error),
    _Column("Top-5 Loc err", "spa", "top5_loc", _error),
    _Column("GT-known Loc err", "spa", "gt_known_loc", _error),
    _Column("Top-1 Cls err", "spa", "top1_cls", _error),
    _Column("Top-5 Cls err", "spa", "top5_cls", _error),
    _Column("Box threshold", "spa", "box_threshold", decimals=3),
)
PEAK_COLUMNS = (
    _Column("Peak-IoU", "peak", "PeakIoU"),
    _Column("Peak-T", "peak", "PeakT", decimals=0),
    _Column("GT-known Loc", "spa", "gt_known_loc"),
)
ERROR_COLUMNS = tuple(_Column(label, "spa", metric) for metric, label in ERROR_TYPES)
WSOLEVAL_COLUMNS = (
    _Column("MaxBoxAcc", "wsolevaluation", "MaxBoxAcc"),
    _Column("MaxBoxAccV2", "wsolevaluation", "MaxBoxAccV2"),
    _Column("IoU 30", "wsolevaluation", "MaxBoxAccV2@30"),
    _Column("IoU 50", "wsolevaluation", "MaxBoxAccV2@50"),
    _Column("IoU 70", "wsolevaluation", "MaxBoxAccV2@70"),
    _Column("PxAP", "wsolevaluation", "PxAP"),
)
ABLATION_COLUMNS = (
    _Column("Top-1 Loc err", "spa", "top1_loc", _error),
    _Column("GT-known Loc err", "spa", "gt_known_loc", _error),
    _Column("Peak-IoU", "peak", "PeakIoU"),
)
COST_COLUMNS = (
    _Column("Maps ms / image", "cost", "explain_ms", decimals=1),
    _Column("Post-process + scoring ms / image", "cost", "score_ms", decimals=1),
)
ABLATION_ROWS = (("spa-noram", "none"), ("spa", "none"), ("spa-noram", "scg"), ("spa", "scg"))


def build_tables(results: pd.DataFrame, suffix: str = "", decimals: int | None = None
                 ) -> list[Table]:
    """Every leaderboard table the results support, in the SPA paper's order of comparison.

    ``suffix`` is appended to each title (used to mark published numbers as reported);
    ``decimals`` overrides the number of decimals (published numbers keep their precision).
    """
    if results.empty:
        return []
    stats = _aggregate(results)
    builders = (
        ("peak", "Peak-IoU, Peak-T and GT-known Loc, plain and + SCG (SPA Table 3 style)",
         PEAK_COLUMNS, "Peak-IoU / Peak-T: peak protocol (pooled IoU over 256 levels); "
         "GT-known Loc: spa protocol (IoU > 0.5).", None),
        ("errors", "Localization error analysis, % of images (SPA Table 4 style)",
         ERROR_COLUMNS, "spa protocol, top-1 (class, box); Cls + M-Ins + Part + More + OT = "
         "Top-1 Loc error.", None),
        ("loc_error", "Localization and classification error, % (SPA Tables 1/2 style)",
         LOC_ERROR_COLUMNS, "spa protocol: ten-crop classification, box from the map at the "
         "threshold chosen on val, correct if IoU > 0.5; error = 100 - accuracy.", None),
        ("ablation", "SCG x RAM ablation for SPA (SPA Tables 5/6 style)", ABLATION_COLUMNS,
         "Loc errors: spa protocol; Peak-IoU: peak protocol. spa-noram = SPA trained with "
         "alpha 0 (no RAM).", ABLATION_ROWS),
        ("wsolevaluation", "MaxBoxAcc, MaxBoxAccV2 and PxAP (wsolevaluation, Choe et al. 2020)",
         WSOLEVAL_COLUMNS, "wsolevaluation protocol: best threshold per IoU on the split; "
         "MaxBoxAccV2 = mean over IoU 30/50/70 with all contours; PxAP from masks.", None),
        ("cost", "Cost per image of the maps and their scoring", COST_COLUMNS,
         "Wall time per image on the machine named in the notes. Maps: the GT and top-5 class "
         "maps beyond the classification forward pass (a model's own CAM comes with it). "
         "Post-process + scoring: the post-processor and every protocol's evaluator.", None),
    )
    tables = []
    for key, title, columns, note, fixed_rows in builders:
        if decimals is not None:
            columns = tuple(replace(column, decimals=decimals) for column in columns)
        table = _build(stats, key, title + suffix, note, columns, fixed_rows)
        if table is not None:
            tables.append(table)
    return tables


def _aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds of each (setting, protocol, metric)."""
    keys = ["dataset", "split", "backbone", "method", "postprocessor", "protocol", "metric"]
    frame = results.dropna(subset=["value"])
    grouped = frame.groupby(keys, sort=False)["value"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0),
                         "count": grouped.count()}).reset_index()


def _build(stats: pd.DataFrame, key: str, title: str, note: str, columns,
           fixed_rows) -> Table | None:
    wanted = {(column.protocol, column.metric) for column in columns}
    pairs = set(zip(stats["protocol"], stats["metric"]))
    present = [column for column in columns if (column.protocol, column.metric) in pairs]
    # A table needs at least one of its own defining metrics (not only a borrowed column).
    if not present or (key == "peak" and not any(c.protocol == "peak" for c in present)):
        return None
    subset = stats[[pair in wanted for pair in zip(stats["protocol"], stats["metric"])]]
    settings = _settings(subset, fixed_rows)
    if not settings:
        return None
    multi_split = subset["split"].nunique() > 1
    header = ["Dataset"] + (["Split"] if multi_split else []) + ["Backbone"]
    header += ["RAM", "SCG"] if fixed_rows else ["Method", "Post-processor"]
    lookup = {
        (row.dataset, row.split, row.backbone, row.method, row.postprocessor, row.protocol,
         row.metric): row for row in subset.itertuples(index=False)
    }
    rows = []
    for dataset, split, backbone, method, postprocessor in settings:
        cells = [dataset] + ([split] if multi_split else []) + [backbone]
        if fixed_rows:
            cells += ["✓" if method == "spa" else "✗", "✓" if postprocessor == "scg" else "✗"]
        else:
            cells += [method, postprocessor]
        for column in present:
            stat = lookup.get((dataset, split, backbone, method, postprocessor, column.protocol,
                               column.metric))
            cells.append(_format(stat, column))
        if any(cell != MISSING for cell in cells[-len(present):]):
            rows.append(cells)
    if not rows:
        return None
    return Table(key, title, note, header + [column.header for column in present], rows)


def _settings(subset: pd.DataFrame, fixed_rows) -> list[tuple[str, ...]]:
    keys = ["dataset", "split", "backbone", "method", "postprocessor"]
    found = list(dict.fromkeys(map(tuple, subset[keys].itertuples(index=False))))
    if fixed_rows:
        groups = list(dict.fromkeys(setting[:3] for setting in found))
        found_set = set(found)
        return [group + row for group in groups for row in fixed_rows
                if group + row in found_set]
    first_seen = {setting: index for index, setting in enumerate(found)}
    # "cam · gradcam++" (a method's maps by an explainer) sorts with its method.
    return sorted(found, key=lambda s: (s[0], s[1], s[2], _rank(s[3].split(" · ")[0], METHOD_ORDER),
                                        _rank(s[4], POSTPROCESSOR_ORDER), first_seen[s]))


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
