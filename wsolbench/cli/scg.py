"""`wsolbench scg figures`: SCG's pictures for a trained checkpoint (the SPA paper's Fig. 1, 6)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wsolbench.cli import add_command
from wsolbench.errors import WsolbenchError
from wsolbench.options import Option, flag_type


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "scg",
        help="SCG, the self-correlation post-processor: pictures of what it does.",
        description="SCG (the SPA paper's self-correlation map generation) post-processes any "
        "method's class map with two feature taps. Use it in `wsolbench infer/evaluate` with "
        "`--postprocessor scg`; this command draws it.",
    )
    commands = parser.add_subparsers(dest="scg_command", metavar="COMMAND", required=True)
    figures = add_command(
        commands,
        "figures",
        help="Draw self-correlation maps of chosen points and the SCG process, as PNG files.",
        description="For the first images of a split, write <out>/<n>_<id>_self_correlation.png "
        "(first- and second-order self-correlation maps of chosen points over the image, the "
        "paper's Fig. 1) and <out>/<n>_<id>_scg_process.png (CAM, object map, background map, "
        "final SCG map, Fig. 6), for the ground-truth class.",
    )
    figures.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="a checkpoint written by `wsolbench train` (required)",
    )
    figures.add_argument(
        "--metadata-root",
        metavar="SPLIT",
        default=None,
        help="the split's metadata folder, e.g. metadata/CUB/test (with --image-root; or --data)",
    )
    figures.add_argument(
        "--image-root",
        metavar="DIR",
        default=None,
        help="root the split's image ids are relative to (with --metadata-root)",
    )
    figures.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="instead: a dataset root with images/ and metadata/<split>/ (the synthetic layout)",
    )
    figures.add_argument(
        "--split", default="test", help="--data's split to draw from (default: %(default)s)"
    )
    figures.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the PNG files (required)"
    )
    figures.add_argument(
        "--num-images",
        type=flag_type(Option(int, low=1, high=1000)),
        default=4,
        help="how many images, from the split's start (default: %(default)s)",
    )
    figures.add_argument(
        "--points",
        nargs="+",
        default=None,
        metavar="Y,X",
        help="points whose self-correlation is drawn, as fractions of the image "
        "height and width, e.g. 0.5,0.5 0.1,0.9 (default: the CAM's peak and its lowest point)",
    )
    figures.add_argument(
        "--preset",
        choices=("ilsvrc", "cub"),
        default="ilsvrc",
        help="official SCG thresholds of this dataset (default: %(default)s)",
    )
    figures.add_argument(
        "--variant",
        choices=("official", "paper"),
        default="official",
        help="the released code's formulas or the paper's (default: %(default)s)",
    )
    figures.add_argument(
        "--image-size",
        type=flag_type(Option(int, low=1, high=4096)),
        default=None,
        help="network input size (default: the checkpoint's training image size)",
    )
    figures.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)"
    )
    figures.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (default: shown)"
    )
    figures.set_defaults(func=run_figures)


def parse_points(items: list[str] | None) -> list[tuple[float, float]] | None:
    if not items:
        return None
    points = []
    for item in items:
        try:
            y, x = (float(v) for v in item.split(","))
        except ValueError:
            raise WsolbenchError(
                f"--points expects Y,X fractions such as 0.5,0.25, got '{item}'"
            ) from None
        if not (0 <= y <= 1 and 0 <= x <= 1):
            raise WsolbenchError(f"--points fractions must lie in [0, 1], got '{item}'")
        points.append((y, x))
    return points


def figure_split(args: argparse.Namespace) -> tuple[Path, Path]:
    """The split's metadata folder and image root: ``--metadata-root`` with ``--image-root``
    (any dataset, as `infer` and `evaluate` take it), or ``--data`` with ``--split``."""
    if args.metadata_root is not None or args.image_root is not None:
        if args.data is not None:
            raise WsolbenchError(
                "give --metadata-root with --image-root, or --data (with --split), not both"
            )
        if args.metadata_root is None or args.image_root is None:
            missing = "--image-root" if args.image_root is None else "--metadata-root"
            raise WsolbenchError(
                f"{missing} is missing: --metadata-root SPLIT and --image-root DIR go together"
            )
        return Path(args.metadata_root), Path(args.image_root)
    if args.data is None:
        raise WsolbenchError(
            "which images? give --metadata-root SPLIT --image-root DIR (e.g. metadata/CUB/test "
            "and CUB_200_2011/images), or --data DIR of the synthetic layout"
        )
    data = Path(args.data)
    metadata = data / "metadata" / args.split
    if not metadata.is_dir():
        raise WsolbenchError(f"no metadata folder for split '{args.split}'", metadata)
    return metadata, data / "images"


def run_figures(args: argparse.Namespace) -> int:
    from wsolbench.data.datasets import EvalDataset, check_images
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.checkpoint import (
        load_checkpoint,
        model_from_checkpoint,
        trained_image_size,
    )
    from wsolbench.engine.device import check_device, resolve_device
    from wsolbench.io import claim_folder, declare_inputs
    from wsolbench.methods.scg import SCG
    from wsolbench.report.scg_figures import render_scg_figures

    points = parse_points(args.points)
    check_device(args.device, "--device")
    metadata, image_root = figure_split(args)
    declare_inputs(args.checkpoint, metadata, image_root)
    claim_folder(args.out, "figures folder (--out)", "scg-figures")
    device = resolve_device(args.device, "--device")
    checkpoint = load_checkpoint(args.checkpoint)
    image_size = args.image_size or trained_image_size(checkpoint, args.checkpoint)
    split = read_split(metadata)
    check_images(split.subset(range(min(args.num_images, len(split)))), image_root)
    model = model_from_checkpoint(checkpoint, args.checkpoint, device=device)
    dataset = EvalDataset(split, image_root, image_size)
    scg = SCG.from_preset(args.preset, variant=args.variant)
    written = render_scg_figures(
        model,
        dataset,
        Path(args.out),
        scg,
        args.num_images,
        points,
        device,
        progress=not args.no_progress,
    )
    table = Table(title=f"SCG figures ({args.preset}, {args.variant})")
    table.add_column("image")
    table.add_column("file")
    for path in written:
        table.add_row(path.name.split("_")[0], str(path))
    Console().print(table)
    return 0
