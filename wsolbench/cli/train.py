"""`wsolbench train`: train one method on one dataset (alone or under torchrun)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from wsolbench.cli import add_command
from wsolbench.engine.config import (
    TrainConfig,
    add_train_arguments,
    check_method,
    config_from_args,
    parse_key_values,
)
from wsolbench.errors import WsolbenchError
from wsolbench.options import parse_bool  # noqa: F401  (re-exported: other commands' BOOL flags)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "train",
        help="Train a WSOL method (SGD, wsolevaluation recipe; DDP under torchrun).",
        description="Train a WSOL method on a dataset's train split (labels only: boxes never "
        "reach training). Writes <out>/last.pt every epoch (loads with weights_only=True), "
        "<out>/config.json and <out>/history.json. Several GPUs: "
        "`torchrun --nproc_per_node=N -m wsolbench train ...`. Every flag is checked before "
        "any data is read; the flags are the fields of TrainConfig (a suite's [train] keys).",
    )
    add_train_arguments(parser)
    parser.add_argument(
        "--hparam",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method hyperparameter, repeatable; checked against the method's "
        "defaults (key and type) and its constructor (range) (default: none)",
    )
    run = parser.add_argument_group("output")
    run.add_argument(
        "--out",
        default=TrainConfig.__dataclass_fields__["out_dir"].default,
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue from <out>/last.pt if it exists (default: off)",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous run in <out> (default: off: a finished run is kept)",
    )
    run.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (default: shown)"
    )
    parser.set_defaults(func=run_train)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The checked TrainConfig of the parsed flags (method, hyperparameters and all)."""
    if args.data is None and (args.image_root is None or args.metadata_root is None):
        raise WsolbenchError("give --data DIR, or both --image-root and --metadata-root")
    hparams = parse_key_values(args.hparam, "--hparam")
    config = config_from_args(
        args,
        hparams,
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    config.hparams = check_method(
        config.method,
        config.backbone,
        hparams,
        "--hparam",
        None,
        config.large_feature_map,
        keys=("--method", "--backbone"),
    )
    return config


def run_train(args: argparse.Namespace) -> int:
    from wsolbench.engine import distributed
    from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint
    from wsolbench.engine.train import train

    config = train_config(args)
    path = train(config).checkpoint
    if distributed.is_main():
        history = load_checkpoint(path).get("history", [])
        table = Table(title=f"{config.method} on {config.backbone}: training")
        for column in ("epoch", "loss", "accuracy %", "images/s", "lr"):
            table.add_column(column, justify="right")
        for row in history:
            table.add_row(
                str(row["epoch"]),
                f"{row['loss']:.4f}",
                f"{row['accuracy']:.2f}",
                f"{row['images_per_second']:,.0f}",
                f"{row['lr']:.3g}",
            )
        console = Console()
        console.print(table)
        console.print(f"checkpoint: {path}", soft_wrap=True)
        console.print(f"config hash: {config.config_hash()}", soft_wrap=True)
        console.print(f"checkpoint sha256: {checkpoint_hash(path)}", soft_wrap=True)
    distributed.shutdown()
    return 0
