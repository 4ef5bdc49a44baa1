"""The unified evaluator: merged halves == whole, batch-size independence, state round trip,
the protocols as the one place of every rule and name, the metric classes for Lightning."""

import numpy as np
import pytest
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation import (
    BoxAccumulator,
    Evaluator,
    GroundTruth,
    GTKnownLoc,
    MapBatch,
    MaxBoxAcc,
    MaxBoxAccV2,
    PeakAccumulator,
    PeakIoU,
    PxAP,
    PxAPAccumulator,
    Top1Loc,
    create_protocols,
    evaluate_scoremaps,
)
from wsolbench.registry import list_protocols

SETTINGS = {"cam_curve_interval": 0.05, "box_thresholds": (0.2, 0.5), "map_size": 16}


def _data(n=12, size=16, seed=0):
    """Maps in [0, 1] at map size with boxes and grayscale masks at the same size (so the
    wsolevaluation GT rules keep them), labels and top-5 predictions."""
    rng = np.random.default_rng(seed)
    maps = rng.random((n, size, size))
    maps = np.stack([m * (np.arange(size)[None, :] < rng.integers(4, size)) for m in maps])
    maps /= maps.max(axis=(1, 2), keepdims=True)
    boxes = [
        np.array([[1, 2, int(rng.integers(3, size)), int(rng.integers(4, size))]]) for _ in range(n)
    ]
    masks = np.where(maps > 0.5, 255, 0).astype(np.uint8)
    masks[:, :2] = 90  # foreground for PxAP (> 0.5), background for Peak (> 128)
    ignore = np.zeros_like(masks)
    ignore[:, -1] = 255
    return {
        "maps": [torch.from_numpy(np.stack([m] * 6)) for m in maps],
        "sources": list(maps),
        "boxes": boxes,
        "masks": list(masks),
        "ignore": list(ignore),
        "labels": np.arange(n) % 3,
        "topk": np.stack([(np.arange(5) + i) % 3 for i in range(n)]),
    }


def _batch(data, idx) -> MapBatch:
    pick = lambda key: [data[key][i] for i in idx]  # noqa: E731
    return MapBatch(
        gt=GroundTruth(
            sizes=[(16, 16)] * len(idx),
            boxes=pick("boxes"),
            masks=pick("masks"),
            ignore=pick("ignore"),
        ),
        maps=pick("maps"),
        sources=pick("sources"),
        labels=data["labels"][idx],
        topk=data["topk"][idx],
    )


def _full() -> Evaluator:
    return Evaluator(create_protocols(SETTINGS).values(), boxes=True, masks=True)


def test_merged_halves_equal_the_whole_and_batch_size_does_not_matter():
    data = _data()
    whole = _full()
    whole.update(_batch(data, np.arange(12)))
    expected = whole.summary()
    assert {"MaxBoxAcc", "MaxBoxAccV2", "PxAP", "PeakIoU", "Top1Loc"} <= set(expected)
    assert 0 < expected["PxAP"] < 100 and 0 < expected["MaxBoxAccV2"] <= 100

    first, second = _full(), _full()
    first.update(_batch(data, np.arange(0, 5)))
    second.update(_batch(data, np.arange(5, 12)))
    assert first.merge(second).summary() == expected

    shuffled = _full()
    order = np.random.default_rng(3).permutation(12)
    for chunk in np.array_split(order, 4):  # batches of 3 in another order
        shuffled.update(_batch(data, chunk))
    assert shuffled.summary() == expected


def test_state_dict_round_trip_and_summed_states_equal_merging():
    evaluator = _full()
    evaluator.update(_batch(_data(), np.arange(12)))
    state = evaluator.state_dict()
    assert state.keys() == {"box", "pxap", "peak", "classic"}
    assert all(t.dtype == torch.int64 for s in state.values() for t in s.values())
    restored = _full().load_state_dict(state)
    assert restored.summary() == evaluator.summary()
    # Summing two ranks' states (what DDP's sum reduction does) equals merging them.
    doubled = {name: {k: 2 * v for k, v in s.items()} for name, s in state.items()}
    merged = _full().load_state_dict(state).merge(_full().load_state_dict(state))
    assert _full().load_state_dict(doubled).summary() == merged.summary()
    assert merged.summary()["box_num_images"] == 24


def test_merging_refuses_what_does_not_match():
    with pytest.raises(WsolbenchError, match="different metrics"):
        _full().merge(Evaluator(create_protocols(SETTINGS, names=("spa",)).values()))
    with pytest.raises(WsolbenchError, match="thresholds"):
        BoxAccumulator(0.1).merge(BoxAccumulator(0.05))
    with pytest.raises(WsolbenchError, match="unknown accumulators"):
        _full().load_state_dict({"nope": {}})


def test_protocols_are_registered_and_own_their_accumulators():
    assert list_protocols() == ["bas", "dawsol", "peak", "scm", "spa", "tscam", "wsolevaluation"]
    protocols = create_protocols(SETTINGS)
    assert list(protocols) == ["spa", "wsolevaluation", "peak"]  # the results' row order
    assert {n: set(p.create_metrics(boxes=True, masks=False)) for n, p in protocols.items()} == {
        "spa": {"classic"},
        "wsolevaluation": {"box"},
        "peak": set(),
    }
    assert set(protocols["wsolevaluation"].create_metrics(False, True)) == {"pxap"}
    assert set(protocols["peak"].create_metrics(False, True)) == {"peak"}
    assert protocols["spa"].box_thresholds == (0.2, 0.5)
    assert protocols["wsolevaluation"].map_size == 16
    # the spa protocol chooses the box threshold with the best GT-known Loc on the split given
    evaluator = _full()
    evaluator.update(_batch(_data(), np.arange(12)))
    per = evaluator.compute()["classic"]["classic_per_threshold"]
    best = max(per, key=lambda t: (per[t]["GTKnownLoc"], -float(t)))
    assert evaluator.choose()["spa"] == {"box_threshold": float(best)}
    at_half = evaluator.results({"spa": {"box_threshold": 0.5}})["spa"]
    assert at_half["GTKnownLoc"] == per["0.5"]["GTKnownLoc"] and at_half["box_threshold"] == 0.5
    # beside the val-chosen threshold, the split's own choice (the published SPA rule), labelled
    assert at_half["box_threshold_on_test"] == float(best)
    assert at_half["Top1Loc_on_test"] == per[best]["Top1Loc"]
    assert at_half["GTKnownLoc_on_test"] == per[best]["GTKnownLoc"]
    own = evaluator.results()["spa"]  # no choice from elsewhere: the split's own, plain names
    assert own["box_threshold"] == float(best) and not any(k.endswith("_on_test") for k in own)


def test_python_api_with_masks_equals_the_accumulators():
    data = _data()
    maps = np.stack(data["sources"])
    binary, ignore = np.stack(data["masks"]) > 0, np.stack(data["ignore"]) > 0
    result = evaluate_scoremaps(maps, data["boxes"], binary, ignore, cam_curve_interval=0.05)
    box = BoxAccumulator(0.05)
    box.update(maps, data["boxes"])
    pxap = PxAPAccumulator(0.05)
    pxap.update(maps, binary, ignore & ~binary)
    peak = PeakAccumulator()
    peak.update(list(maps), list(binary))
    assert result["MaxBoxAccV2"] == box.compute()["MaxBoxAccV2"]
    assert result["PxAP"] == pxap.compute()["PxAP"]
    assert (result["PeakIoU"], result["PeakT"]) == (
        peak.compute()["PeakIoU"],
        peak.compute()["PeakT"],
    )
    with pytest.raises(WsolbenchError, match="gt_boxes and/or gt_masks"):
        evaluate_scoremaps(maps)


def test_metric_classes_give_the_accumulators_numbers_as_scalar_tensors():
    data = _data()
    maps = torch.from_numpy(np.stack(data["sources"]))
    binary = torch.from_numpy(np.stack(data["masks"]) > 0)
    reference = evaluate_scoremaps(maps, data["boxes"], binary, cam_curve_interval=0.05)
    for cls, key in ((MaxBoxAcc, "MaxBoxAcc"), (MaxBoxAccV2, "MaxBoxAccV2")):
        metric = cls(0.05)
        metric.update(maps[:5], data["boxes"][:5])
        metric.update(maps[5:], data["boxes"][5:])
        value = metric.compute()
        assert value.dtype == torch.float64 and value.dim() == 0
        assert float(value) == reference[key]
    pxap, peak = PxAP(0.05), PeakIoU()
    pxap.update(maps, binary)
    peak.update(list(maps), list(binary))
    assert float(pxap.compute()) == reference["PxAP"]
    assert float(peak.compute()) == reference["PeakIoU"]
    # reset() starts over (Lightning resets metrics after each epoch's log)
    pxap.reset()
    assert int(pxap.foreground.sum()) == 0


def test_spa_metric_classes():
    data = _data()
    labels = torch.as_tensor(data["labels"])
    topk = torch.as_tensor(data["topk"])
    args = (
        labels,
        topk,
        [m[1:] for m in data["maps"]],
        [m[0] for m in data["maps"]],
        data["boxes"],
    )
    evaluator = _full()
    evaluator.update(_batch(data, np.arange(12)))
    at = evaluator.compute()["classic"]["classic_per_threshold"]["0.2"]
    gt_known, top1 = GTKnownLoc((0.2,)), Top1Loc((0.2,))
    gt_known.update(*args)
    top1.update(*args)
    assert float(gt_known.compute()) == at["GTKnownLoc"]
    assert float(top1.compute()) == at["Top1Loc"]
