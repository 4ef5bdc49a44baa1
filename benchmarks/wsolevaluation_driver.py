"""Runs clovaai/wsolevaluation's own loops, as published, for the side-by-side benchmarks.

Not wsolbench code and not reference code: a driver that imports a wsolevaluation checkout
(run it with the checkout as the working directory; it needs ``munch`` on PYTHONPATH) and times
its functions. Nothing of the reference is edited; at run time only (1) numpy's ``np.float`` and
``np.int`` aliases, removed in numpy 1.24, are restored, and (2) without CUDA, ``.cuda()`` on
tensors and modules is the identity (the reference calls it unconditionally). Stages are timed
by wrapping the reference's own calls (forward hooks, ``np.save``, ``accumulate``).

    python wsolevaluation_driver.py checkpoint OUT.pth --num-classes 200
    python wsolevaluation_driver.py infer --checkpoint C --data-root D --metadata-root M ...
    python wsolevaluation_driver.py train --checkpoint C --data-root D --metadata-root M ...
    python wsolevaluation_driver.py evaluate METADATA SCOREMAPS OUT.json

Each command writes its measurements as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

np.float, np.int = float, int  # removed in numpy 1.24; wsolevaluation predates that
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":  # the reference calls .cuda() unconditionally
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
sys.path.insert(0, os.getcwd())


class Stopwatch:
    """Seconds per stage, summed; CUDA is synchronized at each boundary so GPU work counts
    where it is launched."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, name, function):
        def timed(*args, **kwargs):
            sync()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                sync()
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed

    def hook(self, module, name="forward"):
        """Time ``module``'s forward passes with hooks (the reference calls the module)."""
        started = []

        def pre(*_):
            sync()
            started.append(time.perf_counter())

        def post(*_):
            sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started.pop()

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def build_model(num_classes: int, checkpoint: str | None = None, large: bool = False):
    import wsol

    model = wsol.vgg16(
        architecture_type="cam",
        pretrained=False,
        num_classes=num_classes,
        large_feature_map=large,
    )
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    return model.to(DEVICE)


def cmd_checkpoint(args) -> None:
    torch.manual_seed(args.seed)
    model = build_model(args.num_classes)
    torch.save({"architecture": "vgg16", "state_dict": model.state_dict()}, args.out)


def cmd_infer(args) -> None:
    """CAMComputer.compute_and_evaluate_cams on the test split, as Trainer.evaluate runs it
    (model.eval(), no torch.no_grad: the reference has none)."""
    import inference
    import munch
    from data_loaders import get_data_loader
    from inference import CAMComputer

    model = build_model(args.num_classes, args.checkpoint)
    roots = munch.Munch(train=args.data_root, val=args.data_root, test=args.data_root)
    loader = get_data_loader(
        data_roots=roots,
        metadata_root=args.metadata_root,
        batch_size=args.batch_size,
        workers=args.workers,
        resize_size=args.crop_size,
        crop_size=args.crop_size,
        proxy_training_set=False,
    )["test"]
    watch = Stopwatch()
    watch.hook(model)
    computer = CAMComputer(
        model=model,
        loader=loader,
        metadata_root=os.path.join(args.metadata_root, "test"),
        mask_root=None,
        iou_threshold_list=[30, 50, 70],
        dataset_name="CUB",
        split="test",
        multi_contour_eval=args.multi_contour_eval,
        cam_curve_interval=args.interval,
        log_folder=args.log_folder,
    )
    computer.evaluator.accumulate = watch.wrap("evaluate", computer.evaluator.accumulate)
    inference.np.save = watch.wrap("write", np.save)
    inference.cv2.resize = watch.wrap("resize + normalize", inference.cv2.resize)
    inference.normalize_scoremap = watch.wrap("resize + normalize", inference.normalize_scoremap)
    start = time.perf_counter()
    performance = computer.compute_and_evaluate_cams()
    total = time.perf_counter() - start
    images = len(loader.dataset)
    write_json(
        args.out,
        {
            "seconds": total,
            "images": images,
            "stages": watch.seconds,
            "performance": [float(v) for v in performance],
        },
    )


def cmd_train(args) -> None:
    """One epoch of Trainer.train('train'), the Trainer built by its own get_configs()."""
    sys.argv = [
        "main.py",
        "--dataset_name",
        "CUB",
        "--architecture",
        "vgg16",
        "--wsol_method",
        "cam",
        "--pretrained",
        "FALSE",
        "--large_feature_map",
        "FALSE",
        "--data_root",  # get_configs appends the dataset name to both roots
        os.path.dirname(os.path.abspath(args.data_root)),
        "--metadata_root",
        os.path.dirname(os.path.abspath(args.metadata_root)),
        "--batch_size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--resize_size",
        str(args.resize_size),
        "--crop_size",
        str(args.crop_size),
        "--epochs",
        "1",
        "--lr",
        "0.00001",
        "--experiment_name",
        args.experiment,
        "--override_cache",
        "TRUE",
        "--seed",
        "0",
    ]
    import main

    trainer = main.Trainer()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    trainer.model.load_state_dict(state)
    sync()
    start = time.perf_counter()
    trainer.train(split="train")
    sync()
    total = time.perf_counter() - start
    write_json(args.out, {"seconds": total, "images": len(trainer.loaders["train"].dataset)})


def cmd_evaluate(args) -> None:
    """evaluation.py's evaluate_wsol loop (its _get_cam_loader feeding BoxEvaluator), V1 and V2
    in one loop so that the maps are read once."""
    from util import t2n

    from evaluation import BoxEvaluator, _get_cam_loader, configure_metadata, get_image_ids

    metadata = configure_metadata(args.metadata)
    image_ids = get_image_ids(metadata)
    thresholds = list(np.arange(0, 1, args.interval))
    evaluators = {
        name: BoxEvaluator(
            metadata=metadata,
            dataset_name="ILSVRC",
            split="test",
            cam_threshold_list=thresholds,
            iou_threshold_list=[30, 50, 70],
            mask_root=None,
            multi_contour_eval=multi,
        )
        for name, multi in (("v1", False), ("v2", True))
    }
    start = time.perf_counter()
    for cams, ids in _get_cam_loader(image_ids, args.scoremaps):
        for cam, image_id in zip(cams, ids):
            for evaluator in evaluators.values():
                evaluator.accumulate(t2n(cam), image_id)
    seconds = time.perf_counter() - start
    counts = {
        name: {str(d): e.num_correct[d].astype(int).tolist() for d in (30, 50, 70)}
        for name, e in evaluators.items()
    }
    write_json(args.out, {"seconds": seconds, "images": len(image_ids), "counts": counts})


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    checkpoint = commands.add_parser("checkpoint")
    checkpoint.add_argument("out")
    checkpoint.add_argument("--num-classes", type=int, default=200)
    checkpoint.add_argument("--seed", type=int, default=0)
    for name in ("infer", "train"):
        sub = commands.add_parser(name)
        sub.add_argument("--checkpoint", required=True)
        sub.add_argument("--data-root", required=True)
        sub.add_argument("--metadata-root", required=True, help="folder of train/ val/ test/")
        sub.add_argument("--num-classes", type=int, default=200)
        sub.add_argument("--batch-size", type=int, default=32)
        sub.add_argument("--workers", type=int, default=2)
        sub.add_argument("--crop-size", type=int, default=224)
        sub.add_argument("--out", required=True)
    commands.choices["infer"].add_argument("--log-folder", required=True)
    commands.choices["infer"].add_argument("--interval", type=float, default=0.001)
    commands.choices["infer"].add_argument("--multi-contour-eval", action="store_true")
    commands.choices["train"].add_argument("--resize-size", type=int, default=256)
    commands.choices["train"].add_argument("--experiment", default="wsolbench_bench")
    evaluate = commands.add_parser("evaluate")
    evaluate.add_argument("metadata")
    evaluate.add_argument("scoremaps")
    evaluate.add_argument("out")
    evaluate.add_argument("--interval", type=float, default=0.001)
    args = parser.parse_args()
    {
        "checkpoint": cmd_checkpoint,
        "infer": cmd_infer,
        "train": cmd_train,
        "evaluate": cmd_evaluate,
    }[args.command](args)


if __name__ == "__main__":
    main()
