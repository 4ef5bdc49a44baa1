"""`wsolbench evaluate`: score maps on disk (``<root>/<image_id>.npy``) against a split's boxes
and/or masks.

Without ``--protocol``: the maps are score maps in [0, 1] (or ``--normalize minmax``), scored
exactly as wsolevaluation does (MaxBoxAcc, MaxBoxAccV2, PxAP) plus Peak-IoU. With ``--protocol
NAME`` (or ``all``): the maps are the RAW class maps a model wrote (the GT class's, 2-D, or every
class's, (C, H, W)), each protocol prepares them by its own rules, ``--predictions`` adds Top-1
/ Top-5 Loc, and the JSON holds each protocol's metrics with their per-threshold curves."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from wsolbench import defaults
from wsolbench.cli import add_command
from wsolbench.errors import ScoreMapError, WsolbenchError
from wsolbench.io import claim_file, declare_inputs, write_json
from wsolbench.options import Option, flag_type

if TYPE_CHECKING:  # torch is imported where it is used, so `wsolbench --help` stays fast
    import torch

console = Console()
PROTOCOLS = ("wsolevaluation", "peak")  # what maps on disk can be scored by


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "evaluate",
        help="Score saved score maps (MaxBoxAcc, MaxBoxAccV2, PxAP, Peak-IoU).",
        description="Score maps saved as SCOREMAP_ROOT/<image_id>.npy against a metadata split, "
        "with wsolevaluation's exact protocol: boxes give MaxBoxAcc and MaxBoxAccV2, masks "
        "(OpenImages format, read from --mask-root) give PxAP and Peak-IoU / Peak-T.",
    )
    parser.add_argument(
        "--metadata-root",
        type=Path,
        required=True,
        help="split folder (image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt)",
    )
    parser.add_argument(
        "--scoremap-root",
        type=Path,
        required=True,
        help="folder of <image_id>.npy score maps, one per image of the split; other "
        ".npy files (another split's maps) are left alone, as wsolevaluation does",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse .npy files beside the split's maps that belong to no image of the "
        "split (default: ignore and count them)",
    )
    parser.add_argument(
        "--mask-root",
        type=Path,
        default=None,
        help="folder the mask PNG paths of the split are relative to (default: none; needed for mask splits)",
    )
    parser.add_argument(
        "--protocol",
        metavar="NAME",
        default=None,
        help="score RAW class maps under this protocol (wsolevaluation, spa, peak, tscam, scm, "
        "bas, dawsol: `wsolbench list protocols`) or 'all' of them in one pass, each "
        "preparing the maps by its own rules (default: none, maps are score maps in [0, 1] "
        "scored as wsolevaluation does)",
    )
    parser.add_argument(
        "--dataset",
        choices=("cub", "ilsvrc"),
        default=None,
        help="the dataset defaults of a family's protocol: its box threshold and box "
        "conventions (default: the protocol's own, cub)",
    )
    parser.add_argument(
        "--box-threshold",
        type=flag_type(Option(float, low=0, high=1, high_open=True)),
        default=None,
        metavar="T",
        help="the box threshold of a protocol that fixes one (tscam, bas, spa), instead of its "
        "dataset default",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="CSV",
        help="each image's top-5 classes, lines 'image_id,top1,...,top5' without a header "
        "(class indices as in class_labels.txt): enables Top-1 / Top-5 Loc",
    )
    parser.add_argument(
        "--cam-curve-interval",
        type=flag_type(Option(float, low=1e-4, high=1, high_open=True)),
        default=None,
        metavar="STEP",
        help="step of the CAM thresholds arange(0, 1, step) (default: the protocol's own; "
        f"wsolevaluation: {defaults.CAM_CURVE_INTERVAL}, as its main.py; its evaluation.py "
        "command line uses 0.01)",
    )
    parser.add_argument(
        "--iou-thresholds",
        type=flag_type(Option(int, low=1, high=100)),
        nargs="+",
        default=None,
        metavar="PERCENT",
        help="IoU thresholds in percent averaged by MaxBoxAccV2 (default: the protocol's own, "
        "30 50 70)",
    )
    parser.add_argument(
        "--normalize",
        choices=("none", "minmax"),
        default="none",
        help="'minmax': wsolevaluation's CAM computer (bicubic resize to 224x224, NaN or "
        "constant -> zeros, min-max); 'none': maps must already be in [0, 1] (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="write the results as JSON here, atomically (default: print only)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where quantization and histograms run; 'auto' = cuda when available (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=flag_type(Option(int, low=1, high=64)),
        default=4,
        metavar="N",
        help="threads reading maps and masks ahead of scoring, at most one per CPU "
        "(default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.map_loader import ScoreMapLoader
    from wsolbench.evaluation import Evaluator, create_protocols

    declare_inputs(args.metadata_root, args.scoremap_root, args.mask_root)
    if args.output is not None:
        claim_file(args.output, "results file (--output)", recognize=is_results_file)
    split = read_split(args.metadata_root)
    if not len(split):
        raise WsolbenchError("the split has no images", args.metadata_root)
    if split.boxes is None and split.masks is None:
        raise WsolbenchError(
            "the split has neither boxes nor masks to evaluate", args.metadata_root
        )
    if split.masks is not None and split.boxes is None and args.mask_root is None:
        raise WsolbenchError("this split has masks: give --mask-root", args.metadata_root)
    use_masks = split.masks is not None and args.mask_root is not None
    if split.boxes is not None and split.sizes is None:
        raise WsolbenchError("boxes need image_sizes.txt to be rescaled", args.metadata_root)
    if not args.scoremap_root.is_dir():
        raise ScoreMapError("score map folder not found", args.scoremap_root)
    if args.strict:  # refused before any work; otherwise counted after it, for the message
        _other_maps(args.scoremap_root, split.image_ids, strict=True)
    if args.protocol is not None:
        from wsolbench.cli.evaluate_protocols import run_protocols

        return run_protocols(args, split, use_masks, console)
    device = _device(args.device)
    # The maps on disk are score maps already (or prepared here by --normalize): the
    # wsolevaluation protocol's rules for the ground truth, and Peak-IoU where masks are given.
    protocols = create_protocols(protocol_settings(args), names=PROTOCOLS)
    evaluator = Evaluator(protocols.values(), boxes=split.boxes is not None, masks=use_masks)

    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("maps", total=len(split))
        maps = ScoreMapLoader(
            split,
            args.scoremap_root,
            normalize=args.normalize,
            map_size=protocols["wsolevaluation"].map_size,
            mask_root=args.mask_root if use_masks else None,
            device=device,
            workers=args.workers,
        )
        for batch in maps:
            evaluator.update(batch)
            progress.advance(task, len(batch.scoremaps))
    results = {"protocol": "wsolevaluation", **evaluator.summary(), "num_images": len(split)}
    _print_table(results, protocols)
    ignored = 0 if args.strict else _other_maps(args.scoremap_root, split.image_ids, strict=False)
    if ignored:
        console.print(
            f"ignored {ignored} other .npy file(s) beside the split's maps in {args.scoremap_root} "
            "(another split's maps; --strict refuses them)",
            soft_wrap=True,
        )
    if args.output is not None:
        write_json(args.output, results)
        console.print(f"results written to {args.output}")
    return 0


def protocol_settings(args: argparse.Namespace) -> dict:
    """The protocol settings the command line gives (the rest are each protocol's defaults)."""
    given = {
        "cam_curve_interval": args.cam_curve_interval,
        "iou_thresholds": args.iou_thresholds,
        "dataset": getattr(args, "dataset", None),
        "box_threshold": getattr(args, "box_threshold", None),
    }
    settings = {key: value for key, value in given.items() if value is not None}
    if "box_threshold" in settings:  # the spa protocol's list of one
        settings["box_thresholds"] = (settings["box_threshold"],)
    return settings


def is_results_file(path: Path) -> bool:
    """Whether ``path`` holds results this command wrote (an `--output` it may replace)."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    return isinstance(data, dict) and "protocol" in data and "num_images" in data


def _device(choice: str) -> torch.device:
    from wsolbench.engine.device import resolve_device

    return resolve_device(choice, "--device")


def _other_maps(root: Path, image_ids: list[str], strict: bool) -> int:
    """How many .npy files under `root` are not maps of the split (file names only: none is
    opened). wsolevaluation's inference writes every split's maps into one root, so a root
    holding val and test maps is normal: they are counted, not read; `strict` refuses them."""
    known = {f"{image_id}.npy" for image_id in image_ids}
    others = 0
    for folder, _, names in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        for name in names:
            if name.endswith(".npy") and prefix + name not in known:
                if strict:
                    raise ScoreMapError(
                        "score map of an image that is not in the split's metadata (--strict)",
                        Path(folder) / name,
                    )
                others += 1
    return others


def _print_table(results: dict, protocols) -> None:
    table = Table(title="wsolevaluation protocol (+ peak with masks)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for protocol in protocols.values():
        for spec in protocol.specs():
            if spec.name in results:
                value = results[spec.name]
                table.add_row(spec.label, f"{value:.{spec.decimals}f}")
    for delta, value in zip(
        results.get("iou_thresholds", []), results.get("MaxBoxAccV2_per_iou", [])
    ):
        table.add_row(f"MaxBoxAccV2 @ IoU {delta}", f"{value:.2f}")
    table.add_row("images", str(results["num_images"]))
    console.print(table)
