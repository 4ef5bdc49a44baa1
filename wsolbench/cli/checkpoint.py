"""`wsolbench checkpoint import`: a model trained with the reference code, as a wsolbench
checkpoint (`load_model`, `--checkpoint` of infer/scg read it)."""

from __future__ import annotations

import argparse

from wsolbench.cli import add_command
from wsolbench.options import Option, flag_type


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "checkpoint",
        help="Import checkpoints trained with the reference code.",
        description="Checkpoints from other code bases.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imported = add_command(
        actions,
        "import",
        help="Convert a checkpoint of a reference code (wsolevaluation, SPA, BAS, TS-CAM, "
        "SCM) to wsolbench's.",
        description="Read a checkpoint trained with the reference code (wsolevaluation's "
        "{'state_dict': ...}, the SPA code's, BAS's bare CUB state dicts and its ILSVRC ones "
        "with the copies of their late layers (*_copy, MobileNetV1's erase_branch: ignored, "
        "the reference refreshes them from the originals at every forward), TS-CAM's and SCM's {'epoch', 'state_dict', 'best_map'}; DataParallel's "
        "'module.' prefix is removed) with torch.load(weights_only=True), map every tensor to "
        "wsolbench's names with the method's reference_names(), check names and shapes, and "
        "write a wsolbench checkpoint. Give the method, backbone, class count, feature-map "
        "variant and hyperparameters the reference model was built with (BAS: --hparam "
        "variant=cub|ilsvrc, the code that trained it).",
    )
    imported.add_argument("reference", metavar="PATH", help="the reference code's checkpoint")
    imported.add_argument(
        "--method",
        required=True,
        metavar="NAME",
        help="wsolbench method (wsolevaluation's cam, has, cutmix, adl, acol, spg; spa; bas; "
        "tscam, scm)",
    )
    imported.add_argument(
        "--backbone",
        required=True,
        metavar="NAME",
        help="vgg16, resnet50, inception_v3, mobilenet_v1 (BAS) or deit_small (TS-CAM, SCM)",
    )
    imported.add_argument(
        "--num-classes",
        required=True,
        type=flag_type(Option(int, low=1, high=100_000)),
        metavar="N",
        help="classes of the trained model (CUB 200, ILSVRC 1000)",
    )
    imported.add_argument(
        "--large-feature-map",
        action="store_true",
        help="the model was trained with --large_feature_map (default: off)",
    )
    imported.add_argument(
        "--hparam",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method hyperparameter the model was trained with, repeatable "
        "(e.g. erase_threshold=0.6 for ACoL, variant=ilsvrc for BAS) (default: none)",
    )
    imported.add_argument(
        "--out", required=True, metavar="PATH", help="wsolbench checkpoint to write"
    )
    imported.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from rich.console import Console

    from wsolbench.engine.checkpoint import import_reference_checkpoint, is_checkpoint
    from wsolbench.io import claim_file, declare_inputs
    from wsolbench.options import parse_key_values
    from wsolbench.registry import check_method

    hparams = check_method(
        args.method,
        args.backbone,
        parse_key_values(args.hparam, "--hparam"),
        "--hparam",
        None,
        args.large_feature_map,
        keys=("--method", "--backbone"),
    )
    declare_inputs(args.reference)
    claim_file(args.out, "checkpoint (--out)", recognize=is_checkpoint)
    model = import_reference_checkpoint(
        args.reference,
        args.method,
        args.backbone,
        args.num_classes,
        large_feature_map=args.large_feature_map,
        out=args.out,
        **hparams,
    )
    tensors = len(model.state_dict())
    Console().print(
        f"{args.reference}: {tensors} tensors -> {args.out} ({args.method}, {args.backbone})"
    )
    return 0
