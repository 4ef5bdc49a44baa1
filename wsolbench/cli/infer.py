"""`wsolbench infer`: write a trained model's GT-class score maps in wsolevaluation's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wsolbench.cli import add_command
from wsolbench.cli.suite_flag import DEFAULTS, add_suite_flag, resolve
from wsolbench.errors import WsolbenchError
from wsolbench.options import Option, flag_type, parse_bool

SIZE = flag_type(Option(int, low=1, high=4096))
WRITERS = 2  # threads preparing and writing maps behind the model


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "infer",
        help="Write GT-class score maps (<out>/<image_id>.npy) for `wsolbench evaluate`.",
        description="Run a trained checkpoint (or a torchvision classifier as it is) on one split "
        "and write, for every image, the map, by the model's CAM or a post-hoc explainer, "
        "of its ground-truth class as <out>/<image_id>.npy: float64 in [0, 1], map-size x "
        "map-size (wsolevaluation's layout and dtype), prepared as wsolevaluation's CAM computer does: "
        "bicubic resize, then min-max (with SCG, from its map at the original image size). "
        "Files are written atomically.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="a checkpoint written by `wsolbench train` (this or --classifier)",
    )
    source.add_argument(
        "--classifier",
        metavar="NAME",
        help="a torchvision classifier as it is, e.g. resnet50 (with --weights)",
    )
    parser.add_argument(
        "--weights",
        metavar="W",
        default=None,
        help="--classifier's weights: a torchvision name (DEFAULT, IMAGENET1K_V1; downloaded) "
        "or a local state-dict file (default: random initialization)",
    )
    parser.add_argument(
        "--num-classes",
        metavar="N",
        type=flag_type(Option(int, low=1, high=100_000)),
        default=1000,
        help="--classifier's classes (default: %(default)s, ImageNet)",
    )
    parser.add_argument(
        "--explainer",
        metavar="NAME",
        default="cam",
        help="what makes the class maps: cam (the model's own) or a post-hoc explainer, "
        "e.g. gradcam++ (`wsolbench list explainers`; default: %(default)s)",
    )
    parser.add_argument(
        "--explainer-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="explainer option, repeatable, e.g. target_layers=backbone.block4 (default: none)",
    )
    parser.add_argument(
        "--metadata-root",
        required=True,
        metavar="SPLIT",
        help="the split's metadata folder, e.g. metadata/test (required)",
    )
    parser.add_argument(
        "--image-root",
        required=True,
        metavar="DIR",
        help="root the image ids are relative to (required)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="score-map folder to write (required)"
    )
    parser.add_argument(
        "--postprocessor",
        metavar="NAME",
        default="none",
        help="none (the plain map: ReLU, min-max, resize) or scg (default: %(default)s)",
    )
    parser.add_argument(
        "--pp-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="post-processor option, repeatable, e.g. fo_th=0.1 for scg (default: --suite's "
        "postprocessors.<name> table, else the post-processor's own)",
    )
    add_suite_flag(parser, "the post-processor's options, --image-size, --map-size, --batch-size")
    parser.add_argument(
        "--map-size",
        metavar="PX",
        type=SIZE,
        default=None,
        help=f"side of the written maps in pixels (default: --suite's, else {DEFAULTS['map_size']})",
    )
    parser.add_argument(
        "--image-size",
        metavar="PX",
        type=SIZE,
        default=None,
        help="network input size (default: --suite's, else the checkpoint's training image size)",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=flag_type(Option(int, low=1, high=65536)),
        default=None,
        help=f"images per batch (default: --suite's, else {DEFAULTS['batch_size']})",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=flag_type(Option(int, low=0, high=256)),
        default=2,
        help="data-loading processes (default: %(default)s)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)"
    )
    parser.add_argument(
        "--amp",
        type=parse_bool,
        default=False,
        metavar="BOOL",
        help="bf16 autocast, CUDA only (default: %(default)s)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="write the RAW GT-class maps (the model's own resolution and range, float32) for "
        "`wsolbench evaluate --protocol`, where each protocol prepares them by its own rules "
        "(default: score maps prepared as wsolevaluation's CAM computer does)",
    )
    parser.add_argument(
        "--predictions",
        metavar="CSV",
        default=None,
        help="also write each image's top-5 classes (one crop), 'image_id,top1,...,top5' per "
        "line, for `wsolbench evaluate --predictions` (default: none)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (default: shown)"
    )
    parser.set_defaults(func=run_infer)


def parse_options(items: list[str], postprocessor: str = "none", base: dict | None = None) -> dict:
    """`--pp-option` values over ``base`` (a suite's options), checked against the
    post-processor (keys, types, its ranges)."""
    from wsolbench.options import parse_key_values
    from wsolbench.registry import check_postprocessor

    options = {**(base or {}), **parse_key_values(items, "--pp-option")}
    return check_postprocessor(postprocessor, options, "--pp-option", None)


def explainer_options(items: list[str], name: str) -> dict:
    """`--explainer-option` values, checked against the explainer (keys, types, ranges)."""
    from wsolbench.options import Option, check, parse_key_values
    from wsolbench.registry import check_explainer

    name = check(name, Option(str, registry="explainer"), "--explainer")
    options = parse_key_values(items, "--explainer-option")
    return check_explainer(name, options, "--explainer-option", None)


def run_infer(args: argparse.Namespace) -> int:
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    import torch

    from wsolbench.data.datasets import EvalDataset, check_images
    from wsolbench.data.metadata import check_labels, read_split
    from wsolbench.engine.checkpoint import (
        load_checkpoint,
        model_from_checkpoint,
        trained_image_size,
    )
    from wsolbench.engine.device import check_device, resolve_device
    from wsolbench.engine.infer import predict
    from wsolbench.evaluation.protocols import WsolEvaluation
    from wsolbench.evaluation.scoremaps import scoremap_path  # <root>/<image_id>.npy
    from wsolbench.io import claim_file, claim_folder, declare_inputs
    from wsolbench.options import Option, check
    from wsolbench.registry import create_explainer, create_postprocessor
    from wsolbench.scoring import original_sizes

    # Everything the command line says is checked before the checkpoint or any image is read.
    check_device(args.device, "--device")
    postprocessor_name = check(
        args.postprocessor, Option(str, registry="post-processor"), "--postprocessor"
    )
    settings = resolve(args, ("map_size", "image_size", "batch_size"), postprocessor_name)
    options = parse_options(args.pp_option, postprocessor_name, settings["pp_options"])
    explainer = create_explainer(
        args.explainer, **explainer_options(args.explainer_option, args.explainer)
    )
    declare_inputs(args.checkpoint, args.metadata_root, args.image_root, args.weights)
    out = claim_folder(args.out, "score-map folder (--out)", "scoremaps")
    if args.predictions is not None:
        from wsolbench.data.predictions import is_predictions_file

        claim_file(args.predictions, "predictions file (--predictions)", is_predictions_file)
    device = resolve_device(args.device, "--device")
    checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint else None
    split = read_split(args.metadata_root)
    if checkpoint is not None:
        check_labels(split, int(checkpoint["num_classes"]), what="the checkpoint's num_classes")
        image_size = settings["image_size"] or trained_image_size(checkpoint, args.checkpoint)
        check_images(split, args.image_root)
        model = model_from_checkpoint(checkpoint, args.checkpoint, device=device)
    else:
        from wsolbench.explainers import build_classifier

        check_labels(split, args.num_classes, what="--num-classes")
        image_size = settings["image_size"] or 224
        check_images(split, args.image_root)
        model = build_classifier(
            args.classifier, args.weights, args.num_classes, image_size, device=device
        )
    try:
        explainer.check_model(model)
    except WsolbenchError as error:
        raise WsolbenchError(f"--explainer {args.explainer}: {error.message}") from None
    postprocessor = create_postprocessor(postprocessor_name, **options)
    dataset = EvalDataset(split, args.image_root, image_size)
    protocol = WsolEvaluation(map_size=settings["map_size"])  # the layout `evaluate` reads

    def write_batch(sources, image_ids) -> int:
        maps = sources if args.raw else protocol.scoremaps(sources)
        for image_id, score_map in zip(image_ids, maps):
            write_scoremap(scoremap_path(out, image_id), score_map, raw=args.raw)
        return len(image_ids)

    written, lines = 0, []
    # The maps' preparation (per-map bicubic resize) and writing run on CPU threads, a batch
    # or two behind the model, so that they overlap its next batches instead of stalling them.
    with ThreadPoolExecutor(WRITERS) as writers:
        pending: deque[Future] = deque()
        for batch in predict(
            model,
            dataset,
            batch_size=settings["batch_size"],
            device=device,
            ten_crop=False,
            workers=args.workers,
            amp=args.amp,
            topk=0 if args.predictions is None else 5,
            progress=not args.no_progress,
            explainer=explainer,
        ):  # GT-class maps only
            sources = postprocessor.source_maps(
                batch["cams_gt"], batch["taps"], original_sizes(batch)
            )
            if torch.is_tensor(sources):  # one transfer per batch, not one per map
                sources = sources.cpu()
            else:
                sources = [torch.as_tensor(m).cpu() for m in sources]
            pending.append(writers.submit(write_batch, sources, batch["image_id"]))
            if args.predictions is not None:
                for image_id, classes in zip(batch["image_id"], batch["topk"].tolist()):
                    lines.append(",".join([image_id, *(str(int(c)) for c in classes)]))
            while len(pending) > WRITERS:
                written += pending.popleft().result()
        while pending:
            written += pending.popleft().result()
    if args.predictions is not None:
        from wsolbench.io import write_text

        write_text(Path(args.predictions), "".join(f"{line}\n" for line in lines))
        print(f"wrote the top-5 classes of {len(lines)} images to {args.predictions}")
    size = settings["map_size"]
    kind = "raw maps" if args.raw else f"score maps ({size}x{size})"
    print(f"wrote {written} {kind} to {out}")
    return 0


def write_scoremap(path: Path, score_map, raw: bool = False) -> None:
    import torch

    from wsolbench.io import write_npy

    array = (
        score_map.detach().cpu().numpy() if torch.is_tensor(score_map) else np.asarray(score_map)
    )
    # float64, the dtype wsolevaluation's CAM computer scores (util.t2n casts the CAM to float
    # before the bicubic resize and the min-max): `evaluate` reads these bits back as they are.
    array = array.astype(np.float64)
    if not raw:
        array = np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0)
    write_npy(path, array)
