"""Inference + post-processing + scoring time per image on the default suite, one post-processor
call per class map (the former path) against one call per batch for all K maps, in one run.

    python benchmarks/bench_postprocess.py                          # random-init CAM, CPU
    python benchmarks/bench_postprocess.py --checkpoint runs/synthetic-default/cam-*/last.pt
    python benchmarks/bench_postprocess.py --device cuda            # taps stay on the GPU
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_postprocess.py   # one thread

(The environment, not torch.set_num_threads: numba's OpenMP kernels reset torch's thread count.)

It scores the suite's val and test splits as `wsolbench bench` does (`predict` with ten-crop, the
suite's post-processors, `wsolbench.scoring.Scorer` under every protocol). For every batch and post-processor the
scorer runs twice on the same predictions, in alternating order: once with the post-processor
called per class map (the top-5 classes and the GT class: six calls, SCG recomputing the
class-independent self-correlation each time), once with one (N, 6, h, w) call. The integer
counts of both paths must be identical (checked and printed). With ``--repeats R`` each batch is
scored R times per path (the extra runs into throwaway scorers) and the fastest run of each batch
is kept, which damps the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import time

import torch
from rich.console import Console
from rich.table import Table

from wsolbench.bench import BenchData, prepare_data
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine.infer import predict
from wsolbench.evaluation import create_protocols
from wsolbench.methods.postprocessor import PostProcessor
from wsolbench.registry import create_method, create_postprocessor
from wsolbench.scoring import Scorer
from wsolbench.suite import load_suite

PATHS = ("per-map", "batched")


class Timed(PostProcessor):
    """Wraps a post-processor: times its calls; ``per_map`` calls it once per class map (the
    former scoring path) and stacks the results, which the contract says are the same maps."""

    def __init__(self, inner: PostProcessor, per_map: bool, device: torch.device):
        self.inner, self.per_map, self.device, self.seconds = inner, per_map, device, 0.0

    def process(self, cams, taps, image_size):
        start = time.perf_counter()
        if self.per_map:
            per_class = [self.inner(cams[:, k], taps, image_size) for k in range(cams.shape[1])]
            if isinstance(per_class[0], torch.Tensor):
                maps = torch.stack(per_class, dim=1)
            else:
                maps = [torch.stack([m[i] for m in per_class]) for i in range(cams.shape[0])]
        else:
            maps = self.inner.process(cams, taps, image_size)
        _sync(self.device)
        self.seconds += time.perf_counter() - start
        return maps

    def scoremap_source(self, cams, maps):
        return self.inner.scoremap_source(cams, maps)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(args, suite, paths: BenchData, device: torch.device) -> tuple[torch.nn.Module, str]:
    if args.checkpoint:
        from wsolbench.engine.checkpoint import load_checkpoint, model_from_checkpoint

        checkpoint = load_checkpoint(args.checkpoint)
        return model_from_checkpoint(
            checkpoint, args.checkpoint, device=device
        ), f"checkpoint {args.checkpoint}"
    spec = next(s for s in suite.methods if s.label == args.method)
    classes = int(read_split(paths.metadata_root / "train").labels.max()) + 1
    torch.manual_seed(0)
    model = create_method(
        spec.method, backbone=suite.train["backbone"], num_classes=classes, **spec.hparams
    )
    return model.to(device).eval(), f"{spec.label} on {suite.train['backbone']}, random init"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        default="data/synthetic",
        help="synthetic dataset root, generated if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="a trained checkpoint (default: the suite's --method, random init)",
    )
    parser.add_argument(
        "--method",
        default="cam",
        help="suite method label when no checkpoint is given (default: %(default)s)",
    )
    parser.add_argument(
        "--splits",
        default="val,test",
        help="splits scored, as the bench does (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="scoring runs per batch and path, the fastest kept (default: %(default)s)",
    )
    args = parser.parse_args()
    console = Console()
    device = torch.device(args.device)
    suite = load_suite("synthetic-default", overrides=[f"dataset.root={args.data}"])
    paths = prepare_data(suite, console)
    model, described = _model(args, suite, paths, device)
    evaluation = suite.evaluation
    protocols = create_protocols(evaluation)
    postprocessors = {
        name: create_postprocessor("identity" if name == "none" else name, **options)
        for name, options in suite.postprocessors.items()
    }
    timers = {
        (name, path): Timed(pp, path == "per-map", device)
        for name, pp in postprocessors.items()
        for path in PATHS
    }
    post = {key: 0.0 for key in timers}  # post-processor time
    scoring = {key: 0.0 for key in timers}  # accumulate() time, post-processing included
    inference, images, identical = 0.0, 0, True
    for split_name in args.splits.split(","):
        split = read_split(paths.metadata_root / split_name)
        dataset = EvalDataset(
            split,
            paths.image_root,
            image_size=suite.dataset["image_size"],
            mask_root=paths.mask_root if split.masks is not None else None,
            ten_crop=evaluation["ten_crop"],
            resize_size=suite.dataset["resize_size"],
        )
        scorer_of = functools.partial(
            Scorer,
            protocols,
            boxes=split.boxes is not None,
            masks=paths.mask_root is not None and split.masks is not None,
        )
        scorers = {key: scorer_of() for key in timers}
        batches = predict(
            model,
            dataset,
            batch_size=evaluation["batch_size"],
            device=device,
            ten_crop=evaluation["ten_crop"],
        )
        for index in itertools.count():
            start = time.perf_counter()
            batch = next(batches, None)  # the forward passes run here
            _sync(device)
            if batch is None:
                break
            inference += time.perf_counter() - start
            images += len(batch["label"])
            for name in postprocessors:
                order = PATHS if index % 2 == 0 else PATHS[::-1]  # alternate: no warm-cache bias
                best = {path: (float("inf"), float("inf")) for path in PATHS}
                for repeat in range(args.repeats):
                    for path in order:
                        timer = timers[name, path]
                        timer.seconds = 0.0
                        start = time.perf_counter()
                        (scorers[name, path] if repeat == 0 else scorer_of()).update(batch, timer)
                        best[path] = min(best[path], (time.perf_counter() - start, timer.seconds))
                for path in PATHS:
                    scoring[name, path] += best[path][0]
                    post[name, path] += best[path][1]
        for name in postprocessors:
            old, new = (scorers[name, path].evaluator.state_dict() for path in PATHS)
            identical &= old.keys() == new.keys() and all(
                torch.equal(old[a][k], new[a][k]) for a in old for k in old[a]
            )

    def ms(seconds: float) -> str:
        return f"{1e3 * seconds / images:.2f}"

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} torch threads"
    )
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    table = Table(
        title=f"synthetic-default, {images} images ({args.splits}), {described}; {where}, "
        f"torch {torch.__version__}, load average {load}"
    )
    for column in ("ms / image", *PATHS, "per-map / batched"):
        table.add_column(column, justify="left" if column == "ms / image" else "right")
    table.add_row("inference (forward + ten-crop)", ms(inference), ms(inference), "1.00")
    totals = {path: inference for path in PATHS}
    for name in postprocessors:
        own = {path: post[name, path] for path in PATHS}
        rest = {path: scoring[name, path] - own[path] for path in PATHS}
        for label, values in ((f"{name}: post-processing", own), (f"{name}: scoring", rest)):
            table.add_row(
                label,
                *(ms(values[p]) for p in PATHS),
                f"{values['per-map'] / values['batched']:.2f}",
            )
        for path in PATHS:
            totals[path] += scoring[name, path]
    table.add_row(
        "total", *(ms(totals[p]) for p in PATHS), f"{totals['per-map'] / totals['batched']:.2f}"
    )
    for name in postprocessors:
        shares = [f"{100 * post[name, p] / totals[p]:.1f}%" for p in PATHS]
        table.add_row(f"{name}: post-processing share of total", *shares, "")
    console.print(table)
    console.print(f"evaluator counts identical on both paths: {'yes' if identical else 'NO'}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
