"""Images/s of the data loaders per worker, on real-size JPEGs (300-500 pixels a side).

What one loader worker does per image, timed in this process (one worker = one process, one
thread), for each loader of wsolbench:

* training (``TrainDataset``): decode, convert to RGB, resize to 256 x 256, random crop 224,
  random flip, to tensor, normalize (wsolevaluation's train transform);
* evaluation (``EvalDataset``): decode, resize to 224 x 224 (localization), normalize, plus
  the original-size ground truth; with ten-crop (the spa protocol's classification and the
  bench) also resize to 256 and TenCrop(224) with the ten crops normalized;

then the same datasets through a ``DataLoader`` with ``--workers`` processes, which says whether
workers scale on this machine. The per-worker rates are what the GPU time estimates rest on:
a GPU that trains VGG16 at R images/s needs R / (training rate per worker) workers.

    .venv/bin/python benchmarks/bench_loaders.py --images 200 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jpeg_dataset import make_dataset  # noqa: E402

from wsolbench.data.datasets import EvalDataset, TrainDataset, collate_eval  # noqa: E402
from wsolbench.data.metadata import read_split  # noqa: E402


def per_worker(dataset, count: int) -> float:
    dataset[0]  # warm-up (imports, first decode)
    start = time.process_time()
    for i in range(count):
        dataset[i % len(dataset)]
    return count / (time.process_time() - start)


def with_workers(dataset, workers: int, collate=None) -> float:
    """Images/s through a DataLoader, from its first batch on (the workers' start excluded)."""
    loader = DataLoader(dataset, batch_size=16, num_workers=workers, collate_fn=collate)
    batches = iter(loader)
    next(batches)
    start, count = time.perf_counter(), 0
    for batch in batches:
        count += len(batch[1] if isinstance(batch, (list, tuple)) else batch["label"])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsolbench-bench-loaders"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # one worker: one thread, as DataLoader workers run
    images, metadata = make_dataset(args.workdir, args.images, args.images)
    train = TrainDataset(read_split(metadata / "train"), images)
    loaders = {
        "training (resize 256, crop 224, flip)": (train, None),
        "evaluation (resize 224)": (
            EvalDataset(read_split(metadata / "test"), images),
            collate_eval,
        ),
        "evaluation + ten-crop (resize 256, 10 x 224)": (
            EvalDataset(read_split(metadata / "test"), images, ten_crop=True),
            collate_eval,
        ),
    }
    print(
        f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, "
        f"{args.images} JPEGs of 300-500 px a side; rates in images/s"
    )
    print(f"{'loader':46}  per worker (CPU time)  DataLoader, {args.workers} workers (wall)")
    for name, (dataset, collate) in loaders.items():
        one = per_worker(dataset, args.images)
        many = with_workers(dataset, args.workers, collate)
        print(f"{name:46}  {one:21.0f}  {many:.0f}")


if __name__ == "__main__":
    main()
