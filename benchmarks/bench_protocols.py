"""Speed of every protocol on the same raw maps, as ratios to the wsolevaluation protocol (the
baseline, measured in the same run).

Raw CAM-like maps at 14 x 14 (a DeiT / ResNet feature grid) for images of 500 x 375 with one GT
box, every protocol preparing them by its own rules (``Evaluator.update`` on ``MapBatch``
sources, as ``wsolbench evaluate --protocol`` and the bench do). Usage:
``python benchmarks/bench_protocols.py [--images N]``; say the machine's load (``uptime``)
with any number read from it.
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from wsolbench.evaluation import Evaluator, GroundTruth, MapBatch, create_protocols

PROTOCOLS = ("wsolevaluation", "tscam", "scm", "bas", "dawsol")


def raw_maps(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        peaks = np.zeros((56, 56), np.float32)
        for _ in range(rng.integers(1, 4)):
            peaks[rng.integers(0, 56), rng.integers(0, 56)] = rng.uniform(0.5, 1.0)
        blurred = cv2.GaussianBlur(peaks, (0, 0), rng.uniform(5, 10))
        out.append(cv2.resize(blurred, (14, 14), interpolation=cv2.INTER_AREA) * 10 - 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    maps = raw_maps(args.images)
    rng = np.random.default_rng(1)
    boxes = []
    for _ in maps:
        x0, y0 = int(rng.integers(0, 300)), int(rng.integers(0, 200))
        boxes.append(np.array([[x0, y0, x0 + int(rng.integers(50, 199)), y0 + 170]]))
    labels = np.zeros(len(maps), np.int64)
    topk = np.tile(np.arange(5), (len(maps), 1))
    batch = MapBatch(
        gt=GroundTruth(sizes=[(500, 375)] * len(maps), boxes=boxes),
        sources=maps,
        labels=labels,
        topk=topk,
    )
    seconds = {}
    for name in PROTOCOLS:
        protocols = create_protocols(names=[name])
        Evaluator(protocols.values()).update(  # warm up (numba compilation, caches)
            MapBatch(gt=GroundTruth(sizes=[(500, 375)] * 2, boxes=boxes[:2]), sources=maps[:2],
                     labels=labels[:2], topk=topk[:2])
        )  # fmt: skip
        evaluator = Evaluator(protocols.values())
        started = time.perf_counter()
        evaluator.update(batch)
        evaluator.compute()
        seconds[name] = time.perf_counter() - started
    table = Table(title=f"{len(maps)} raw 14 x 14 maps, {os.cpu_count()} CPU cores")
    for column in ("protocol", "ms / image", "x wsolevaluation"):
        table.add_column(column, justify="right")
    base = seconds["wsolevaluation"]
    for name, value in seconds.items():
        table.add_row(name, f"{1000 * value / len(maps):.2f}", f"{value / base:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
