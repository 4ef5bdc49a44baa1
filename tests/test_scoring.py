"""The bench's scoring: one post-processor call per batch (GT class + top-k), prepared by the
protocols, feeds exactly the counts that the protocols' rules written out by hand give with one
post-processor call per class map."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsolbench import create_postprocessor
from wsolbench.engine.infer import gather_classes
from wsolbench.evaluation import (
    BoxAccumulator,
    ClassicLocAccumulator,
    PeakAccumulator,
    PxAPAccumulator,
    create_protocols,
    rescale_boxes,
)
from wsolbench.evaluation.protocols import WsolEvaluation
from wsolbench.evaluation.scoremaps import minmax_normalize
from wsolbench.scoring import Scorer

EVALUATION = {
    "map_size": 24,
    "iou_thresholds": [30, 50, 70],
    "cam_curve_interval": 0.01,
    "box_thresholds": [0.1, 0.2, 0.3, 0.4, 0.5],
}
SIZES = [(40, 32), (29, 45), (40, 32), (64, 64), (17, 50)]  # (W, H), as datasets give them


def _batch(seed: int) -> dict:
    """A `predict`-like batch: class maps with a bright blob near each GT box, two taps, and
    grayscale masks as `EvalDataset` gives them: 255 inside the object, 60 on a band beside it
    (foreground for PxAP's > 0.5, background for Peak's > 128), an ignore band."""
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
        mask = np.zeros((height, width), np.uint8)
        mask[y0 : height - y0, x0 : width - x0 // 2] = 255
        mask[y0 : height - y0, max(0, x0 - 3) : x0] = 60
        masks.append(torch.from_numpy(mask))
        ignore = np.roll(mask, 3, axis=1)
        ignores.append(torch.from_numpy(np.where(ignore > 0, 255, 0).astype(np.uint8)))
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
        "index": torch.arange(n) + seed * n,
    }


def _nearest(mask: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0


def _by_hand(batch: dict, pp, name: str, accumulators: dict) -> None:
    """docs/protocols.md's rules written out, one post-processor call per class map."""
    sizes = [(h, w) for w, h in batch["size"]]
    topk_maps = [
        pp(batch["cams_topk"][:, k], batch["taps"], sizes) for k in range(batch["topk"].shape[1])
    ]
    gt_maps = pp(batch["cams_gt"], batch["taps"], sizes)
    size = EVALUATION["map_size"]
    # wsolevaluation: plain maps start from the raw CAM, SCG maps from their original-size output;
    # bicubic to map_size, min-max; boxes truncated; masks > 0.5, nearest; ignore outside them.
    sources = (
        batch["cams_gt"].double().numpy()
        if name == "none"
        else [m.double().numpy() for m in gt_maps]
    )
    scoremaps = torch.from_numpy(np.stack([minmax_normalize(m, (size, size)) for m in sources]))
    accumulators["box"].update(
        scoremaps,
        [rescale_boxes(b, (w, h), (size, size)) for b, (h, w) in zip(batch["boxes"], sizes)],
    )
    foreground = [_nearest(m.numpy() > 0.5, size) for m in batch["mask"]]
    ignore = [_nearest(m.numpy() > 0.5, size) & ~f for m, f in zip(batch["ignore"], foreground)]
    accumulators["pxap"].update(scoremaps, np.stack(foreground), np.stack(ignore))
    # peak: the GT map at the original size against instances > 128.
    accumulators["peak"].update(list(gt_maps), [m.numpy() > 128 for m in batch["mask"]])
    # spa: the top-5 maps and the GT map at the original size, boxes in original pixels.
    accumulators["classic"].update(
        batch["label"],
        batch["topk"],
        [torch.stack([maps[i] for maps in topk_maps]) for i in range(len(sizes))],
        list(gt_maps),
        batch["boxes"],
    )


@pytest.mark.parametrize(
    "name,options", [("none", {}), ("scg", {"fo_th": 0.1, "so_th": 0.5, "so_weight": 2.0})]
)
def test_one_call_per_batch_gives_the_counts_of_the_rules_by_hand(name, options):
    pp = create_postprocessor(name, **options)
    scorer = Scorer(create_protocols(EVALUATION), boxes=True, masks=True)
    interval = EVALUATION["cam_curve_interval"]
    by_hand = {
        "box": BoxAccumulator(interval, EVALUATION["iou_thresholds"]),
        "pxap": PxAPAccumulator(interval),
        "peak": PeakAccumulator(),
        "classic": ClassicLocAccumulator(EVALUATION["box_thresholds"]),
    }
    for seed in (0, 1):
        batch = _batch(seed)
        scorer.update(batch, pp)
        _by_hand(batch, pp, name, by_hand)
    assert scorer.evaluator.metrics.keys() == by_hand.keys()
    for accumulator, metric in by_hand.items():
        got = scorer.evaluator.metrics[accumulator].metric_state
        for key, value in metric.metric_state.items():
            assert torch.equal(got[key], value), (accumulator, key)
    # Not vacuous: boxes, masks (both thresholds) and classification were all counted.
    results = scorer.evaluator.results({"spa": {"box_threshold": 0.2}})
    assert results["wsolevaluation"]["MaxBoxAccV2"] > 0
    assert 0 < results["wsolevaluation"]["PxAP"] < 100
    assert 0 < results["peak"]["PeakIoU"] < 100
    peak_fg = int(scorer.evaluator.metrics["peak"].foreground.sum())
    assert peak_fg == sum(int((m > 128).sum()) for s in (0, 1) for m in _batch(s)["mask"])
    rows = scorer.rows({"postprocessor": name}, {"spa": {"box_threshold": 0.2}})
    by_metric = {(r["protocol"], r["metric"]): r["value"] for r in rows}
    assert by_metric[("spa", "box_threshold")] == 0.2
    assert by_metric[("wsolevaluation", "PxAP")] == results["wsolevaluation"]["PxAP"]
    assert set(by_metric) == {
        (protocol, spec.name)
        for protocol, p in create_protocols(EVALUATION).items()
        for spec in p.specs()
    }


def test_the_mask_rules_differ_by_protocol():
    """One grayscale mask, two ground truths: PxAP counts pixels > 0.5, Peak pixels > 128."""
    batch = _batch(0)
    scorer = Scorer(create_protocols(EVALUATION, names=("peak",)), boxes=False, masks=True)
    scorer.update(batch, create_postprocessor("none"))
    peak = scorer.evaluator.metrics["peak"]
    assert int(peak.foreground.sum()) == sum(int((m > 128).sum()) for m in batch["mask"])
    protocol = WsolEvaluation(map_size=64)
    mask = batch["mask"][3].numpy()  # 64 x 64: no resize
    foreground, ignore = protocol.gt_masks(mask, batch["ignore"][3].numpy(), (64, 64))
    assert foreground.sum() == (mask > 0).sum() > (mask > 128).sum()
    assert not (ignore & foreground).any() and ignore.any()


def test_wsolevaluation_scoremaps_start_where_the_postprocessor_says():
    batch = _batch(0)
    size = (EVALUATION["map_size"],) * 2
    protocol = WsolEvaluation(map_size=size[0])
    identity = create_postprocessor("none")
    sizes = [(h, w) for w, h in SIZES]
    raw = [minmax_normalize(m, size) for m in batch["cams_gt"].double().numpy()]
    source = identity.scoremap_source(batch["cams_gt"], identity(batch["cams_gt"], None, sizes))
    assert np.array_equal(protocol.scoremaps(source).numpy(), np.stack(raw))
    scg = create_postprocessor("scg")
    originals = scg(batch["cams_gt"], batch["taps"], sizes)
    expected = [minmax_normalize(m.double().numpy(), size) for m in originals]
    source = scg.scoremap_source(batch["cams_gt"], originals)
    assert np.array_equal(protocol.scoremaps(source).numpy(), np.stack(expected))
    assert not np.array_equal(np.stack(expected), np.stack(raw))  # the two sources differ
    # `wsolbench infer`'s shortcut (no original-size maps for identity) starts from the same maps.
    for pp, want in ((identity, raw), (scg, expected)):
        shortcut = pp.source_maps(batch["cams_gt"], batch["taps"], sizes)
        assert np.array_equal(protocol.scoremaps(shortcut).numpy(), np.stack(want))


def test_per_image_records_come_back_in_dataset_order():
    pp = create_postprocessor("none")
    scorer = Scorer(create_protocols(EVALUATION), boxes=True, masks=True)
    scorer.keep_per_image(lambda index: index % 2 == 0)
    second, first = _batch(1), _batch(0)
    scorer.update(second, pp)  # dataset indices 5..9 first
    scorer.update(first, pp)
    arrays = scorer.per_image_arrays()
    assert arrays["index"].tolist() == list(range(10))
    assert arrays["thumb_index"].tolist() == [0, 2, 4, 6, 8]
    assert arrays["thumbs"].shape == (5, 32, 32) and arrays["thumbs"].dtype == np.uint8
    alone = Scorer(create_protocols(EVALUATION), boxes=True, masks=True).keep_per_image()
    alone.update(first, pp)
    expected = alone.per_image_arrays()
    for key in ("classic.outcome", "box.correct_v2", "pxap.foreground", "peak.background"):
        assert np.array_equal(arrays[key][:5], expected[key]), key
