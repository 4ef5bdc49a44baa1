"""Time and size of the per-image statistics and bootstrap intervals at ILSVRC scale.

Simulates the per-image records of plain and + SCG maps of one model on a test split (box bits
for every CAM threshold, V1 and V2, four IoU thresholds; spa outcomes at 12 box thresholds),
writes them with ``per_image.save`` and times ``Bootstrap`` (every metric's interval and the
paired differences), as ``wsolbench bench`` does for each trained model.

    .venv/bin/python benchmarks/bench_bootstrap.py --images 50000 --interval 0.001
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from wsolbench.report import per_image
from wsolbench.report.bootstrap import RESAMPLES, Bootstrap, statistics


def simulated_record(rng, images: int, interval: float, postprocessor: str) -> per_image.Record:
    thresholds = np.arange(0, 1, interval)
    deltas = [30, 50, 70]
    # Each image is correct on a window of quantization levels around its own best one, and a
    # threshold keeps level int(t * 255) as in the evaluator (normalized maps).
    levels = np.arange(256)
    centre = rng.uniform(25, 150, (images, 1, 1))
    width = rng.uniform(0, 75, (images, len(deltas), 1)) * (
        rng.random((images, len(deltas), 1)) < 0.7
    )
    correct = (np.abs(levels[None, None, :] - centre) < width)[:, :, (thresholds * 255).astype(int)]
    bits = np.packbits(correct, axis=-1)
    outcome = rng.integers(0, 6, (images, 12)).astype(np.uint8)
    arrays = {
        "index": np.arange(images),
        "box.correct_v1": bits,
        "box.correct_v2": bits,
        "classic.outcome": outcome,
        "classic.top5_loc": outcome == 0,
        "classic.gt_known_loc": outcome == 0,
        "classic.top1_box": rng.integers(0, 500, (images, 12, 4)).astype(np.int32),
        "classic.top1_cls": rng.random(images) < 0.7,
        "classic.top5_cls": rng.random(images) < 0.9,
        "classic.top1_class": rng.integers(0, 1000, images).astype(np.int32),
    }
    meta = {
        "box_threshold": 0.2,
        "box_thresholds": np.linspace(0.05, 0.6, 12).round(2).tolist(),
        "cam_thresholds": thresholds.tolist(),
        "deltas": deltas,
        "iou_thresholds": deltas,
    }
    return per_image.Record(
        {
            "dataset": "ILSVRC",
            "split": "test",
            "backbone": "vgg16",
            "method": "cam",
            "postprocessor": postprocessor,
            "seed": 0,
        },
        arrays,
        meta,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--interval", type=float, default=0.001)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    records = [simulated_record(rng, args.images, args.interval, pp) for pp in ("none", "scg")]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = per_image.save(Path(folder) / per_image.FILE_NAME, records, [])
        saved = time.perf_counter() - started
        size = path.stat().st_size
    in_memory = sum(a.nbytes for r in records for a in r.arrays.values())
    started = time.perf_counter()
    boot = Bootstrap(records)
    built = time.perf_counter() - started
    key = {"dataset": "ILSVRC", "split": "test", "backbone": "vgg16", "method": "cam"}
    gain = boot.difference(
        dict(key, postprocessor="scg"), dict(key, postprocessor="none"), "MaxBoxAccV2"
    )
    print(f"{args.images} images, interval {args.interval}, 2 settings, {RESAMPLES} resamples")
    print(
        f"per-image records: {in_memory / 2 / 1e6:.1f} MB per setting in memory, "
        f"{size / 2 / 1e6:.1f} MB per setting in per_image.npz (written in {saved:.1f} s)"
    )
    print(
        f"bootstrap of every metric ({len(statistics(records[0]))} per setting) and pairing: "
        f"{built:.1f} s; "
        f"MaxBoxAccV2 difference {gain.value:+.2f} [{gain.low:+.2f}, {gain.high:+.2f}]"
    )


if __name__ == "__main__":
    main()
