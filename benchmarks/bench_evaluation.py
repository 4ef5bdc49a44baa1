"""Speed of the evaluator against a straightforward OpenCV implementation of the same protocol,
and its cost on every family of score maps.

1. CAM-like 224 x 224 maps (a few blurred blobs plus some noise): the baseline is the per-image,
   per-threshold ``cv2.findContours`` oracle of ``tests/box_reference.py``; the script checks
   that both give identical integer counts on the baseline's subset, then prints images/s and
   the ratios.
2. Every family of ``tests/map_families.py`` (CAM-like, uniform noise, salt-and-pepper,
   checkerboards, many tiny blobs, constant plateaus): ms per map of the box metrics (V1 + V2)
   and its multiple of the CAM-like maps' (the goal: at most 2x), with the counts of
   ``--oracle-maps`` maps of each family, ``--oracle-size`` pixels a side, checked against the
   oracle at intervals 0.01 and 0.001 (the oracle takes minutes per 224 x 224 noise or
   checkerboard map: one findContours and thousands of boundingRect calls per threshold).

Usage: ``python benchmarks/bench_evaluation.py [--images N] [--baseline-images M]
[--family-images K] [--oracle-maps J] [--oracle-size S]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from box_reference import reference_correct_counts  # noqa: E402
from map_families import FAMILIES, family_maps, gt_boxes  # noqa: E402

from wsolbench.evaluation import BoxAccumulator, PeakAccumulator, PxAPAccumulator  # noqa: E402


def time_fast(maps, boxes, interval: float, batch: int = 256):
    """Wall and process CPU seconds (all threads) of the box evaluator over all maps, after a JIT
    warm-up; the CPU time is less sensitive to other jobs' load."""
    acc = BoxAccumulator(interval)
    acc.update(maps[:2], boxes[:2])  # JIT warm-up (cached on disk after the first run)
    acc = BoxAccumulator(interval)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(0, len(maps), batch):
        acc.update(torch.from_numpy(maps[i : i + batch]), boxes[i : i + batch])
    return time.perf_counter() - start, time.process_time() - cpu_start, acc


def oracle_equal(maps, boxes, interval: float) -> tuple[bool, float]:
    """Whether the evaluator's V1 and V2 counts equal the OpenCV oracle's, and the oracle's
    seconds (V1 + V2)."""
    _, _, acc = time_fast(maps, boxes, interval)
    thresholds, deltas = np.arange(0, 1, interval), list(acc.deltas)
    start = time.perf_counter()
    v1 = reference_correct_counts(maps, boxes, thresholds, deltas, all_contours=False)
    v2 = reference_correct_counts(maps, boxes, thresholds, deltas, all_contours=True)
    seconds = time.perf_counter() - start
    equal = np.array_equal(v1, acc.correct_v1.numpy()) and np.array_equal(
        v2, acc.correct_v2.numpy()
    )
    return equal, seconds


def baseline_table(maps, boxes, baseline_images: int, console: Console) -> None:
    table = Table(title="box metrics vs the OpenCV baseline, CAM-like 224x224 maps")
    for column in ("metric", "interval", "baseline img/s", "wsolbench img/s", "ratio", "equal"):
        table.add_column(column, justify="right")
    for interval in (0.001, 0.01):
        thresholds = np.arange(0, 1, interval)
        elapsed, cpu, _ = time_fast(maps, boxes, interval)
        fast_rate = len(maps) / elapsed
        sub = baseline_images
        _, _, small = time_fast(maps[:sub], boxes[:sub], interval)
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
            cpu_ms = 1000 * cpu / len(maps)
            console.print(
                f"50,000 maps at interval 0.001 (V1 and V2 together): "
                f"{50000 / fast_rate:.0f} s projected from the wall time; CPU time "
                f"{cpu_ms:.2f} ms per map, {50000 * cpu_ms / 1000 / 2:.0f} s on two free cores"
            )
    console.print(table)


def family_table(count: int, oracle_maps: int, oracle_size: int, console: Console) -> None:
    """ms per map of every family (interval 0.001; the kernel's cost does not depend on it)
    and its multiple of the CAM-like maps', with the oracle check."""
    table = Table(title=f"box metrics (V1 + V2) per map family, {count} maps of 224x224 each")
    for column in (
        "family",
        "ms / map (wall)",
        "CPU ms / map",
        "x CAM-like (wall)",
        "x CAM-like (CPU)",
        f"equal to OpenCV ({oracle_maps} maps {oracle_size} px), 0.01 / 0.001",
        "oracle s",
    ):
        table.add_column(column, justify="right")
    boxes = gt_boxes(count)
    rows, worst = {}, 0.0
    for name in FAMILIES:
        maps = family_maps(name, count)
        elapsed, cpu, _ = time_fast(maps, boxes, 0.001)
        rows[name] = (1000 * elapsed / count, 1000 * cpu / count)
        checks, oracle_seconds = [], 0.0
        small = family_maps(name, oracle_maps, oracle_size, seed=1)
        small_boxes = gt_boxes(oracle_maps, oracle_size, seed=2)
        for interval in (0.01, 0.001):
            equal, seconds = oracle_equal(small, small_boxes, interval)
            checks.append("yes" if equal else "NO")
            oracle_seconds += seconds
        wall, cpu_ms = rows[name]
        base_wall, base_cpu = rows["cam"]
        worst = max(worst, wall / base_wall)
        console.print(f"{name}: {wall:.2f} ms per map, oracle {' / '.join(checks)}")
        table.add_row(
            name,
            f"{wall:.2f}",
            f"{cpu_ms:.2f}",
            f"{wall / base_wall:.2f}",
            f"{cpu_ms / base_cpu:.2f}",
            " / ".join(checks),
            f"{oracle_seconds:.1f}",
        )
    console.print(table)
    verdict = "within" if worst <= 2 else "ABOVE"
    console.print(f"slowest family: {worst:.2f}x the CAM-like maps' wall time ({verdict} 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000, help="CAM-like maps, fast evaluator")
    parser.add_argument(
        "--baseline-images", type=int, default=20, help="CAM-like maps for the OpenCV baseline"
    )
    parser.add_argument("--family-images", type=int, default=400, help="maps of each family")
    parser.add_argument(
        "--oracle-maps", type=int, default=4, help="maps of each family checked against OpenCV"
    )
    parser.add_argument("--oracle-size", type=int, default=96, help="their side in pixels")
    args = parser.parse_args()
    console = Console()
    console.print(f"torch threads {torch.get_num_threads()}")
    family_table(args.family_images, args.oracle_maps, args.oracle_size, console)
    maps, boxes = family_maps("cam", args.images), gt_boxes(args.images)
    baseline_table(maps, boxes, args.baseline_images, console)
    masks = maps > 0.5
    pxap, peak = PxAPAccumulator(0.001), PeakAccumulator()
    start = time.perf_counter()
    for i in range(0, len(maps), 256):
        pxap.update(torch.from_numpy(maps[i : i + 256]), torch.from_numpy(masks[i : i + 256]))
    pxap_rate = len(maps) / (time.perf_counter() - start)
    start = time.perf_counter()
    peak.update(list(maps), list(masks))
    peak_rate = len(maps) / (time.perf_counter() - start)
    console.print(f"PxAP (interval 0.001): {pxap_rate:.0f} img/s; Peak-IoU: {peak_rate:.0f} img/s")


if __name__ == "__main__":
    main()
