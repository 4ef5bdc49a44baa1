"""Reproduced vs reported: each measured number beside the published number it reproduces.

A measured row and a published row are compared when they share every key of the results
table (dataset, split, backbone, method, post-processor, protocol, metric). Values are shown
in the convention the paper printed them in: a published accuracy stored as ``100 - error``
(its note starts with ``100 - ``) is shown, with the measured value, as an error again, so the
"Reported" cell reads as printed and the difference has the paper's sign convention.
"""

from __future__ import annotations

import pandas as pd

from wsolbench.evaluation.protocols import ON_TEST, SPA_ERRORS
from wsolbench.report.results import KEY_COLUMNS, METRIC_SPECS, PROTOCOL_METRICS
from wsolbench.report.tables import METHOD_ORDER, MISSING, POSTPROCESSOR_ORDER, Table

# How each metric is printed: the protocols' labels; an error type as a share of images.
_LABELS = {
    key: (
        f"{spec.label} error (% images)" if key[1] in SPA_ERRORS.values() else spec.label,
        spec.decimals,
    )
    for key, spec in METRIC_SPECS.items()
}
_METRIC_ORDER = [
    (protocol, metric) for protocol, metrics in PROTOCOL_METRICS.items() for metric in metrics
]
MEASURED_DECIMALS = 2

TITLE = "Reproduced vs reported"
ON_TEST_HEADER = "Thr. on test"
NOTE = (
    "Measured: this leaderboard's numbers (mean ± std over seeds when there are several; spa "
    "protocol: box threshold chosen on val); Thr. on test: the same, box threshold chosen on "
    "the test set itself, as the published SPA numbers were (val_spa.py); "
    "Reported: the published number with the same dataset, split, backbone, method, "
    "post-processor, protocol and metric (leaderboards/reported, Source column), as printed; "
    "Δ = measured - reported, errors where the paper prints errors."
)
COLUMNS = [
    "Dataset",
    "Split",
    "Backbone",
    "Method",
    "Post-processor",
    "Metric",
    "Measured",
    "Reported",
    "Δ",
    "Source",
]


def comparison_frame(results: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """One row per (measured setting, published number) sharing every key, in display units.

    Columns: the keys, ``label`` (metric as printed, e.g. "Top-1 Loc err"), ``measured``,
    ``measured_std``, ``seeds``, ``measured_on_test`` (spa: at the threshold chosen on test, the
    published rule; NaN elsewhere), ``reported``, ``difference``, ``source``, ``decimals``.
    """
    measured = results.dropna(subset=["value"]).groupby(KEY_COLUMNS, sort=False)["value"]
    measured = pd.DataFrame(
        {
            "measured": measured.mean(),
            "measured_std": measured.std(ddof=0),
            "seeds": measured.count(),
        }
    ).reset_index()
    published = reported[KEY_COLUMNS + ["value", "source", "note"]].rename(
        columns={"value": "reported"}
    )
    # The same number at the box threshold the test split chooses for itself (the rule the
    # published SPA numbers were read under), beside each threshold-dependent spa metric.
    on_test = measured[measured["metric"].str.endswith(ON_TEST)].copy()
    on_test["metric"] = on_test["metric"].str.removesuffix(ON_TEST)
    on_test = on_test[KEY_COLUMNS + ["measured"]].rename(columns={"measured": "measured_on_test"})
    measured = measured.merge(on_test, on=KEY_COLUMNS, how="left")
    merged = measured.merge(published, on=KEY_COLUMNS, how="inner")
    if merged.empty:
        return merged.assign(label=[], difference=[], decimals=[])
    as_error = merged["note"].astype(str).str.startswith("100 - ")
    for column in ("measured", "measured_on_test", "reported"):
        merged[column] = merged[column].where(~as_error, 100.0 - merged[column])
    merged["difference"] = merged["measured"] - merged["reported"]
    labels = [_LABELS.get((p, m), (m, 2)) for p, m in zip(merged["protocol"], merged["metric"])]
    merged["label"] = [
        label + (" err" if error else "") for (label, _), error in zip(labels, as_error)
    ]
    merged["decimals"] = [decimals for _, decimals in labels]
    order = merged.apply(_sort_key, axis=1)
    return merged.loc[order.sort_values(kind="stable").index].reset_index(drop=True)


def comparison_tables(results: pd.DataFrame, reported: pd.DataFrame | None) -> list[Table]:
    """The "Reproduced vs reported" table (empty list when nothing measured was published)."""
    if reported is None or results.empty or reported.empty:
        return []
    frame = comparison_frame(results, reported)
    if frame.empty:
        return []
    multi_split = frame["split"].nunique() > 1
    with_test_rule = bool(frame["measured_on_test"].notna().any())
    columns = [c for c in COLUMNS if c != "Split" or multi_split]
    if with_test_rule:
        columns.insert(columns.index("Measured") + 1, ON_TEST_HEADER)
    rows = []
    for row in frame.itertuples(index=False):
        decimals = min(row.decimals, MEASURED_DECIMALS)
        measured = f"{row.measured:.{decimals}f}"
        if row.seeds > 1:
            measured += f" ± {row.measured_std:.{decimals}f}"
        printed = _printed(row.reported, row.decimals)
        cells = (
            [row.dataset]
            + ([row.split] if multi_split else [])
            + [
                row.backbone,
                row.method,
                row.postprocessor,
                row.label,
                measured,
                *([_on_test_cell(row.measured_on_test, decimals)] if with_test_rule else []),
                printed,
                f"{row.difference:+.{max(decimals, _decimals_of(printed))}f}",
                row.source,
            ]
        )
        rows.append(cells)
    # Dataset .. Metric are labels; Measured, Reported, Difference are numbers; Source is text.
    return [Table("comparison", TITLE, NOTE, columns, rows, labels=columns.index("Metric") + 1)]


def _on_test_cell(value: float, decimals: int) -> str:
    return MISSING if pd.isna(value) else f"{value:.{decimals}f}"


def _printed(value: float, most: int) -> str:
    """The published value with the fewest decimals (up to 2) that show it exactly."""
    for decimals in range(max(most, 2) + 1):
        if abs(round(value, decimals) - value) < 1e-9:
            return f"{value:.{decimals}f}"
    return f"{value:.2f}"


def _decimals_of(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _rank(name: str, order) -> int:
    return order.index(name) if name in order else len(order)


def _sort_key(row) -> tuple:
    return (
        row["dataset"],
        row["split"],
        row["backbone"],
        _rank(row["method"], METHOD_ORDER),
        row["method"],
        _rank(row["postprocessor"], POSTPROCESSOR_ORDER),
        _rank((row["protocol"], row["metric"]), _METRIC_ORDER),
        row["source"],
    )
