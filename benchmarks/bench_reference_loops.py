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
    from wsolbench.evaluation.protocols import GroundTruth, MapBatch, WsolEvaluation
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
    warm = Evaluator(evaluator.protocols.values())  # loads the JIT-compiled kernel (startup)
    warm.update(MapBatch(gt=GroundTruth(sizes=[(8, 8)], boxes=[[[0, 0, 3, 3]]]),
                         scoremaps=torch.zeros(1, 8, 8)))  # fmt: skip
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


def bench_scoring(args, checkpoint: Path, images: Path, metadata: Path, pp: str) -> dict:
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
        {pp: create_postprocessor(pp)},
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
    parser.add_argument("--batch-size", type=int, default=16, help="inference batch")
    parser.add_argument("--workers", type=int, default=2, help="loader processes, both sides")
    parser.add_argument("--train-crop", type=int, default=112, help="training crop (224: paper)")
    parser.add_argument("--interval", type=float, default=0.001, help="CAM threshold step")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precisions",
        default="fp32",
        help="wsolbench's precisions, comma-separated: fp32, bf16 (CUDA; the reference is fp32)",
    )
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    args.precisions = args.precisions.split(",")
    if args.train_images < 10 * args.train_batch_size and not args.skip_training:
        parser.error("wsolevaluation's Trainer.train needs --train-images >= 10 batches")
    if "bf16" in args.precisions and not args.device.startswith("cuda"):
        parser.error("bf16 (autocast) is CUDA only")
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.reference = args.reference.resolve()
    images, metadata = make_dataset(args.workdir / "dataset", args.train_images, args.images)
    print(
        f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, device {args.device}, "
        f"torch threads {torch.get_num_threads()}, {args.images} test images, "
        f"{args.train_images} training images at {args.train_crop} px"
    )
    reference_pth, checkpoint = args.workdir / "reference.pth", args.workdir / "wsolbench.pt"
    driver = [sys.executable, str(HERE / "wsolevaluation_driver.py")]
    run([*driver, "checkpoint", str(reference_pth)], cwd=args.reference)
    wsolbench(*"checkpoint import".split(), str(reference_pth), *"--method cam --backbone vgg16 "
              "--num-classes 200 --out".split(), str(checkpoint))  # fmt: skip
    infer = ["--batch-size", str(args.batch_size), "--workers", str(args.workers)]
    train = ["--batch-size", str(args.train_batch_size), "--workers", str(args.workers)]
    data = ["--data-root", str(images), "--metadata-root", str(metadata)]
    crop = ["--resize-size", str(args.train_crop * 8 // 7)]  # 256 / 224, as the papers
    ref = reference(args, "infer", "--checkpoint", str(reference_pth), *data, *infer,
                    "--log-folder", str(args.workdir / "reference-log"),
                    "--interval", str(args.interval))  # fmt: skip
    if not args.skip_training:
        ref_train = reference(args, "train", "--checkpoint", str(reference_pth), *data, *train,
                              "--crop-size", str(args.train_crop), *crop)  # fmt: skip
    rows = []  # (stage, precision, reference images/s, wsolbench images/s)
    loop_rate = ref["images"] / ref["seconds"]
    for precision in args.precisions:
        args.amp = precision == "bf16"
        amp = ["--amp", "true"] if args.amp else []
        ours = wsolbench_stages(args, checkpoint, images, metadata)
        # (the reference's evaluate stage is its BoxEvaluator for V1; wsolbench's gives V1 + V2)
        for stage in ("forward", "resize + normalize", "write", "evaluate"):
            base, fast = (
                ref["images"] / ref["stages"][stage],
                ours["images"] / ours["stages"][stage],
            )
            rows.append((stage, precision, base, fast))
        rows.append(("inference loop, all stages", precision, loop_rate,
                     ours["images"] / ours["seconds"]))  # fmt: skip
        maps = args.workdir / "wsolbench-maps"
        cli = wsolbench("infer", "--checkpoint", str(checkpoint), "--metadata-root",
                        str(metadata / "test"), "--image-root", str(images), "--out", str(maps),
                        "--device", args.device, "--no-progress", *infer, *amp)  # fmt: skip
        cli += wsolbench("evaluate", "--metadata-root", str(metadata / "test"),
                         "--scoremap-root", str(maps), "--cam-curve-interval",
                         str(args.interval))  # fmt: skip
        rows.append(("wsolbench infer + evaluate (CLI, startup included)", precision, loop_rate,
                     args.images / cli))  # fmt: skip
        if precision == "fp32":  # score_split runs the suite's precision, fp32 here
            for name in ("identity", "scg"):
                scored = bench_scoring(args, checkpoint, images, metadata, name)
                rows.append((f"bench scoring, {name} (GT + top-5 maps, every protocol)",
                             precision, loop_rate, scored["images"] / scored["seconds"]))  # fmt: skip
        if not args.skip_training:
            out = args.workdir / "wsolbench-train"
            wsolbench("train", "--method", "cam", "--backbone", "vgg16", "--image-root",
                      str(images), "--metadata-root", str(metadata), "--num-classes", "200",
                      "--epochs", "1", "--image-size", str(args.train_crop), *crop, "--lr",
                      "0.00001", "--device", args.device, "--out", str(out), "--overwrite",
                      "--no-progress", *train, *amp)  # fmt: skip
            epoch = json.loads((out / "history.json").read_text())[0]
            rows.append(("training epoch", precision, ref_train["images"] / ref_train["seconds"],
                         epoch["images"] / epoch["seconds"]))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'stage':{width}}  wsolbench  wsolevaluation img/s  wsolbench img/s  ratio")
    for stage, precision, base, fast in rows:
        print(f"{stage:{width}}  {precision:9}  {base:20.1f}  {fast:15.1f}  {fast / base:.2f}x")
    if args.json:
        keys = ("stage", "precision", "reference", "wsolbench")
        args.json.write_text(json.dumps([dict(zip(keys, r)) for r in rows], indent=1))


if __name__ == "__main__":
    main()
