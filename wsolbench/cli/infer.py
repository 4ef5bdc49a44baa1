"""`wsolbench infer`: write a trained model's GT-class score maps in wsolevaluation's layout."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wsolbench.cli import add_command
from wsolbench.errors import WsolbenchError
from wsolbench.options import Option, flag_type, parse_bool

SIZE = flag_type(Option(int, low=1, high=4096))


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "infer",
        help="Write GT-class score maps (<out>/<image_id>.npy) for `wsolbench evaluate`.",
        description="Run a trained checkpoint on one split and write, for every image, the map "
        "of its ground-truth class as <out>/<image_id>.npy: float32 in [0, 1], map-size x "
        "map-size (wsolevaluation's layout), prepared as wsolevaluation's CAM computer does: "
        "bicubic resize, then min-max (with SCG, from its map at the original image size). "
        "Files are written atomically.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint written by `wsolbench train` (required)")
    parser.add_argument("--metadata-root", required=True, metavar="SPLIT",
                        help="the split's metadata folder, e.g. metadata/test (required)")
    parser.add_argument("--image-root", required=True, metavar="DIR", help="root the image ids are relative to (required)")
    parser.add_argument("--out", required=True, metavar="DIR", help="score-map folder to write (required)")
    parser.add_argument("--postprocessor", metavar="NAME", default="identity", help="identity (ReLU, min-max, resize) or scg (default: %(default)s)")
    parser.add_argument("--pp-option", action="append", default=[], metavar="KEY=VALUE",
                        help="post-processor option, repeatable, e.g. fo_th=0.1 for scg (default: none)")
    parser.add_argument("--map-size", metavar="PX", type=SIZE, default=224, help="side of the written maps in pixels (default: %(default)s)")
    parser.add_argument("--image-size", metavar="PX", type=SIZE, default=None, help="network input size (default: the checkpoint's training image size)")
    parser.add_argument("--batch-size", metavar="N", type=flag_type(Option(int, low=1, high=65536)), default=32, help="images per batch (default: %(default)s)")
    parser.add_argument("--workers", metavar="N", type=flag_type(Option(int, low=0, high=256)), default=2, help="data-loading processes (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--amp", type=parse_bool, default=False, metavar="BOOL", help="bf16 autocast, CUDA only (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    parser.set_defaults(func=run_infer)


def parse_options(items: list[str], postprocessor: str = "identity") -> dict:
    """`--pp-option` values, checked against the post-processor (keys, types, its ranges)."""
    from wsolbench.engine.config import check_postprocessor, parse_key_values

    options = parse_key_values(items, "--pp-option")
    return check_postprocessor(postprocessor, options, "--pp-option", None)


def run_infer(args: argparse.Namespace) -> int:
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import check_labels, read_split
    from wsolbench.engine.checkpoint import load_checkpoint, model_from_checkpoint, trained_image_size
    from wsolbench.engine.config import DEVICE
    from wsolbench.engine.infer import predict
    from wsolbench.engine.train import resolve_device
    from wsolbench.evaluation.scoremaps import scoremap_path  # <root>/<image_id>.npy
    from wsolbench.io import check_writable_dir, inside
    from wsolbench.registry import POSTPROCESSORS, create_postprocessor
    from wsolbench.scoring import wsolevaluation_scoremaps

    # Everything the command line says is checked before the checkpoint or any image is read.
    if not DEVICE.fullmatch(args.device):
        raise WsolbenchError(f"--device {args.device!r}: expected auto, cpu, cuda or cuda:N")
    if args.postprocessor not in POSTPROCESSORS.names():
        raise WsolbenchError(f"--postprocessor {args.postprocessor!r}: expected one of "
                             f"{', '.join(POSTPROCESSORS.names())}")
    options = parse_options(args.pp_option, args.postprocessor)
    out = check_writable_dir(args.out, "score-map folder (--out)")
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    split = read_split(args.metadata_root)
    check_labels(split, int(checkpoint["num_classes"]), what="the checkpoint's num_classes")
    model = model_from_checkpoint(checkpoint, args.checkpoint, device=device)
    postprocessor = create_postprocessor(args.postprocessor, **options)
    image_size = args.image_size or trained_image_size(checkpoint, args.checkpoint)
    dataset = EvalDataset(split, args.image_root, image_size)
    written = 0
    for batch in predict(model, dataset, batch_size=args.batch_size, device=device,
                         ten_crop=False, workers=args.workers, amp=args.amp,
                         progress=not args.no_progress):
        maps = wsolevaluation_scoremaps(batch, postprocessor, args.map_size)
        for image_id, score_map in zip(batch["image_id"], maps):
            write_scoremap(inside(out, scoremap_path(out, image_id), "score map"), score_map)
            written += 1
    print(f"wrote {written} score maps ({args.map_size}x{args.map_size}) to {out}")
    return 0


def write_scoremap(path: Path, score_map) -> None:
    from wsolbench.io import atomic_path

    import torch

    array = score_map.detach().cpu().numpy() if torch.is_tensor(score_map) else np.asarray(score_map)
    array = np.clip(np.nan_to_num(array.astype(np.float32), nan=0.0), 0.0, 1.0)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # np.save on a path would append ".npy"
            np.save(handle, array)
