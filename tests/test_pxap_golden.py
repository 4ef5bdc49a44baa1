"""PxAP of `wsolbench evaluate` against wsolevaluation's own MaskEvaluator.

Golden value: `clovaai/wsolevaluation` at commit 96f4b88, `evaluation.MaskEvaluator` run outside
this repository (numpy 2 with the `np.float` alias restored, OpenCV 5.0) on exactly the split
that `make_split` below writes (seed 7: 20 images of 80..300 px, 1-2 disk instance masks each,
an ignore box on the first line of each image, smooth 224 x 224 score maps saved as
`<root>/<image_id>.npy`), with `cam_threshold_list = np.arange(0, 1, 0.001)`. Upstream printed
PxAP = 23.0437386024688; only that value is committed, no upstream code.
"""

import json

import cv2
import numpy as np
import pytest

from wsolbench.cli import main

UPSTREAM_PXAP = 23.0437386024688


def make_split(root):
    rng = np.random.default_rng(7)
    meta, masks, maps = root / "meta", root / "masks", root / "maps"
    meta.mkdir()
    ids, lines = [], []
    for i in range(20):
        folder = f"val/c{i % 3}"
        image_id = f"{folder}/{i}.jpg"
        h, w = int(rng.integers(80, 300)), int(rng.integers(80, 300))
        (masks / folder).mkdir(parents=True, exist_ok=True)
        (maps / folder).mkdir(parents=True, exist_ok=True)
        for j in range(int(rng.integers(1, 3))):
            yy, xx = np.mgrid[:h, :w]
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 80)
            cv2.imwrite(
                str(masks / f"{folder}/{i}_m{j}.png"),
                ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.uint8) * 255,
            )
            ignore = ""
            if j == 0:
                box = np.zeros((h, w), np.uint8)
                x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
                box[y0 : y0 + h // 3, x0 : x0 + w // 3] = 255
                ignore = f"{folder}/{i}_ignore.png"
                cv2.imwrite(str(masks / ignore), box)
            lines.append(f"{image_id},{folder}/{i}_m{j}.png,{ignore}")
        score = cv2.GaussianBlur(rng.random((224, 224)), (0, 0), 6)
        np.save(maps / f"{image_id}.npy", (score - score.min()) / (score.max() - score.min()))
        ids.append(image_id)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},{n % 3}\n" for n, i in enumerate(ids)))
    (meta / "image_sizes.txt").write_text("")
    (meta / "localization.txt").write_text("".join(line + "\n" for line in lines))
    return meta, maps, masks


def test_pxap_equals_upstream_mask_evaluator(tmp_path):
    meta, maps, masks = make_split(tmp_path)
    out = tmp_path / "results.json"
    code = main(
        [
            "evaluate",
            "--metadata-root",
            str(meta),
            "--scoremap-root",
            str(maps),
            "--mask-root",
            str(masks),
            "--cam-curve-interval",
            "0.001",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    assert json.loads(out.read_text())["PxAP"] == pytest.approx(UPSTREAM_PXAP, rel=1e-12, abs=1e-12)
