"""ILSVRC in a minute: `wsolbench evaluate` on the 50,000 ILSVRC test maps, loading included.

1. Writes one realistic score map per image of wsolevaluation's ILSVRC test metadata, in
   wsolevaluation's layout and format: ``<workdir>/scoremaps/<image_id>.npy``, 224 x 224
   float64, as its ``CAMComputer`` saves them (a CAM of 14 x 14 or 28 x 28 cells, ReLU'd blobs
   plus noise, resized bicubically to 224 and min-max normalized). 50,000 maps take 20 GB: the
   script checks the free space first and deletes them at the end (``--keep`` keeps them;
   ``--reuse`` reuses kept ones).
2. Evicts the maps from the page cache (``posix_fadvise DONTNEED``, these files only), so the
   timed run reads them from disk as a user's run would, then times ``wsolbench evaluate``
   (interval 0.001, MaxBoxAcc and MaxBoxAccV2) as a subprocess: wall seconds, maps/s.
3. The baseline, in the same run: wsolevaluation's own evaluator (``evaluation.py``: its
   ``BoxEvaluator``, fed by its ``_get_cam_loader``, V1 and V2 in one loop) on the first
   ``--baseline-images`` maps, from a checkout given by ``--reference`` (run as published, with
   numpy's removed ``np.float``/``np.int`` aliases restored; it needs ``munch``: put it on
   PYTHONPATH). Its counts on that sample must equal wsolbench's; its rate gives the projected
   time for all maps and the ratio.

Usage (one command; see benchmarks/README.md for the reference checkout):

    PYTHONPATH=/path/to/munch .venv/bin/python benchmarks/bench_ilsvrc_evaluate.py \\
        --reference /path/to/wsolevaluation --workdir /path/with/25GB/free
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

MAP_BYTES = 224 * 224 * 8 + 128  # a float64 224 x 224 .npy file
METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")

BASELINE_DRIVER = r"""
import json, sys, time
import numpy as np
np.float, np.int = float, int  # removed in numpy 1.24; wsolevaluation predates that
import evaluation
from evaluation import BoxEvaluator, _get_cam_loader, configure_metadata, get_image_ids
from util import t2n

metadata_root, scoremap_root, out = sys.argv[1:4]
metadata = configure_metadata(metadata_root)
image_ids = get_image_ids(metadata)
thresholds = list(np.arange(0, 1, 0.001))
evaluators = {
    name: BoxEvaluator(metadata=metadata, dataset_name="ILSVRC", split="test",
                       cam_threshold_list=thresholds, iou_threshold_list=[30, 50, 70],
                       mask_root=None, multi_contour_eval=multi)
    for name, multi in (("v1", False), ("v2", True))
}
start = time.perf_counter()
for cams, ids in _get_cam_loader(image_ids, scoremap_root):  # as evaluate_wsol does
    for cam, image_id in zip(cams, ids):
        for evaluator in evaluators.values():
            evaluator.accumulate(t2n(cam), image_id)
seconds = time.perf_counter() - start
json.dump({"seconds": seconds, "images": len(image_ids),
           "counts": {name: {str(d): e.num_correct[d].astype(int).tolist() for d in (30, 50, 70)}
                      for name, e in evaluators.items()}}, open(out, "w"))
"""


def realistic_map(index: int) -> np.ndarray:
    """A CAM as wsolevaluation's CAMComputer saves it: cells of a 14 x 14 or 28 x 28 feature map
    (one to three blobs plus noise, ReLU'd), cv2.resize bicubic to 224, normalize_scoremap."""
    rng = np.random.default_rng(index)
    side = (14, 28)[index % 2]
    yy, xx = np.mgrid[:side, :side]
    cells = rng.normal(0, 0.3, (side, side))
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, side, 2)
        radius = rng.uniform(1.5, side / 3)
        cells += rng.uniform(1, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    cam = cv2.resize(np.maximum(cells, 0), (224, 224), interpolation=cv2.INTER_CUBIC)
    if cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def _write_maps(args: tuple[Path, list[str], int]) -> None:
    root, image_ids, first = args
    for offset, image_id in enumerate(image_ids):
        path = root / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, realistic_map(first + offset))


def write_maps(root: Path, image_ids: list[str], processes: int = 2) -> float:
    start = time.perf_counter()
    chunk = 500
    jobs = [(root, image_ids[i : i + chunk], i) for i in range(0, len(image_ids), chunk)]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_write_maps, jobs))
    return time.perf_counter() - start


def evict(root: Path, image_ids: list[str]) -> None:
    """Drop these files (only) from the page cache, so that the timed run reads the disk."""
    for image_id in image_ids:
        fd = os.open(root / f"{image_id}.npy", os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def subset_metadata(source: Path, target: Path, count: int) -> list[str]:
    """The first ``count`` images of a metadata split, as a split folder of their own."""
    image_ids = (source / "image_ids.txt").read_text().split()[:count]
    keep = set(image_ids)
    target.mkdir(parents=True, exist_ok=True)
    for name in METADATA_FILES:
        lines = (source / name).read_text().splitlines()
        kept = [line for line in lines if line.split(",")[0] in keep]
        (target / name).write_text("\n".join(kept) + "\n")
    return image_ids


def run_wsolbench(metadata: Path, maps: Path, output: Path, workers: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one `wsolbench evaluate`."""
    command = [sys.executable, "-m", "wsolbench", "evaluate", "--metadata-root", str(metadata)]
    command += ["--scoremap-root", str(maps), "--cam-curve-interval", "0.001"]
    command += ["--workers", str(workers), "--output", str(output)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def run_baseline(reference: Path, metadata: Path, maps: Path, output: Path) -> dict:
    command = [sys.executable, "-c", BASELINE_DRIVER, str(metadata), str(maps), str(output)]
    subprocess.run(command, check=True, cwd=reference, stdout=subprocess.DEVNULL)
    return json.loads(output.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True, help="wsolevaluation checkout")
    parser.add_argument("--workdir", type=Path, required=True, help="where the maps go")
    parser.add_argument(
        "--metadata-root",
        type=Path,
        default=None,
        help="ILSVRC test split (default: the reference's metadata/ILSVRC/test)",
    )
    parser.add_argument("--images", type=int, default=50000, help="maps (default: all)")
    parser.add_argument("--baseline-images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4, help="wsolbench evaluate --workers")
    parser.add_argument("--warm", action="store_true", help="leave the maps in the page cache")
    parser.add_argument("--keep", action="store_true", help="keep the maps afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse maps kept by --keep")
    args = parser.parse_args()
    metadata = args.metadata_root or args.reference / "metadata" / "ILSVRC" / "test"
    work = args.workdir / "wsolbench-ilsvrc-bench"
    maps_root, meta_root, sample_root = work / "scoremaps", work / "metadata", work / "sample"
    image_ids = subset_metadata(metadata, meta_root, args.images)
    needed = len(image_ids) * MAP_BYTES
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs; {len(image_ids)} maps")
    try:
        if not (args.reuse and maps_root.is_dir()):
            free = shutil.disk_usage(args.workdir).free
            if free < needed * 1.5:
                sys.exit(
                    f"{args.workdir}: {free / 1e9:.0f} GB free, the maps need {needed / 1e9:.0f}"
                )
            seconds = write_maps(maps_root, image_ids)
            print(f"wrote {len(image_ids)} maps ({needed / 1e9:.1f} GB) in {seconds:.0f} s")
        if not args.warm:
            evict(maps_root, image_ids)
        seconds, cpu = run_wsolbench(meta_root, maps_root, work / "wsolbench.json", args.workers)
        state = "warm page cache" if args.warm else "read from disk"
        print(
            f"wsolbench evaluate, {len(image_ids)} maps ({state}), interval 0.001, V1 + V2: "
            f"{seconds:.1f} s wall, {len(image_ids) / seconds:.0f} maps/s; CPU {cpu:.1f} s "
            f"({1000 * cpu / len(image_ids):.2f} ms per map, {cpu / 2:.1f} s on two free cores)"
        )
        sample = subset_metadata(metadata, sample_root, args.baseline_images)
        base = run_baseline(args.reference, sample_root, maps_root, work / "baseline.json")
        ours = work / "sample.json"
        run_wsolbench(sample_root, maps_root, ours, args.workers)
        counts = json.loads(ours.read_text())
        equal = all(
            base["counts"][v][d] == counts[f"box_correct_counts_{v}"][d]
            for v in ("v1", "v2")
            for d in ("30", "50", "70")
        )
        rate = base["images"] / base["seconds"]
        projected = len(image_ids) / rate
        print(
            f"wsolevaluation's evaluator (V1 and V2 in one loop), {len(sample)} maps: "
            f"{rate:.1f} maps/s -> {projected:.0f} s projected for {len(image_ids)} maps; "
            f"wsolbench {projected / seconds:.0f}x faster; counts equal on the sample: "
            f"{'yes' if equal else 'NO'}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
