"""The unified evaluator: merged halves == whole, batch-size independence, state round trip."""

import numpy as np
import pytest
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation import Evaluator, evaluate_scoremaps


def _data(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    maps = rng.random((n, size, size))
    maps = np.stack([m * (np.arange(size)[None, :] < rng.integers(4, size)) for m in maps])
    maps /= maps.max(axis=(1, 2), keepdims=True)
    boxes = [
        np.array([[1, 2, int(rng.integers(3, size)), int(rng.integers(4, size))]]) for _ in range(n)
    ]
    masks = maps > 0.5
    masks[:, :2] = True
    ignore = np.zeros_like(masks)
    ignore[:, -1] = True
    loc_maps = [torch.from_numpy(np.stack([m] * 5)) for m in maps]
    batch = {
        "scoremaps": maps,
        "gt_boxes": boxes,
        "gt_masks": masks,
        "gt_ignore": ignore,
        "peak_maps": list(maps),
        "peak_masks": list(masks),
        "labels": np.arange(n) % 3,
        "top5": np.stack([(np.arange(5) + i) % 3 for i in range(n)]),
        "loc_maps": loc_maps,
        "gt_loc_maps": [torch.from_numpy(m) for m in maps],
        "gt_boxes_original": boxes,
    }
    return batch


def _slice(batch, idx):
    out = {}
    for key, value in batch.items():
        out[key] = value[idx] if isinstance(value, np.ndarray) else [value[i] for i in idx]
    return out


def _full():
    return Evaluator(
        **{
            name: acc
            for name, acc in [
                ("box", Evaluator.preset("wsolevaluation", 0.05, masks=True).accumulators["box"]),
                ("pxap", Evaluator.preset("wsolevaluation", 0.05, masks=True).accumulators["pxap"]),
                ("peak", Evaluator.preset("peak").accumulators["peak"]),
                (
                    "classic",
                    Evaluator.preset("spa", box_thresholds=(0.2, 0.5)).accumulators["classic"],
                ),
            ]
        }
    )


def test_merged_halves_equal_the_whole_and_batch_size_does_not_matter():
    batch = _data()
    whole = _full()
    whole.accumulate(batch)
    expected = whole.compute()
    assert {"MaxBoxAcc", "MaxBoxAccV2", "PxAP", "PeakIoU", "Top1Loc"} <= set(expected)

    first, second = _full(), _full()
    first.accumulate(_slice(batch, np.arange(0, 5)))
    second.accumulate(_slice(batch, np.arange(5, 12)))
    assert first.merge(second).compute() == expected

    shuffled = _full()
    order = np.random.default_rng(3).permutation(12)
    for chunk in np.array_split(order, 4):  # batches of 3 in another order
        shuffled.accumulate(_slice(batch, chunk))
    assert shuffled.compute() == expected


def test_state_dict_round_trip_is_plain_tensors():
    batch = _data()
    evaluator = _full()
    evaluator.accumulate(batch)
    state = evaluator.state_dict()
    assert all(isinstance(t, torch.Tensor) for s in state.values() for t in s.values())
    restored = Evaluator.from_state_dict(state)
    assert restored.compute()["MaxBoxAccV2"] == evaluator.compute()["MaxBoxAccV2"]
    # Summing two ranks' states (an all-reduce) equals merging them.
    doubled = {
        name: {
            k: (v * 2 if k not in ("thresholds", "deltas", "iou_thresholds", "edges") else v)
            for k, v in s.items()
        }
        for name, s in state.items()
    }
    merged = Evaluator.from_state_dict(state).merge(Evaluator.from_state_dict(state))
    assert Evaluator.from_state_dict(doubled).compute() == merged.compute()


def test_presets_and_errors():
    assert set(Evaluator.preset("wsolevaluation").accumulators) == {"box"}
    assert set(Evaluator.preset("spa").accumulators) == {"classic"}
    with pytest.raises(WsolbenchError):
        Evaluator.preset("nope")
    with pytest.raises(WsolbenchError):
        Evaluator.preset("spa").merge(Evaluator.preset("peak"))


def test_python_api_with_masks():
    batch = _data()
    result = evaluate_scoremaps(
        batch["scoremaps"],
        batch["gt_boxes"],
        batch["gt_masks"],
        batch["gt_ignore"],
        cam_curve_interval=0.05,
    )
    for key in ("MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2_per_iou", "PxAP", "PeakIoU", "PeakT"):
        assert key in result
    assert 0 <= result["PxAP"] <= 100 and 0 <= result["PeakT"] <= 255
