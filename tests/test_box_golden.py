"""MaxBoxAcc / MaxBoxAccV2 counts against wsolevaluation's own BoxEvaluator.

Golden values: `clovaai/wsolevaluation` at commit 96f4b88, `evaluation.BoxEvaluator` run outside
this repository (numpy 2 with the `np.float`/`np.int` aliases restored, OpenCV 5.0) with
`cam_threshold_list = np.arange(0, 1, 0.001)`, `iou_threshold_list = [30, 50, 70]`,
`multi_contour_eval` False (V1) and True (V2), on 24 seeded 224 x 224 maps (smooth blobs, noise,
quantized rings with plateaus and holes, sparse border blobs) stored as their uint8 levels `u`
(the maps scored were `u / 255` in float64) and 1-3 GT boxes per image in original coordinates
(image sizes 100..600). The file keeps the maps, boxes and upstream's `num_correct` per
threshold; only values are committed, no upstream code.
"""

from pathlib import Path

import numpy as np
import pytest

from wsolbench.evaluation import BoxAccumulator, rescale_boxes

GOLDEN = Path(__file__).parent / "data" / "wsolevaluation_box_golden.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("batch", [1, 5, 24])
def test_correct_counts_equal_upstream_box_evaluator(golden, batch):
    maps = golden["levels"].astype(np.float64) / 255.0
    offsets, boxes = golden["box_offsets"], golden["boxes"]
    gt = [
        rescale_boxes(boxes[offsets[i] : offsets[i + 1]], tuple(golden["sizes"][i]), (224, 224))
        for i in range(len(maps))
    ]
    accumulator = BoxAccumulator(cam_curve_interval=0.001, iou_thresholds=(30, 50, 70))
    for start in range(0, len(maps), batch):
        accumulator.update(maps[start : start + batch], gt[start : start + batch])
    result = accumulator.compute()
    for row, delta in enumerate(("30", "50", "70")):
        assert result["box_correct_counts_v1"][delta] == golden["counts_v1"][row].tolist()
        assert result["box_correct_counts_v2"][delta] == golden["counts_v2"][row].tolist()
    assert golden["counts_v2"].max() > 0 and golden["counts_v1"].max() > 0  # the cases do hit
