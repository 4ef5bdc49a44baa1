"""wsolbench's inference, scoring and training loops side by side with wsolevaluation's own.

Same images (real-size JPEGs in wsolevaluation's layout, ``jpeg_dataset.py``), same VGG16-CAM
weights (the reference builds and saves them, ``wsolbench checkpoint import`` converts them),
one run, one machine:

* inference: wsolevaluation's ``CAMComputer.compute_and_evaluate_cams`` (forward, CAM resize
  and normalization, ``np.save`` of every map, ``BoxEvaluator.accumulate`` at the interval)
  against ``wsolbench infer`` + ``wsolbench evaluate`` (the same work through the command line)
  and against the bench's scoring (``engine.evaluate.score_split``: one forward, GT and top-5
  maps, every protocol, no file written); each stage timed on both sides by the same wrappers
  (forward hooks, the map preparation, the writes, the scoring);
* training: one epoch of wsolevaluation's ``Trainer.train`` (its ``get_configs``, loaders,
  optimizer) against ``wsolbench train --epochs 1`` (the epoch's own seconds, from history.json).

Prints images/s and wsolbench / wsolevaluation for every stage. The reference runs through
``wsolevaluation_driver.py`` from a checkout given by ``--reference`` (``munch`` on PYTHONPATH).

    PYTHONPATH=/path/to/munch .venv/bin/python benchmarks/bench_reference_loops.py \\
        --reference /path/to/wsolevaluation --workdir /tmp/loops
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from jpeg_dataset import make_dataset  # noqa: E402
from wsolevaluation_driver import Stopwatch  # noqa: E402


def run(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def reference(args, command: str, *extra: str) -> dict:
    out = args.workdir / f"reference-{command}.json"
    driver = [sys.executable, str(HERE / "wsolevaluation_driver.py"), command]
    run([*driver, *extra, "--out", str(out)], cwd=args.reference)
    return json.loads(out.read_text())


def wsolbench(*arguments: str) -> float:
    return run([sys.executable, "-m", "wsolbench", *arguments])


def wsolbench_stages(args, checkpoint: Path, images: Path, metadata: Path) -> dict:
    """`wsolbench infer`'s loop in this process, its stages timed as the reference's are."""
    from wsolbench.cli.infer import write_scoremap
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from wsolbench.engine.infer import predict
    from wsolbench.evaluation import Evaluator, create_protocols
    from wsolbench.evaluation.protocols import MapBatch, WsolEvaluation
    from wsolbench.registry import create_postprocessor
    from wsolbench.scoring import ground_truth, original_sizes

    device = torch.device(args.device)
    model = model_from_checkpoint(load_checkpoint(checkpoint), checkpoint, device=device)
    split = read_split(metadata / "test")
    dataset = EvalDataset(split, images, 224)
    postprocessor = create_postprocessor("identity")
    protocol = WsolEvaluation()
    evaluator = Evaluator(
        create_protocols({"cam_curve_interval": args.interval}, names=["wsolevaluation"]).values()
    )
    out = args.workdir / "wsolbench-stage-maps"
    out.mkdir(exist_ok=True)
    watch = Stopwatch()
    watch.hook(model)
    prepare = watch.wrap(
        "resize + normalize",
        lambda b: protocol.scoremaps(
            postprocessor.source_maps(b["cams_gt"], b["taps"], original_sizes(b))
        ),
    )
    write = watch.wrap("write", write_scoremap)
    score = watch.wrap("evaluate", evaluator.update)
    start = time.perf_counter()
    for batch in predict(
        model,
        dataset,
        args.batch_size,
        device,
        ten_crop=False,
        topk=0,
        workers=args.workers,
        amp=args.amp,
    ):
        maps = prepare(batch)
        for image_id, scoremap in zip(batch["image_id"], maps):
            write(out / f"{image_id}.npy", scoremap)
        score(MapBatch(gt=ground_truth(batch), scoremaps=maps))
    return {"seconds": time.perf_counter() - start, "images": len(dataset), "stages": watch.seconds}


def bench_scoring(args, checkpoint: Path, images: Path, metadata: Path) -> dict:
    """The bench's scoring pass (`score_split`): one forward per image, GT and top-5 maps,
    every protocol, nothing written."""
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from wsolbench.engine.evaluate import score_split
    from wsolbench.evaluation import create_protocols
    from wsolbench.registry import create_postprocessor

    device = torch.device(args.device)
    model = model_from_checkpoint(load_checkpoint(checkpoint), checkpoint, device=device)
    dataset = EvalDataset(read_split(metadata / "test"), images, 224)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    score_split(
        model,
        dataset,
        {"none": create_postprocessor("identity")},
        create_protocols({"cam_curve_interval": args.interval}),
        batch_size=args.batch_size,
        device=device,
        workers=args.workers,
        timings=timings,
    )
    return {"seconds": time.perf_counter() - start, "images": len(dataset), "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True, help="wsolevaluation checkout")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=32, help="test images (inference)")
    parser.add_argument("--train-images", type=int, default=80, help="images of the epoch")
    parser.add_argument(
        "--train-batch-size",
        type=int,
        default=8,
        help="training batch (the reference's loop needs 10 batches or more per epoch)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="loader processes, both sides")
    parser.add_argument("--train-crop", type=int, default=112, help="training crop (224: paper)")
    parser.add_argument("--interval", type=float, default=0.001, help="CAM threshold step")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="wsolbench in bf16 (CUDA only)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.train_images < 10 * args.train_batch_size and not args.skip_training:
        parser.error("wsolevaluation's Trainer.train needs --train-images >= 10 batches")
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.reference = args.reference.resolve()
    images, metadata = make_dataset(args.workdir / "dataset", args.train_images, args.images)
    print(
        f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, device {args.device}, "
        f"torch threads {torch.get_num_threads()}, {args.images} test images, "
        f"{args.train_images} training images at {args.train_crop} px"
    )
    reference_pth, checkpoint = args.workdir / "reference.pth", args.workdir / "wsolbench.pt"
    run(
        [sys.executable, str(HERE / "wsolevaluation_driver.py"), "checkpoint", str(reference_pth)],
        cwd=args.reference,
    )
    wsolbench(
        "checkpoint",
        "import",
        str(reference_pth),
        "--method",
        "cam",
        "--backbone",
        "vgg16",
        "--num-classes",
        "200",
        "--out",
        str(checkpoint),
    )
    common = ["--batch-size", str(args.batch_size), "--workers", str(args.workers)]
    data = ["--data-root", str(images), "--metadata-root", str(metadata)]
    rows = []  # (stage, reference images/s, wsolbench images/s)

    ref = reference(
        args,
        "infer",
        "--checkpoint",
        str(reference_pth),
        *data,
        *common,
        "--log-folder",
        str(args.workdir / "reference-log"),
        "--interval",
        str(args.interval),
    )
    ours = wsolbench_stages(args, checkpoint, images, metadata)
    for stage in ("forward", "resize + normalize", "write", "evaluate"):
        rows.append(
            (
                stage,
                ref["images"] / ref["stages"][stage],
                ours["images"] / ours["stages"][stage],
            )
        )
    rows.append(
        (
            "inference loop, all stages",
            ref["images"] / ref["seconds"],
            ours["images"] / ours["seconds"],
        )
    )
    maps = args.workdir / "wsolbench-maps"
    amp = ["--amp", "true"] if args.amp else []
    cli = wsolbench(
        "infer",
        "--checkpoint",
        str(checkpoint),
        "--metadata-root",
        str(metadata / "test"),
        "--image-root",
        str(images),
        "--out",
        str(maps),
        "--device",
        args.device,
        "--no-progress",
        *common,
        *amp,
    )
    cli += wsolbench(
        "evaluate",
        "--metadata-root",
        str(metadata / "test"),
        "--scoremap-root",
        str(maps),
        "--cam-curve-interval",
        str(args.interval),
    )
    rows.append(
        (
            "wsolbench infer + evaluate (CLI, startup included)",
            ref["images"] / ref["seconds"],
            args.images / cli,
        )
    )
    scored = bench_scoring(args, checkpoint, images, metadata)
    rows.append(
        (
            "bench scoring (GT + top-5 maps, every protocol)",
            ref["images"] / ref["seconds"],
            scored["images"] / scored["seconds"],
        )
    )

    if not args.skip_training:
        common = ["--batch-size", str(args.train_batch_size), "--workers", str(args.workers)]
        train = reference(
            args,
            "train",
            "--checkpoint",
            str(reference_pth),
            *data,
            *common,
            "--crop-size",
            str(args.train_crop),
            "--resize-size",
            str(args.train_crop * 8 // 7),
        )
        out = args.workdir / "wsolbench-train"
        wsolbench(
            "train",
            "--method",
            "cam",
            "--backbone",
            "vgg16",
            "--image-root",
            str(images),
            "--metadata-root",
            str(metadata),
            "--num-classes",
            "200",
            "--epochs",
            "1",
            "--image-size",
            str(args.train_crop),
            "--resize-size",
            str(args.train_crop * 8 // 7),
            "--lr",
            "0.00001",
            "--device",
            args.device,
            "--out",
            str(out),
            "--overwrite",
            "--no-progress",
            *common,
            *amp,
        )
        epoch = json.loads((out / "history.json").read_text())[0]
        rows.append(
            (
                "training epoch",
                train["images"] / train["seconds"],
                epoch["images"] / epoch["seconds"],
            )
        )

    width = max(len(r[0]) for r in rows)
    print(f"{'stage':{width}}  wsolevaluation img/s  wsolbench img/s  wsolbench / reference")
    for stage, base, fast in rows:
        print(f"{stage:{width}}  {base:20.1f}  {fast:15.1f}  {fast / base:20.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps([dict(zip(("stage", "reference", "wsolbench"), r)) for r in rows], indent=1)
        )


if __name__ == "__main__":
    main()
