"""The cross-protocol view: the same maps under every protocol, and why the numbers differ.

Each protocol names the quantity each of its metrics measures (``MetricSpec.quantity``:
"GT-known Loc", "Top-1 Loc", ...), so one quantity measured under several protocols' rules
lines up in one column; every number carries its 95 % bootstrap interval and every pair of
protocols its paired difference, with the aspects of their rules that differ
(``Protocol.rules``: frame, preparation, box, IoU, averaging, threshold). Built only where some
quantity is measured under two protocols (a default suite's leaderboard has none).
"""

from __future__ import annotations

from itertools import combinations

import pandas as pd

from wsolbench.evaluation.protocols import RULE_ASPECTS, registered_protocols
from wsolbench.report.tables import MISSING, Table

AXES = ("dataset", "split", "backbone", "method", "explainer", "postprocessor")
HEADERS = {
    "dataset": "Dataset",
    "split": "Split",
    "backbone": "Backbone",
    "method": "Method",
    "explainer": "Explainer",
    "postprocessor": "Post-processor",
}


def _quantities() -> dict[str, dict[str, str]]:
    """quantity -> {protocol: its metric measuring it}, in the registry's order."""
    out: dict[str, dict[str, str]] = {}
    for name, protocol in registered_protocols().items():
        for spec in protocol.specs():
            if spec.quantity:
                out.setdefault(spec.quantity, {})[name] = spec.name
    return out


def cross_protocol_tables(results: pd.DataFrame, bootstrap=None, decimals: int = 2) -> list[Table]:
    """The cross-protocol table (settings x protocols, quantities as columns) and the pair
    table (each pair's differences, paired intervals, and the rules that differ)."""
    if results.empty:
        return []
    measured = set(zip(results["protocol"], results["metric"]))
    quantities = {
        quantity: {p: m for p, m in by.items() if (p, m) in measured}
        for quantity, by in _quantities().items()
    }
    quantities = {q: by for q, by in quantities.items() if by}
    if not any(len(by) > 1 for by in quantities.values()):
        return []
    protocols = [p for p in registered_protocols() if any(p in by for by in quantities.values())]
    axes = [a for a in AXES if a in results.columns]
    frame = results.copy()
    frame[axes] = frame[axes].fillna("").astype(str)
    means = frame.groupby(axes + ["protocol", "metric"], sort=False)["value"].mean()
    settings = list(dict.fromkeys(map(tuple, frame[axes].itertuples(index=False))))
    varying = [i for i, a in enumerate(axes) if len({s[i] for s in settings}) > 1]
    lifted = [i for i in range(len(axes)) if i not in varying]
    caption = ", ".join(f"{HEADERS[axes[i]]}: {settings[0][i]}" for i in lifted if settings[0][i])
    columns = list(quantities)

    def cell(setting, protocol, metric):
        value = means.get((*setting, protocol, metric))
        if value is None:
            return MISSING, ""
        text = f"{value:.{decimals}f}"
        interval = ""
        if bootstrap is not None:
            found = bootstrap.interval(dict(zip(axes, setting)), metric, protocol)
            if found is not None:
                interval = f"{found.low:.{decimals}f}, {found.high:.{decimals}f}"
        return text, interval

    rows, intervals = [], {}
    labels = [HEADERS[axes[i]] for i in varying] + ["Protocol"]
    for setting in settings:
        for protocol in protocols:
            row = [setting[i] for i in varying] + [protocol]
            for q in columns:
                metric = quantities[q].get(protocol)
                text, interval = cell(setting, protocol, metric) if metric else (MISSING, "")
                if interval:
                    intervals[(len(rows), len(row))] = interval
                row.append(text)
            if any(v != MISSING for v in row[len(labels) :]):
                rows.append(row)
    main = Table(
        "protocols",
        "The same maps under every protocol",
        "Each column is one quantity measured by each protocol's own rules (the family's "
        "map preparation, frame, box rule, IoU rule, averaging and threshold rule), at its "
        "own threshold rule; intervals: 95 % bootstrap over the images. The differences of "
        "each pair and the rules behind them follow.",
        labels + columns,
        rows,
        caption=caption,
        labels=len(labels),
        intervals=intervals,
    )
    pair_rows, pair_intervals = [], {}
    rules = {name: registered_protocols()[name].rules for name in protocols}
    pair_labels = [HEADERS[axes[i]] for i in varying] + ["Protocols"]
    for setting in settings:
        for a, b in combinations(protocols, 2):
            row = [setting[i] for i in varying] + [f"{a} - {b}"]
            shared = False
            for q in columns:
                ma, mb = quantities[q].get(a), quantities[q].get(b)
                va = means.get((*setting, a, ma)) if ma else None
                vb = means.get((*setting, b, mb)) if mb else None
                if va is None or vb is None:
                    row.append(MISSING)
                    continue
                shared = True
                row.append(f"{va - vb:+.{decimals}f}")
                if bootstrap is not None:
                    fields = dict(zip(axes, setting))
                    found = bootstrap.difference(fields, fields, ma, a, b, metric_b=mb)
                    if found is not None:
                        pair_intervals[(len(pair_rows), len(row) - 1)] = (
                            f"{found.low:+.{decimals}f}, {found.high:+.{decimals}f}"
                        )
            if not shared:
                continue
            differ = [x for x in RULE_ASPECTS if rules[a].get(x) != rules[b].get(x)]
            row.append(", ".join(differ) or "none")
            pair_rows.append(row)
    pairs = Table(
        "protocol_pairs",
        "Why they differ: each pair of protocols on the same maps",
        "Δ = first - second, with its paired 95 % bootstrap interval (the same images drawn "
        "on both sides), and the aspects of their rules that differ (next table).",
        pair_labels + [f"Δ {q}" for q in columns] + ["Rules that differ"],
        pair_rows,
        caption=caption,
        labels=len(pair_labels),
        intervals=pair_intervals,
    )
    rule_table = Table(
        "protocol_rules",
        "The protocols' rules",
        "Each protocol's rules as its reference code applies them (docs/protocols.md cites "
        "the file and line of each).",
        ["Protocol"] + [aspect.capitalize() for aspect in RULE_ASPECTS],
        [[name] + [rules[name].get(x, MISSING) for x in RULE_ASPECTS] for name in protocols],
        labels=1,
    )
    return [main, pairs, rule_table] if pair_rows else [main]
