"""The bench's scoring: one post-processor call per batch (GT class + top-k) feeds exactly the
counts that one call per class map fed before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsolbench import create_postprocessor
from wsolbench.data.datasets import resize_mask
from wsolbench.engine.infer import gather_classes
from wsolbench.evaluation import (
    BoxAccumulator,
    ClassicLocAccumulator,
    Evaluator,
    PeakAccumulator,
    PxAPAccumulator,
    rescale_boxes,
)
from wsolbench.evaluation.scoremaps import minmax_normalize
from wsolbench.scoring import Scorer, wsolevaluation_scoremaps

EVALUATION = {
    "map_size": 24,
    "iou_thresholds": [30, 50, 70],
    "cam_curve_interval": 0.01,
    "box_thresholds": [0.1, 0.2, 0.3, 0.4, 0.5],
}
SIZES = [(40, 32), (29, 45), (40, 32), (64, 64), (17, 50)]  # (W, H), as datasets give them


def _batch(seed: int) -> dict:
    """A `predict`-like batch: class maps with a bright blob near each GT box, two taps, masks."""
    generator = torch.Generator().manual_seed(seed)
    n, classes, grid = len(SIZES), 10, (8, 8)
    cams = torch.randn(n, classes, *grid, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    cams[torch.arange(n), labels, 2:6, 3:7] += 3.0
    probs = torch.rand(n, classes, generator=generator)
    top = probs.topk(5, dim=1).indices
    boxes, masks, ignores = [], [], []
    for width, height in SIZES:
        x0, y0 = width // 4, height // 5
        boxes.append(np.array([[x0, y0, width - 1 - x0 // 2, height - 1 - y0]], np.int64))
        mask = np.zeros((height, width), bool)
        mask[y0 : height - y0, x0 : width - x0 // 2] = True
        masks.append(mask)
        ignores.append(np.roll(mask, 3, axis=1) & ~mask)
    taps = [torch.rand(n, 16, *grid, generator=generator) for _ in range(2)]
    return {
        "label": labels,
        "topk": top,
        "size": SIZES,
        "boxes": boxes,
        "taps": taps,
        "cams_gt": gather_classes(cams, labels[:, None])[:, 0],
        "cams_topk": gather_classes(cams, top),
        "mask": masks,
        "ignore": ignores,
        "peak_mask": [torch.from_numpy(m) for m in masks],
    }


def _per_map_inputs(batch: dict, pp, name: str) -> dict:
    """The evaluator inputs as scoring built them with one post-processor call per class map."""
    sizes = [(h, w) for w, h in batch["size"]]
    topk_maps = [
        pp(batch["cams_topk"][:, k], batch["taps"], sizes) for k in range(batch["topk"].shape[1])
    ]
    gt_maps = pp(batch["cams_gt"], batch["taps"], sizes)
    size = (EVALUATION["map_size"],) * 2
    # wsolevaluation: plain maps start from the raw CAM, SCG maps from their original-size output.
    sources = (
        batch["cams_gt"].double().numpy()
        if name == "identity"
        else [m.double().numpy() for m in gt_maps]
    )
    return {
        "labels": batch["label"],
        "top5": batch["topk"],
        "loc_maps": [torch.stack([maps[i] for maps in topk_maps]) for i in range(len(sizes))],
        "gt_loc_maps": list(gt_maps),
        "gt_boxes_original": batch["boxes"],
        "gt_boxes": [rescale_boxes(b, (w, h), size) for b, (h, w) in zip(batch["boxes"], sizes)],
        "scoremaps": torch.from_numpy(np.stack([minmax_normalize(m, size) for m in sources])),
        "gt_masks": np.stack([resize_mask(m, size) for m in batch["mask"]]),
        "gt_ignore": np.stack([resize_mask(m, size) for m in batch["ignore"]]),
        "peak_maps": list(gt_maps),
        "peak_masks": list(batch["peak_mask"]),
    }


@pytest.mark.parametrize(
    "name,options", [("identity", {}), ("scg", {"fo_th": 0.1, "so_th": 0.5, "so_weight": 2.0})]
)
def test_one_call_per_batch_gives_the_counts_of_one_call_per_map(name, options):
    pp = create_postprocessor(name, **options)
    scorer = Scorer(EVALUATION)
    interval = EVALUATION["cam_curve_interval"]
    reference = Evaluator(
        box=BoxAccumulator(interval, EVALUATION["iou_thresholds"]),
        pxap=PxAPAccumulator(interval),
        peak=PeakAccumulator(),
        classic=ClassicLocAccumulator(EVALUATION["box_thresholds"]),
    )
    for seed in (0, 1):
        batch = _batch(seed)
        scorer.accumulate(batch, pp)
        reference.accumulate(_per_map_inputs(batch, pp, name))
    got, expected = scorer.evaluator.state_dict(), reference.state_dict()
    assert got.keys() == expected.keys()
    for accumulator, state in expected.items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(got[accumulator][key]), torch.as_tensor(value)), (
                accumulator,
                key,
            )
    # Not vacuous: boxes, masks and classification were all counted.
    computed = scorer.evaluator.compute()
    assert computed["MaxBoxAccV2"] > 0 and 0 < computed["PxAP"] < 100 and computed["PeakIoU"] > 0
    rows = scorer.rows({"postprocessor": name}, box_threshold=0.2)
    assert {r["metric"] for r in rows} >= {
        "top1_loc",
        "gt_known_loc",
        "MaxBoxAccV2",
        "PxAP",
        "PeakIoU",
    }


def test_wsolevaluation_scoremaps_start_where_the_postprocessor_says():
    batch = _batch(0)
    size = (EVALUATION["map_size"],) * 2
    identity = create_postprocessor("identity")
    raw = [minmax_normalize(m, size) for m in batch["cams_gt"].double().numpy()]
    assert np.array_equal(wsolevaluation_scoremaps(batch, identity, size[0]).numpy(), np.stack(raw))
    scg = create_postprocessor("scg")
    originals = scg(batch["cams_gt"], batch["taps"], [(h, w) for w, h in SIZES])
    expected = [minmax_normalize(m.double().numpy(), size) for m in originals]
    assert np.array_equal(wsolevaluation_scoremaps(batch, scg, size[0]).numpy(), np.stack(expected))
