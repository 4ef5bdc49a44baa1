"""Figure: how each method's error types change from plain maps to + SCG, per image.

One panel per method (and explainer): two stacked bars (plain, + SCG) of the outcome shares and
bands between them whose widths are the numbers of images that moved from one type to another
(a small Sankey diagram), computed from the per-image outcomes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsolbench.evaluation.classic_loc import OUTCOMES
from wsolbench.evaluation.protocols import Spa
from wsolbench.report import outcomes
from wsolbench.report.per_image import Record
from wsolbench.report.tables import METHOD_ORDER, PLAIN, _rank, pp_label

LABELS = tuple(outcomes.LABELS[kind] for kind in OUTCOMES)
COLORS = tuple(outcomes.COLORS[kind] for kind in OUTCOMES)


def transitions(plain: Record, other: Record) -> np.ndarray:
    """(6, 6) counts of images by (plain outcome, other outcome) at each one's box threshold."""
    a = Spa.outcomes(plain.arrays, plain.meta)["outcome"].astype(np.int64)
    b = Spa.outcomes(other.arrays, other.meta)["outcome"].astype(np.int64)
    k = len(OUTCOMES)
    return np.bincount(a * k + b, minlength=k * k).reshape(k, k)


def shift_pairs(records: list[Record]) -> dict[tuple[str, ...], tuple[Record, Record]]:
    """(dataset, backbone, method[, explainer], post-processor) -> (plain, other) of the lowest
    seed, for every non-plain post-processor of settings that have both."""
    by_key: dict[tuple, Record] = {}
    for record in sorted(records, key=lambda r: int(r.key.get("seed", 0))):
        if Spa.outcomes(record.arrays, record.meta) is None:
            continue
        key = tuple((k, str(v)) for k, v in record.key.items() if k != "seed")
        by_key.setdefault(key, record)
    pairs = {}
    for key, record in by_key.items():
        fields = dict(key)
        if fields["postprocessor"] in PLAIN:
            continue
        for plain_name in PLAIN:
            plain = by_key.get(
                tuple((k, plain_name if k == "postprocessor" else v) for k, v in key)
            )
            if plain is not None:
                label = tuple(
                    fields.get(a, "")
                    for a in ("dataset", "backbone", "method", "explainer", "postprocessor")
                )
                pairs[label] = (plain, record)
                break
    return dict(
        sorted(
            pairs.items(),
            key=lambda item: (item[0][:2], _rank(item[0][2], METHOD_ORDER), item[0][2:]),
        )
    )


def plot_error_shift(records: list[Record], path: Path, title: str) -> bool:
    import matplotlib.pyplot as plt

    from wsolbench.report.figures import _save

    pairs = shift_pairs(records)
    if not pairs:
        return False
    columns = min(4, len(pairs))
    rows = -(-len(pairs) // columns)
    # Constrained layout keeps the title, the panel titles and the legend apart at any size.
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.6 * columns, 2.9 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for axis in axes.ravel()[len(pairs) :]:
        axis.axis("off")
    for axis, (label, (plain, other)) in zip(axes.ravel(), pairs.items()):
        counts = transitions(plain, other)
        total = counts.sum()
        left = np.concatenate([[0], np.cumsum(counts.sum(1))]) / total * 100
        right = np.concatenate([[0], np.cumsum(counts.sum(0))]) / total * 100
        out_offset, in_offset = left[:-1].copy(), right[:-1].copy()
        for a in range(len(LABELS)):  # bands, drawn under the bars
            for b in range(len(LABELS)):
                share = counts[a, b] / total * 100
                if share == 0:
                    continue
                xs = np.linspace(0.2, 0.8, 30)
                smooth = (1 - np.cos(np.pi * (xs - 0.2) / 0.6)) / 2
                low = out_offset[a] + (in_offset[b] - out_offset[a]) * smooth
                axis.fill_between(xs, low, low + share, color=COLORS[a], alpha=0.35, linewidth=0)
                out_offset[a] += share
                in_offset[b] += share
        for x, edges in ((0.1, left), (0.9, right)):
            for k, color in enumerate(COLORS):
                if edges[k + 1] > edges[k]:
                    axis.bar(
                        x,
                        edges[k + 1] - edges[k],
                        bottom=edges[k],
                        width=0.2,
                        color=color,
                        label=LABELS[k] if x == 0.1 else None,
                    )
        method = " / ".join(v for v in (label[2], label[3]) if v)
        axis.set_title(method, fontsize=9)
        axis.set_xticks([0.1, 0.9], ["plain", pp_label(label[4])], fontsize=8)
        axis.set_ylim(100, 0)
        axis.set_xlim(0, 1)
        axis.set_ylabel("% of test images", fontsize=7)
        axis.tick_params(axis="y", labelsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS]
    figure.legend(handles, LABELS, loc="outside lower center", ncol=len(LABELS), fontsize=8)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)
    return True
