"""Speed of the evaluator against a straightforward OpenCV implementation of the same protocol.

Realistic 224 x 224 CAM-like maps (a few blurred blobs plus some noise). The baseline is the
per-image, per-threshold ``cv2.findContours`` oracle of ``tests/box_reference.py``; the script
checks that both give identical integer counts on the baseline's subset, then prints images/s
and the ratios. Usage: ``python benchmarks/bench_evaluation.py [--images N] [--baseline-images M]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from box_reference import reference_correct_counts  # noqa: E402

from wsolbench.evaluation import BoxAccumulator, PeakAccumulator, PxAPAccumulator  # noqa: E402


def cam_like_maps(count: int, size: int = 224, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = np.empty((count, size, size), np.float32)
    for i in range(count):
        peaks = np.zeros((size, size), np.float32)
        for _ in range(rng.integers(1, 4)):
            peaks[rng.integers(0, size), rng.integers(0, size)] = rng.uniform(0.5, 1.0)
        s = cv2.GaussianBlur(peaks, (0, 0), rng.uniform(10, 30))
        s = s / s.max() + 0.05 * cv2.GaussianBlur(
            rng.random((size, size)).astype(np.float32), (0, 0), 1.5
        )
        s -= s.min()
        maps[i] = s / s.max()
    return maps


def gt_boxes(count: int, size: int = 224, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        x0, y0 = rng.integers(0, size // 2, 2)
        boxes.append(np.array([[x0, y0, rng.integers(x0 + 20, size), rng.integers(y0 + 20, size)]]))
    return boxes


CPU_SECONDS: dict[float, float] = {}


def time_fast(maps, boxes, interval: float, batch: int = 256) -> tuple[float, BoxAccumulator]:
    """Wall seconds of the fast box evaluator over all maps (after a JIT warm-up); the process
    CPU seconds (all threads) go to ``CPU_SECONDS``, less sensitive to other jobs' load."""
    acc = BoxAccumulator(interval)
    acc.update(maps[:2], boxes[:2])  # JIT warm-up (cached on disk after the first run)
    acc = BoxAccumulator(interval)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(0, len(maps), batch):
        acc.update(torch.from_numpy(maps[i : i + batch]), boxes[i : i + batch])
    CPU_SECONDS[interval] = time.process_time() - cpu_start
    return time.perf_counter() - start, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000, help="maps for the fast evaluator")
    parser.add_argument(
        "--baseline-images", type=int, default=20, help="maps for the OpenCV baseline"
    )
    args = parser.parse_args()
    maps, boxes = cam_like_maps(args.images), gt_boxes(args.images)
    console = Console()
    table = Table(title=f"evaluation speed, 224x224 maps, torch threads {torch.get_num_threads()}")
    for column in (
        "metric",
        "interval",
        "baseline img/s",
        "wsolbench img/s",
        "ratio",
        "counts equal",
    ):
        table.add_column(column, justify="right")
    for interval in (0.001, 0.01):
        thresholds = np.arange(0, 1, interval)
        elapsed, acc = time_fast(maps, boxes, interval)
        fast_rate = len(maps) / elapsed
        cpu_ms = 1000 * CPU_SECONDS[interval] / len(maps)
        sub = args.baseline_images
        _, small = time_fast(maps[:sub], boxes[:sub], interval)
        base_seconds = 0.0
        for name, all_contours, counts in (
            ("MaxBoxAcc (V1)", False, small.correct_v1),
            ("MaxBoxAccV2", True, small.correct_v2),
        ):
            start = time.perf_counter()
            ref = reference_correct_counts(
                maps[:sub], boxes[:sub], thresholds, list(small.deltas), all_contours=all_contours
            )
            seconds = time.perf_counter() - start
            base_seconds += seconds
            table.add_row(
                name,
                str(interval),
                f"{sub / seconds:.1f}",
                f"{fast_rate:.0f} (V1+V2)",
                f"{fast_rate * seconds / sub:.0f}x",
                str(np.array_equal(ref, counts)),
            )
        table.add_row(
            "V1 + V2",
            str(interval),
            f"{sub / base_seconds:.1f}",
            f"{fast_rate:.0f}",
            f"{fast_rate * base_seconds / sub:.0f}x",
            "",
        )
        if interval == 0.001:
            console.print(
                f"50,000 maps at interval 0.001 (V1 and V2 together): "
                f"{50000 / fast_rate:.0f} s projected from the wall time; CPU time "
                f"{cpu_ms:.2f} ms per map, {50000 * cpu_ms / 1000 / 2:.0f} s on two "
                "free cores"
            )
    masks = maps > 0.5
    pxap, peak = PxAPAccumulator(0.001), PeakAccumulator()
    start = time.perf_counter()
    for i in range(0, len(maps), 256):
        pxap.update(torch.from_numpy(maps[i : i + 256]), torch.from_numpy(masks[i : i + 256]))
    pxap_rate = len(maps) / (time.perf_counter() - start)
    start = time.perf_counter()
    peak.update(list(maps), list(masks))
    peak_rate = len(maps) / (time.perf_counter() - start)
    table.add_row("PxAP", "0.001", "-", f"{pxap_rate:.0f}", "-", "-")
    table.add_row("Peak-IoU", "-", "-", f"{peak_rate:.0f}", "-", "-")
    console.print(table)


if __name__ == "__main__":
    main()
