"""The spa protocol: Top-1 / Top-5 / GT-known Loc and the five-way error analysis
(Panxjia/SPA_CVPR2021 @ 32bf2d5, docs/protocols.md sec. 4-5).

The top-k and GT classes' maps at the original image size; boxes in original pixels around
every pixel >= t; one box threshold chosen on val (and, labelled, on the test split itself as
SPA's val_spa.py does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from wsolbench import defaults
from wsolbench.evaluation.classic_loc import ERROR_TYPES, OUTCOMES, ClassicLocAccumulator
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols.base import (
    ColumnSpec,
    MapBatch,
    MetricSpec,
    Protocol,
    TableSpec,
)
from wsolbench.evaluation.resampling import Statistic, at_best_first_half, percent
from wsolbench.registry import register_protocol

# The five error types (docs/protocols.md sec. 5) as result metrics, with their printed names.
SPA_ERRORS = {kind: "err_" + kind.replace("-", "") for kind in ERROR_TYPES}  # err_mins, ...
_ERROR_LABELS = {"cls": "Cls", "m-ins": "M-Ins", "part": "Part", "more": "More", "ot": "OT"}
# The accuracies that depend on the box threshold: results name (also the accumulator's
# compute() key, and every family protocol's name for the same quantity) -> label; at the
# threshold the evaluated (test) split chooses for itself they get the suffix ON_TEST.
THRESHOLD_METRICS = {"Top1Loc": "Top-1 Loc", "Top5Loc": "Top-5 Loc", "GTKnownLoc": "GT-known Loc"}
ON_TEST = "_on_test"


@register_protocol("spa")
class Spa(Protocol):
    """Top-1 / Top-5 / GT-known Loc and the five-way error analysis (SPA, Pan et al. 2021).

    Panxjia/SPA_CVPR2021: the maps at the original image size, one box threshold chosen on
    val."""

    name = "spa"
    rules = {
        "frame": "the original image; boxes in original pixels",
        "preparation": "ReLU, min-max (eps 1e-10), bilinear to the original size",
        "box": "the tight box around every pixel >= t (no components)",
        "iou": "> 0.5, +1 areas, any GT box",
        "averaging": "images",
        "threshold": "one of a list, chosen on val (labelled: on the test split itself)",
    }

    def __init__(self, box_thresholds: Sequence[float] = defaults.BOX_THRESHOLDS):
        self.box_thresholds = tuple(float(t) for t in box_thresholds)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            MetricSpec("Top1Loc", "Top-1 Loc", headline=3, quantity="Top-1 Loc"),
            MetricSpec("Top5Loc", "Top-5 Loc", quantity="Top-5 Loc"),
            MetricSpec("GTKnownLoc", "GT-known Loc", headline=2, quantity="GT-known Loc"),
            MetricSpec("Top1Cls", "Top-1 Cls", headline=1, postprocessed=False),
            MetricSpec("Top5Cls", "Top-5 Cls"),
            *(
                MetricSpec(metric, _ERROR_LABELS[kind], better=-1)
                for kind, metric in SPA_ERRORS.items()
            ),
            MetricSpec("box_threshold", "Box threshold", better=0, decimals=3, measured=False),
            # SPA's val_spa.py prints every threshold on the evaluated split itself, where its
            # published numbers were read: the same rule, labelled so (never the headline).
            *(
                MetricSpec(f"{metric}{ON_TEST}", f"{label} (thr. on test)")
                for metric, label in THRESHOLD_METRICS.items()
            ),
            MetricSpec(
                f"box_threshold{ON_TEST}", "Box thr. on test", better=0, decimals=3, measured=False
            ),
        )

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        return {"classic": ClassicLocAccumulator(self.box_thresholds)} if boxes else {}

    def per_threshold(self, computed: Mapping[str, dict]) -> dict[str, dict[str, float]]:
        if "classic" not in computed:
            return {}
        per = computed["classic"]["classic_per_threshold"]
        return {metric: {t: row[metric] for t, row in per.items()} for metric in THRESHOLD_METRICS}

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        return []  # the report draws none of its own (the box threshold is one of a few)

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        if "classic" in metrics:
            metrics["classic"].update(
                batch.labels,
                batch.topk,
                [m[1:] for m in batch.maps],
                batch.gt_maps(),
                [np.asarray(b, np.int64).reshape(-1, 4) for b in batch.gt.boxes],
            )

    def choose(self, computed: Mapping[str, dict]) -> dict:
        """The box threshold with the best GT-known Loc (the smallest on ties)."""
        if "classic" not in computed:
            return {"box_threshold": self.box_thresholds[0]}
        per = computed["classic"]["classic_per_threshold"]
        best = max(per, key=lambda t: (per[t]["GTKnownLoc"], -float(t)))
        return {"box_threshold": float(best)}

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        """At ``choice["box_threshold"]`` (chosen on val), plus, labelled ``*_on_test``, the
        threshold-dependent accuracies at the threshold ``choose`` picks on the scored split itself
        (SPA's published rule); without a choice, only the latter, under the plain names."""
        if "classic" not in computed:
            return {}
        classic = computed["classic"]
        threshold = float((choice or self.choose(computed))["box_threshold"])
        at = classic["classic_per_threshold"][f"{threshold:g}"]
        out = {metric: at[metric] for metric in THRESHOLD_METRICS}
        out.update(Top1Cls=classic["Top1Cls"], Top5Cls=classic["Top5Cls"])
        out.update({metric: at[f"error_{kind}"] for kind, metric in SPA_ERRORS.items()})
        out["box_threshold"] = threshold
        if choice is not None:  # chosen elsewhere (val): also the evaluated split's own choice
            own = self.choose(computed)["box_threshold"]
            at_own = classic["classic_per_threshold"][f"{own:g}"]
            for metric in THRESHOLD_METRICS:
                out[f"{metric}{ON_TEST}"] = at_own[metric]
            out[f"box_threshold{ON_TEST}"] = own
        return out

    # -- per-image records ----------------------------------------------------------------------
    def record_meta(self, metrics: Mapping[str, CountMetric], choice: Mapping | None) -> dict:
        meta = {"box_threshold": float((choice or {}).get("box_threshold", self.box_thresholds[0]))}
        if "classic" in metrics:
            meta["box_thresholds"] = [float(t) for t in metrics["classic"].thresholds]
        return meta

    @staticmethod
    def threshold_index(meta: Mapping) -> int:
        """The column of the per-image records at the box threshold chosen on val."""
        thresholds = np.asarray([float(t) for t in meta["box_thresholds"]])
        return int(np.argmin(np.abs(thresholds - float(meta["box_threshold"]))))

    @staticmethod
    def outcomes(arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict | None:
        """Per image at the chosen threshold: ``outcome`` (index into ``OUTCOMES``: correct or
        the top-1 error type), ``top1_class`` and ``top1_box`` (original pixels), for the
        report's failure browser and error-shift figure; None without these records."""
        if "classic.outcome" not in arrays:
            return None
        t = Spa.threshold_index(meta)
        return {
            "outcome": arrays["classic.outcome"][:, t],
            "top1_class": arrays["classic.top1_class"],
            "top1_box": arrays["classic.top1_box"][:, t],
        }

    def statistics(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict[str, Statistic]:
        if "classic.outcome" not in arrays:
            return {}
        t = self.threshold_index(meta)
        outcome = arrays["classic.outcome"][:, t]
        columns = {
            "Top1Loc": outcome == 0,
            "Top5Loc": arrays["classic.top5_loc"][:, t],
            "GTKnownLoc": arrays["classic.gt_known_loc"][:, t],
            "Top1Cls": arrays["classic.top1_cls"],
            "Top5Cls": arrays["classic.top5_cls"],
        }
        columns.update(
            {metric: outcome == OUTCOMES.index(kind) for kind, metric in SPA_ERRORS.items()}
        )
        out = {
            metric: Statistic(np.asarray(column, np.float32)[:, None], percent)
            for metric, column in columns.items()
        }
        # At the threshold the resampled images choose themselves (this protocol's rule on the
        # evaluated split: best GT-known Loc, the smallest threshold on ties), re-chosen in
        # every resample as MaxBoxAcc re-chooses its CAM threshold.
        order = np.argsort(np.asarray(meta["box_thresholds"], np.float64), kind="stable")
        known = arrays["classic.gt_known_loc"][:, order]
        per_threshold = {
            "Top1Loc": arrays["classic.outcome"][:, order] == 0,
            "Top5Loc": arrays["classic.top5_loc"][:, order],
            "GTKnownLoc": known,
        }
        for metric, values in per_threshold.items():
            rows = np.concatenate([known, values], 1).astype(np.float32)
            out[f"{metric}{ON_TEST}"] = Statistic(rows, at_best_first_half(len(order)))
        return out

    # -- report ---------------------------------------------------------------------------------
    def tables(self) -> tuple[TableSpec, ...]:
        def col(metric: str, **options) -> ColumnSpec:
            return ColumnSpec("spa", metric, **options)

        return (
            TableSpec(
                "errors",
                "Localization error analysis, % of images (SPA Table 4 style)",
                "spa protocol, top-1 (class, box); Cls + M-Ins + Part + More + OT = Top-1 Loc "
                "error.",
                tuple(col(metric) for metric in SPA_ERRORS.values()),
                order=20,
            ),
            TableSpec(
                "loc_error",
                "Localization and classification error, % (SPA Tables 1/2 style)",
                "spa protocol: ten-crop classification, box from the map at the "
                "threshold chosen on val, correct if IoU > 0.5; error = 100 - accuracy.",
                (
                    col("Top1Loc", error=True),
                    col("Top5Loc", error=True),
                    col("GTKnownLoc", error=True),
                    col("Top1Cls", error=True),
                    col("Top5Cls", error=True),
                    col("box_threshold"),
                ),
                order=30,
            ),
            TableSpec(
                "threshold_rule",
                "Box threshold chosen on val vs on the test set itself (SPA's val_spa.py rule)",
                "spa protocol. Plain names: the threshold chosen on val (wsolbench's rule, every "
                "other table). 'thr. on test': the threshold with the best GT-known Loc on the "
                "test split itself, as SPA's val_spa.py prints every threshold on the evaluation "
                "set, where the published SPA numbers were read; optimistic by construction, "
                "shown to compare with them.",
                (
                    col("Top1Loc"),
                    col(f"Top1Loc{ON_TEST}"),
                    col("GTKnownLoc"),
                    col(f"GTKnownLoc{ON_TEST}"),
                    col("box_threshold"),
                    col(f"box_threshold{ON_TEST}"),
                ),
                order=40,
                requires=tuple(f"{m}{ON_TEST}" for m in (*THRESHOLD_METRICS, "box_threshold")),
            ),
            TableSpec(
                "ablation",
                "SCG x RAM ablation for SPA (SPA Tables 5/6 style)",
                "Loc errors: spa protocol; Peak-IoU: peak protocol; the RAM difference is RAM "
                "minus no RAM.",
                (
                    col("Top1Loc", error=True),
                    col("GTKnownLoc", error=True),
                    ColumnSpec("peak", "PeakIoU"),
                ),
                order=50,
                layout="ablation",
            ),
        )
