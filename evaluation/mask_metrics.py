"""PxAP, the pixel average precision of wsolevaluation (docs/protocols.md sec. 3).

Two histograms of float scores (GT foreground / GT background pixels, ignore pixels dropped)
over the bins whose right edges are ``arange(0, 1, interval)`` then ``[1, 2, 3]``, pooled over
the split as integer counts; the histogram runs as torch ops on the maps' device.
"""

from __future__ import annotations

import numpy as np
import torch

from wsolbench import defaults
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.box_metrics import cam_thresholds
from wsolbench.evaluation.boxes import as_tensor, check_unit_range
from wsolbench.evaluation.per_image import CountMetric


def pxap_bin_edges(interval: float) -> np.ndarray:
    return np.append(cam_thresholds(interval), [1.0, 2.0, 3.0])


def bin_index(scores: torch.Tensor, edges: torch.Tensor, interval: float) -> torch.Tensor:
    """Bin of each score in [0, 1] for ``np.histogram(scores, edges)``: ``edges[i] <= s <
    edges[i + 1]``, computed as ``floor(s / interval)`` and corrected by one step against the
    exact edges (float64), so it equals a binary search without its cost."""
    scores = scores.double()
    top = len(edges) - 3  # index of the edge 1.0
    guess = torch.floor(scores / interval).long().clamp_(0, top)
    guess -= (edges[guess] > scores).long()
    guess += (edges[guess + 1] <= scores).long()
    return guess


class PxAPAccumulator(CountMetric):
    """Foreground / background pixel histograms of the score maps; ``compute`` returns PxAP
    and its precision-recall curve (a dict).

    torchmetrics holds the state (sync, merge, state dict); the binning and the area are
    wsolevaluation's own (np.histogram's edges, bins without predictions skipped), proven
    against its MaskEvaluator (tests/test_pxap_golden.py), rather than torchmetrics' binned
    precision-recall curve, whose thresholds and area are its own conventions."""

    higher_is_better = True
    record_fields = {"foreground": np.int32, "background": np.int32}
    histogram_fields = ("foreground", "background")

    def __init__(
        self, cam_curve_interval: float = defaults.CAM_CURVE_INTERVAL, edges=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.edges = pxap_bin_edges(cam_curve_interval) if edges is None else np.asarray(edges)
        self.interval = float(self.edges[1] - self.edges[0]) if len(self.edges) > 4 else 1.0
        self.add_count("foreground", [len(self.edges) - 1])
        self.add_count("background", [len(self.edges) - 1])

    def settings(self) -> dict:
        return {"edges": self.edges.tolist()}

    def keep_per_image(self) -> PxAPAccumulator:
        """Also keep each image's two histograms, ``foreground`` / ``background`` (N, bins)
        (uint16 when they fit: 4 bytes per bin and image; ``per_image_arrays``)."""
        return super().keep_per_image()

    def update(self, scoremaps, gt_masks, gt_ignore=None) -> None:
        """``scoremaps`` (N, H, W) in [0, 1]; ``gt_masks`` (N, H, W) bool (foreground);
        ``gt_ignore`` (N, H, W) bool or None. Ignored foreground pixels stay foreground."""
        maps = as_tensor(scoremaps)
        check_unit_range(maps)
        masks = as_tensor(gt_masks, maps.device) > 0.5
        if masks.shape != maps.shape:
            raise WsolbenchError(
                f"GT masks of shape {tuple(masks.shape)} do not match score "
                f"maps of shape {tuple(maps.shape)}"
            )
        # One bincount for both histograms: bins of background pixels are shifted by nbins;
        # ignored background pixels go to a trailing bin that is dropped.
        nbins = len(self.edges) - 1
        code = torch.where(masks, 0, nbins)
        if gt_ignore is not None:
            ignore = (as_tensor(gt_ignore, maps.device) > 0.5) & ~masks
            code = torch.where(ignore, 2 * nbins, code)
        edges = torch.as_tensor(self.edges, dtype=torch.float64, device=maps.device)
        index = bin_index(maps, edges, self.interval) + code
        if self.keeps_per_image:  # one bincount with images offset by 3 * nbins
            if index.dim() == 2:
                index = index[None]
            offsets = torch.arange(index.shape[0], device=index.device).reshape(-1, 1, 1)
            per_image = torch.bincount(
                (index + offsets * 3 * nbins).flatten(), minlength=index.shape[0] * 3 * nbins
            )
            per_image = per_image.reshape(-1, 3 * nbins).cpu().numpy()
            self.add_record(
                {
                    "foreground": per_image[:, :nbins],
                    "background": per_image[:, nbins : 2 * nbins],
                }
            )
            counts = per_image.sum(0)
        else:
            counts = torch.bincount(index.flatten(), minlength=3 * nbins).cpu().numpy()
        self.add_counts("foreground", counts[:nbins])
        self.add_counts("background", counts[nbins : 2 * nbins])

    def compute(self) -> dict:
        tp = self.foreground.cpu().numpy()[::-1].cumsum().astype(np.float64)
        fp = self.background.cpu().numpy()[::-1].cumsum().astype(np.float64)
        if tp[-1] <= 0:
            raise WsolbenchError("PxAP: no positive ground-truth pixel in the evaluated maps")
        if ((tp + fp) <= 0).all():
            raise WsolbenchError("PxAP: no positive prediction in the evaluated maps")
        nonzero = (tp + fp) != 0
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        recall = tp / tp[-1]
        pxap = 100.0 * float((precision[1:] * np.diff(recall))[nonzero[1:]].sum())
        return {
            "PxAP": pxap,
            "pxap_precision": np.nan_to_num(precision).tolist(),
            "pxap_recall": recall.tolist(),
            **self.computed_records(),
        }
