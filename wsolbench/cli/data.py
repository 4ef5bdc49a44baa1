"""`wsolbench data`: generate the synthetic benchmark, convert native datasets, validate splits."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wsolbench.cli import add_command
from wsolbench.data.converters import CUB_STYLES
from wsolbench.io import claim_folder, declare_inputs
from wsolbench.options import Option, flag_type

_COUNT = flag_type(Option(int, low=1, high=1_000_000))
_SEED = flag_type(Option(int, low=0, high=2**32 - 1))
_PROBABILITY = flag_type(Option(float, low=0, high=1))

console = Console()
METADATA = "metadata"  # the writer's marker of a folder of converted metadata


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "data",
        help="Generate the synthetic benchmark, convert datasets, validate metadata.",
        description="Data in the wsolevaluation metadata format: generate the embedded synthetic "
        "benchmark, convert CUB-200-2011 / ILSVRC / OpenImages from their native layouts, or "
        "validate a split folder.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _register_synth(commands)
    _register_convert(commands)
    _register_validate(commands)


def _register_synth(commands) -> None:
    p = add_command(
        commands,
        "synth",
        help="Write the synthetic WSOL benchmark (images, masks, metadata).",
        description="Write the synthetic WSOL benchmark: OUT/images, OUT/masks and "
        "OUT/metadata/{train,val,test} (see docs/synthetic.md). Same seed, same bytes.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=_SEED, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--num-classes",
        type=flag_type(Option(int, low=2, high=64)),
        default=10,
        help="number of classes, 2..64 (default: %(default)s)",
    )
    p.add_argument(
        "--image-size",
        type=flag_type(Option(int, low=32, high=1024)),
        default=64,
        help="nominal image side; width and height vary in [7/8, 5/4] of it (default: %(default)s)",
    )
    p.add_argument(
        "--train-per-class",
        type=_COUNT,
        default=80,
        help="training images per class (default: %(default)s)",
    )
    p.add_argument(
        "--val-per-class",
        type=_COUNT,
        default=5,
        help="val (train-fullsup) images per class, for threshold selection (default: %(default)s)",
    )
    p.add_argument(
        "--test-per-class",
        type=_COUNT,
        default=20,
        help="test images per class (default: %(default)s)",
    )
    p.add_argument(
        "--multi-instance-prob",
        type=_PROBABILITY,
        default=0.15,
        help="fraction of images with 2-3 instances of the class (default: %(default)s)",
    )
    p.add_argument(
        "--body-class-corr",
        type=_PROBABILITY,
        default=0.35,
        help="chance that an object's body texture is one of its class's own (default: %(default)s)",
    )
    p.add_argument(
        "--fake-part-prob",
        type=_PROBABILITY,
        default=0.1,
        help="chance of a fake part of another class in the background (default: %(default)s)",
    )
    p.set_defaults(func=_synth)


def _register_convert(commands) -> None:
    p = add_command(
        commands, "convert", help="Convert a dataset from its native layout to the metadata format."
    )
    kinds = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    cub = add_command(
        kinds,
        "cub",
        help="CUB-200-2011 -> OUT/{train,val,test}.",
        description="Convert CUB_200_2011 (images.txt, image_class_labels.txt, "
        "train_test_split.txt, bounding_boxes.txt, images/) to OUT/{train,val,test} in one "
        "reference's style: wsolevaluation (train all 5,994, val its CUBV2 split, boxes "
        "x + w) or spa (train all 5,994, val drawn from them, boxes x + w - 1). A suite needs "
        "one style and refuses the other. Image ids are relative to ROOT/images.",
    )
    cub.add_argument("--root", type=Path, required=True, help="the CUB_200_2011 folder")
    cub.add_argument("--out", type=Path, required=True, help="output metadata folder")
    cub.add_argument(
        "--style",
        required=True,
        choices=CUB_STYLES,
        help="whose splits and boxes: wsolevaluation's suites or the SPA suites' (required)",
    )
    cub.add_argument(
        "--val-metadata",
        type=Path,
        default=None,
        metavar="DIR",
        help="wsolevaluation style: its metadata/CUB/val (CUBV2; the images under "
        "ROOT/images) (required for that style)",
    )
    cub.add_argument(
        "--val-per-class",
        type=_COUNT,
        default=5,
        help="spa style: training images per class drawn for val (default: %(default)s)",
    )
    cub.add_argument(
        "--seed", type=_SEED, default=0, help="seed of the val draw (default: %(default)s)"
    )
    cub.set_defaults(func=_convert_cub)

    ilsvrc = add_command(
        kinds,
        "ilsvrc",
        help="ILSVRC validation XMLs -> one split folder.",
        description="Convert a folder of ILSVRC validation XML annotations to one split folder.",
    )
    ilsvrc.add_argument(
        "--annotations", type=Path, required=True, help="folder of <image>.xml files"
    )
    ilsvrc.add_argument(
        "--out", type=Path, required=True, help="output split folder (e.g. metadata/ILSVRC/test)"
    )
    ilsvrc.add_argument(
        "--synsets",
        type=Path,
        default=None,
        help="file whose lines start with a wnid, in label order (default: the sorted "
        "synsets of the annotations)",
    )
    ilsvrc.add_argument(
        "--image-prefix", default="val/", help="prefix of image ids (default: %(default)s)"
    )
    ilsvrc.add_argument(
        "--extension", default=".JPEG", help="image file extension (default: %(default)s)"
    )
    ilsvrc.set_defaults(func=_convert_ilsvrc)

    oi = add_command(
        kinds,
        "openimages",
        help="Validate and copy OpenImages30k metadata.",
        description="Validate wsolevaluation's OpenImages metadata (a folder with train/val/test "
        "or one split folder) and copy it to OUT.",
    )
    oi.add_argument("--metadata-root", type=Path, required=True, help="source metadata folder")
    oi.add_argument("--out", type=Path, required=True, help="output folder")
    oi.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="check that images exist here (default: not checked)",
    )
    oi.add_argument(
        "--mask-root",
        type=Path,
        default=None,
        help="check that masks exist here (default: not checked)",
    )
    oi.set_defaults(func=_convert_openimages)
    _register_mask_converters(kinds)


def _register_mask_converters(kinds) -> None:
    lid = add_command(
        kinds,
        "ilsvrc-lid",
        help="ILSVRC validation images with LID-challenge masks -> one split folder.",
        description="Convert the ILSVRC validation images listed in the LID-challenge mask release "
        "(MASKS/val_mask.txt, MASKS/images/<image>.png; 23,151 images, SEM's val split, as SPA and "
        "SPA2Net use it) to one split folder with boxes (from the XMLs) and masks "
        "(mask_localization.txt, paths relative to MASKS: use it as dataset.mask_root).",
    )
    lid.add_argument(
        "--annotations",
        type=Path,
        required=True,
        help="folder of ILSVRC validation <image>.xml files",
    )
    lid.add_argument("--masks", type=Path, required=True, help="the LID mask release folder")
    lid.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output split folder (e.g. metadata/ILSVRC-LID/test)",
    )
    lid.add_argument(
        "--synsets",
        type=Path,
        default=None,
        help="file whose lines start with a wnid, in label order (default: the sorted synsets "
        "of the listed annotations; pass LOC_synset_mapping.txt for ImageNet's labels)",
    )
    lid.add_argument(
        "--list",
        type=Path,
        default=None,
        dest="mask_list",
        help="image list to convert (default: MASKS/val_mask.txt)",
    )
    lid.add_argument(
        "--image-prefix", default="val/", help="prefix of image ids (default: %(default)s)"
    )
    lid.add_argument(
        "--extension", default=".JPEG", help="image file extension (default: %(default)s)"
    )
    lid.set_defaults(func=_convert_ilsvrc_lid)

    seg = add_command(
        kinds,
        "cub-segmentations",
        help="Add CUB-200-2011 segmentation masks to converted CUB splits.",
        description="Binarize CUB-200-2011's soft segmentations (segmentations/<class>/<image>.png; "
        "foreground = value > 128 of 255, the peak protocol's rule) into MASK_OUT and list them in "
        "mask_localization.txt of METADATA/val and METADATA/test (run `data convert cub` first; "
        "use MASK_OUT as dataset.mask_root).",
    )
    seg.add_argument(
        "--metadata",
        type=Path,
        required=True,
        help="converted CUB metadata folder (holds val/ and test/)",
    )
    seg.add_argument("--segmentations", type=Path, required=True, help="the segmentations folder")
    seg.add_argument("--mask-out", type=Path, required=True, help="folder for the binary masks")
    seg.set_defaults(func=_convert_cub_segmentations)


def _register_validate(commands) -> None:
    p = add_command(
        commands,
        "validate",
        help="Check a split folder (and optionally its files).",
        description="Read and validate a metadata split folder, or each split of a folder "
        "of splits (metadata/CUB: train, val, test); exits 0 with a summary when valid, 2 with "
        "the offending file and line otherwise.",
    )
    p.add_argument(
        "--metadata-root",
        type=Path,
        required=True,
        metavar="DIR",
        help="a split folder (e.g. metadata/CUB/test) or a folder of splits "
        "(e.g. metadata/CUB: each split is validated)",
    )
    p.add_argument(
        "--image-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="check that every image exists here (default: not checked)",
    )
    p.add_argument(
        "--mask-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="open every mask here and check its size against its image (default: not checked)",
    )
    p.add_argument(
        "--num-classes",
        type=flag_type(Option(int, low=1, high=100_000)),
        default=None,
        metavar="N",
        help="check every label is in 0..N-1 (default: labels are only checked to be >= 0)",
    )
    p.set_defaults(func=_validate)


# ----------------------------------------------------------------------------- actions


def _synth(args: argparse.Namespace) -> int:
    from wsolbench.data.synthetic import KIND, generate

    claim_folder(args.out, "benchmark folder (--out)", KIND)

    with Progress(
        TextColumn("synthesizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("synth", total=None)
        out = generate(
            args.out,
            seed=args.seed,
            num_classes=args.num_classes,
            image_size=args.image_size,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            test_per_class=args.test_per_class,
            multi_instance_prob=args.multi_instance_prob,
            body_class_corr=args.body_class_corr,
            fake_part_prob=args.fake_part_prob,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    _summaries(out / "metadata", ("train", "val", "test"), title=f"synthetic benchmark in {out}")
    return 0


def _convert_cub(args: argparse.Namespace) -> int:
    declare_inputs(args.root)
    claim_folder(args.out, "metadata folder (--out)", METADATA)
    from wsolbench.data.converters import convert_cub

    convert_cub(
        args.root,
        args.out,
        args.style,
        val_metadata=args.val_metadata,
        val_per_class=args.val_per_class,
        seed=args.seed,
    )
    _summaries(args.out, ("train", "val", "test"), title=f"CUB metadata in {args.out}")
    return 0


def _convert_ilsvrc(args: argparse.Namespace) -> int:
    declare_inputs(args.annotations, args.synsets)
    claim_folder(args.out, "split folder (--out)", METADATA)
    from wsolbench.data.converters import convert_ilsvrc

    convert_ilsvrc(
        args.annotations,
        args.out,
        synsets=args.synsets,
        image_prefix=args.image_prefix,
        extension=args.extension,
    )
    _summaries(args.out.parent, (args.out.name,), title=f"ILSVRC metadata in {args.out}")
    return 0


def _convert_openimages(args: argparse.Namespace) -> int:
    declare_inputs(args.metadata_root, args.image_root, args.mask_root)
    claim_folder(args.out, "metadata folder (--out)", METADATA)
    from wsolbench.data.converters import convert_openimages

    splits = convert_openimages(args.metadata_root, args.out, args.image_root, args.mask_root)
    names = [n for n in splits if (args.out / n).is_dir()]
    if names:
        _summaries(args.out, names, title=f"OpenImages metadata in {args.out}")
    else:
        _summaries(args.out.parent, (args.out.name,), title=f"OpenImages metadata in {args.out}")
    return 0


def _convert_ilsvrc_lid(args: argparse.Namespace) -> int:
    from wsolbench.data.converters import convert_ilsvrc_lid

    declare_inputs(args.annotations, args.masks, args.synsets, args.mask_list)
    claim_folder(args.out, "split folder (--out)", METADATA)

    _, swapped = convert_ilsvrc_lid(
        args.annotations,
        args.masks,
        args.out,
        synsets=args.synsets,
        image_prefix=args.image_prefix,
        extension=args.extension,
        mask_list=args.mask_list,
    )
    _summaries(
        args.out.parent, (args.out.name,), title=f"ILSVRC metadata with LID masks in {args.out}"
    )
    _swapped_note(swapped)
    return 0


def _convert_cub_segmentations(args: argparse.Namespace) -> int:
    from wsolbench.data.converters import convert_cub_segmentations

    declare_inputs(args.segmentations)
    claim_folder(args.metadata, "converted CUB metadata (--metadata)", METADATA)
    claim_folder(args.mask_out, "mask folder (--mask-out)", "masks")

    splits = convert_cub_segmentations(args.metadata, args.segmentations, args.mask_out)
    _summaries(args.metadata, tuple(splits), title=f"CUB metadata with masks in {args.metadata}")
    return 0


def _swapped_note(names) -> None:
    if names:
        console.print(
            f"note: the masks of {', '.join(names)} have their image's width and height swapped "
            "(known LID samples); kept as released, the map is resized to the mask when scored",
            highlight=False,
            soft_wrap=True,
        )


def _validate(args: argparse.Namespace) -> int:
    from wsolbench.data.metadata import check_labels, read_split, split_folders, validate_files

    folders = split_folders(args.metadata_root)
    rows = []
    for folder in folders:
        split = read_split(folder)
        check_labels(split, args.num_classes, what="--num-classes")
        if args.image_root is not None or args.mask_root is not None:
            swapped = validate_files(split, args.image_root, args.mask_root)
            _swapped_note([split.image_ids[i] for i in swapped])
        rows.append((folder.name, split))
    checked = [
        name
        for name, root in (("images found", args.image_root), ("masks read", args.mask_root))
        if root
    ]
    files = f"; {' and '.join(checked)}" if checked else ""
    which = "" if folders == [args.metadata_root] else f" ({len(folders)} splits, each checked)"
    _print_table(rows, f"valid: {args.metadata_root}{which}{files}")
    return 0


def _summaries(root: Path, names, title: str | None, show: bool = True):
    from wsolbench.data.metadata import read_split

    splits = [read_split(Path(root) / name) for name in names]
    if show:
        _print_table(list(zip(names, splits)), title)
    return splits


def _print_table(rows, title: str | None) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("split", "images", "classes", "boxes", "masks", "multi-box", "sizes (W x H)"):
        table.add_column(
            column, justify="left" if column in ("split", "sizes (W x H)") else "right"
        )
    for name, split in rows:
        multi = "-" if split.boxes is None else str(sum(len(b) > 1 for b in split.boxes))
        sizes = "-"
        if split.sizes is not None and len(split):
            lo, hi = split.sizes.min(axis=0), split.sizes.max(axis=0)
            sizes = f"{lo[0]}..{hi[0]} x {lo[1]}..{hi[1]}"
        table.add_row(
            name,
            str(len(split)),
            str(len(set(split.labels.tolist()))),
            str(split.num_boxes),
            str(split.num_masks),
            multi,
            sizes,
        )
    console.print(table)
