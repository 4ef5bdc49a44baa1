"""Leaderboard figures (matplotlib, Agg backend): curves, error bars and map overlays.

Every function writes one PNG and returns its path; none opens a window.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from wsolbench.io import atomic_path  # noqa: E402
from wsolbench.report.outcomes import metric_color  # noqa: E402
from wsolbench.report.tables import ERROR_TYPES, METHOD_ORDER, _rank, pp_label  # noqa: E402

IOU_CURVES = ("box_acc_v2@30", "box_acc_v2@50", "box_acc_v2@70")
LINESTYLES = {"none": "-", "scg": "--"}


def slug(*names: str) -> str:
    """A file-name-safe stem from arbitrary (user-given) names."""
    text = "_".join(names)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "x"


def render_figures(
    results: pd.DataFrame,
    out_dir: Path,
    curves: Sequence[Mapping] | None = None,
    overlays: Mapping[str, Any] | None = None,
) -> list[tuple[str, Path]]:
    """Every figure the inputs support, as (caption, path) pairs under ``out_dir``."""
    figures: list[tuple[str, Path]] = []
    by_setting: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    for curve in curves or ():
        by_setting[(str(curve["dataset"]), str(curve["backbone"]))].append(curve)
    for (dataset, backbone), group in by_setting.items():
        where = f"{dataset}, {backbone}"
        path = out_dir / f"box_acc_v2_{slug(dataset, backbone)}.png"
        if plot_box_accuracy_curves(group, path, where):
            figures.append((f"Box accuracy vs CAM threshold per IoU ({where})", path))
        path = out_dir / f"peak_iou_{slug(dataset, backbone)}.png"
        if plot_single_curve(
            group,
            "peak_iou",
            path,
            f"Peak-IoU curves ({where})",
            "score level t (0..255)",
            "IoU (%)",
        ):
            figures.append((f"IoU vs score level, pooled over the split ({where})", path))
        path = out_dir / f"pxap_pr_{slug(dataset, backbone)}.png"
        if plot_single_curve(
            group, "pxap_pr", path, f"Pixel precision-recall ({where})", "recall", "precision"
        ):
            figures.append((f"Pixel precision-recall curves behind PxAP ({where})", path))
    errors = results[
        results["metric"].isin([metric for metric, _ in ERROR_TYPES])
        & (results["protocol"] == "spa")
    ]
    for (dataset, backbone), group in errors.groupby(["dataset", "backbone"], sort=False):
        path = out_dir / f"error_types_{slug(dataset, backbone)}.png"
        plot_error_bars(group, path, f"Localization error types ({dataset}, {backbone})")
        figures.append((f"Error types per method, plain vs SCG ({dataset}, {backbone})", path))
    if overlays and overlays.get("images") and overlays.get("rows"):
        path = out_dir / "overlays.png"
        plot_overlays(overlays, path)
        figures.append(("Localization maps over test images (GT boxes in green)", path))
    return figures


def _colors(curves: Iterable[Mapping]) -> dict[str, Any]:
    methods = sorted({str(c["method"]) for c in curves}, key=lambda m: (_rank(m, METHOD_ORDER), m))
    cmap = plt.get_cmap("tab10")
    return {method: cmap(index % 10) for index, method in enumerate(methods)}


def _plot_lines(axis, curves: Sequence[Mapping], colors: Mapping[str, Any]) -> None:
    for curve in curves:
        x, y = np.asarray(curve["x"], float), np.asarray(curve["y"], float)
        if curve["curve"] == "pxap_pr":
            # Points at recall 0 add no area to PxAP, and the first has no prediction at all
            # (precision 0/0, stored as 0): drawn, they make a spike to (0, 0).
            x, y = x[x > 0], y[x > 0]
        axis.plot(
            x,
            y,
            color=colors[str(curve["method"])],
            linestyle=_linestyle(str(curve["postprocessor"])),
            linewidth=1.4,
        )


def _linestyle(postprocessor: str) -> str:
    return LINESTYLES.get(postprocessor, ":")


def _legend(figure, curves: Sequence[Mapping], colors: Mapping[str, Any]) -> None:
    """One legend beside the panels (never over a curve): a colour per method, a line style
    per post-processor."""
    handles = [Line2D([], [], color=color, linewidth=2, label=m) for m, color in colors.items()]
    postprocessors = dict.fromkeys(str(c["postprocessor"]) for c in curves)
    handles += [
        Line2D([], [], color="black", linestyle=_linestyle(pp), linewidth=1.4, label=pp_label(pp))
        for pp in sorted(postprocessors, key=lambda pp: (_linestyle(pp) != "-", pp))
    ]
    figure.legend(
        handles=handles,
        fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )


def plot_box_accuracy_curves(curves: Sequence[Mapping], path: Path, where: str) -> bool:
    """One panel per IoU threshold: box accuracy (%) against the CAM threshold."""
    present = [name for name in IOU_CURVES if any(c["curve"] == name for c in curves)]
    if not present:
        return False
    colors = _colors(curves)
    figure, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
    for axis, name in zip(axes[0], present):
        _plot_lines(axis, [c for c in curves if c["curve"] == name], colors)
        axis.set_title(f"IoU ≥ {name.split('@')[1]}%")
        axis.set_xlabel("CAM threshold")
        axis.set_ylabel("box accuracy (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
    _legend(figure, curves, colors)
    figure.suptitle(f"MaxBoxAccV2 curves ({where})", fontsize=10)
    _save(figure, path)
    return True


def plot_single_curve(
    curves: Sequence[Mapping], name: str, path: Path, title: str, xlabel: str, ylabel: str
) -> bool:
    chosen = [c for c in curves if c["curve"] == name]
    if not chosen:
        return False
    figure, axis = plt.subplots(figsize=(5.2, 3.8))
    colors = _colors(chosen)
    _plot_lines(axis, chosen, colors)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    _legend(figure, chosen, colors)
    _save(figure, path)
    return True


def plot_error_bars(errors: pd.DataFrame, path: Path, title: str) -> None:
    """Stacked bars of the five error types (% of images), one bar per method / post-processor."""
    table = errors.groupby(["method", "postprocessor", "metric"], sort=False)["value"].mean()
    table = table.unstack("metric").reindex(columns=[m for m, _ in ERROR_TYPES]).fillna(0.0)
    order = sorted(
        table.index, key=lambda key: (_rank(key[0], METHOD_ORDER), key[0], key[1] != "none", key[1])
    )
    table = table.loc[order]
    figure, axis = plt.subplots(figsize=(max(4.0, 0.7 * len(table) + 2), 3.8))
    bottom = np.zeros(len(table))
    positions = np.arange(len(table))
    for metric, label in ERROR_TYPES:
        values = table[metric].to_numpy(float)
        axis.bar(positions, values, bottom=bottom, label=label, color=metric_color(metric))
        bottom += values
    axis.set_xticks(positions, [f"{m}\n{pp_label(p)}" for m, p in table.index], fontsize=7)
    axis.set_ylabel("% of images (sum = Top-1 Loc error)")
    axis.set_title(title, fontsize=10)
    # Beside the bars, top type first as stacked; never over a bar.
    handles, labels = axis.get_legend_handles_labels()
    axis.legend(
        handles[::-1], labels[::-1], fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )
    _save(figure, path)


def plot_overlays(overlays: Mapping[str, Any], path: Path) -> None:
    """Grid: one column per image, one row per (method, post-processor) map over the image."""
    images = list(overlays["images"])
    rows = dict(overlays["rows"])
    boxes = overlays.get("boxes")
    figure, axes = plt.subplots(
        len(rows), len(images), squeeze=False, figsize=(1.4 * len(images) + 0.6, 1.4 * len(rows))
    )
    for row_index, (label, maps) in enumerate(rows.items()):
        for column, image in enumerate(images):
            axis = axes[row_index][column]
            height, width = np.asarray(image).shape[:2]
            extent = (0, width, height, 0)
            axis.imshow(np.asarray(image), extent=extent)
            if column < len(maps) and maps[column] is not None:
                axis.imshow(
                    np.asarray(maps[column], float),
                    cmap="jet",
                    alpha=0.5,
                    vmin=0,
                    vmax=1,
                    extent=extent,
                )
            if boxes is not None and column < len(boxes) and boxes[column] is not None:
                for x0, y0, x1, y1 in np.asarray(boxes[column]).reshape(-1, 4):
                    axis.add_patch(
                        plt.Rectangle(
                            (x0, y0),
                            x1 - x0 + 1,
                            y1 - y0 + 1,
                            fill=False,
                            edgecolor="lime",
                            linewidth=1.2,
                        )
                    )
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(str(label), fontsize=7)
    _save(figure, path)


def _save(figure, path: Path) -> None:
    if figure.get_layout_engine() is None:  # a figure with its own layout keeps it
        figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90, bbox_inches="tight")  # keeps outside legends
    plt.close(figure)
