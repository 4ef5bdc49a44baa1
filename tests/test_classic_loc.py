"""Classic localization (spa protocol): union boxes, Top-1/Top-5/GT-known Loc, error types."""

import numpy as np
import pytest
import torch

from wsolbench.evaluation import ClassicLocAccumulator, localization_error_type, union_boxes


def test_union_box_covers_all_components_and_empty_is_zero():
    maps = torch.zeros(2, 6, 8)
    maps[0, 1, 1] = 0.5
    maps[0, 4, 6] = 0.2  # >= 0.2 is inside (not strict)
    assert union_boxes(maps, 0.2).tolist() == [[1, 1, 6, 4], [0, 0, 0, 0]]
    assert union_boxes(maps, 0.3).tolist()[0] == [1, 1, 1, 1]


GT = [[10, 10, 29, 29]]  # 20 x 20 = 400 pixels


@pytest.mark.parametrize(
    "pred_label, box, gt, expected",
    [
        (3, [10, 10, 29, 29], GT, "cls"),  # wrong class first, even with a perfect box
        (1, [10, 10, 29, 29], GT, "correct"),
        (1, [10, 10, 29, 17], GT, "part"),  # IoU 160/400 = 0.4, IoP 1
        (1, [0, 0, 39, 39], GT, "more"),  # IoU 400/1600, IoG 1
        (1, [25, 25, 49, 49], GT, "ot"),
        # Two GT boxes both covered with IoG > 0.3 by a box that matches neither: M-Ins.
        (1, [0, 0, 39, 19], [[0, 0, 9, 19], [30, 0, 39, 19]], "m-ins"),
        # M-Ins needs MORE than one GT box with IoG > 0.3: only one here -> part.
        (1, [0, 0, 3, 19], [[0, 0, 9, 19], [30, 0, 39, 19]], "part"),
        # M-Ins is checked before part/more.
        (1, [0, 0, 39, 19], [[0, 0, 9, 19], [30, 0, 39, 19], [0, 0, 100, 100]], "m-ins"),
    ],
)
def test_error_types(pred_label, box, gt, expected):
    assert localization_error_type(pred_label, box, 1, gt) == expected


def test_iou_must_be_strictly_above_half():
    # Predicted 1x2 box against 1x4 GT: IoU exactly 0.5 is not correct.
    assert localization_error_type(0, [0, 0, 1, 0], 0, [[0, 0, 3, 0]]) != "correct"


def test_accumulator_counts_add_up_to_top1_error():
    h, w = 40, 40
    gt_boxes = [np.array(GT), np.array(GT), np.array(GT)]
    good = torch.zeros(h, w)
    good[10:30, 10:30] = 1
    bad = torch.zeros(h, w)
    bad[0:3, 0:3] = 1
    loc_maps = [
        torch.stack([good] * 5),
        torch.stack([bad, good, bad, bad, bad]),
        torch.stack([good] * 5),
    ]
    acc = ClassicLocAccumulator([0.2, 0.5])
    acc.update(
        labels=[1, 1, 1],
        top5=[[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [2, 1, 3, 4, 5]],
        loc_maps=loc_maps,
        gt_loc_maps=[good, good, good],
        gt_boxes_original=gt_boxes,
    )
    r = acc.compute()
    assert r["Top1Loc"] == pytest.approx(100 / 3)
    assert r["Top5Loc"] == pytest.approx(200 / 3)  # image 3: class 1 is 2nd with a good box
    assert r["GTKnownLoc"] == pytest.approx(100.0)
    assert r["Top1Cls"] == pytest.approx(200 / 3) and r["Top5Cls"] == pytest.approx(100.0)
    errors = sum(r[f"error_{k}"] for k in ("cls", "m-ins", "part", "more", "ot"))
    assert errors == pytest.approx(100 - r["Top1Loc"])
    assert r["error_cls"] == pytest.approx(100 / 3) and r["error_ot"] == pytest.approx(100 / 3)


def test_union_boxes_at_many_thresholds_equals_one_at_a_time():
    import torch

    from wsolbench.evaluation.classic_loc import union_boxes_at

    maps = torch.rand(4, 9, 13, generator=torch.Generator().manual_seed(0)) ** 3
    thresholds = [0.0, 0.05, 0.2, 0.5, 0.9, 0.999]
    together = union_boxes_at(maps, thresholds)
    for t, threshold in enumerate(thresholds):
        assert torch.equal(together[t], union_boxes(maps, threshold))
