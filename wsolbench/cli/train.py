"""`wsolbench train`: train one method on one dataset (alone or under torchrun)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from rich.console import Console
from rich.table import Table

from wsolbench.cli import add_command
from wsolbench.engine.config import TrainConfig, field_default
from wsolbench.errors import WsolbenchError
from wsolbench.options import Option, flag_type, parse_bool, parse_key_values  # noqa: F401
from wsolbench.registry import check_method


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


# Where each flag appears in `train --help`; the rest are optimization flags.
_GROUPS = {
    "method": "model",
    "backbone": "model",
    "recipe": "model",
    "pretrained": "model",
    "weights": "model",
    "large_feature_map": "model",
    "data": "data",
    "image_root": "data",
    "metadata_root": "data",
    "dataset": "data",
    "num_classes": "data",
    "image_size": "data",
    "resize_size": "data",
    "workers": "run",
    "device": "run",
    "amp": "run",
    "channels_last": "run",
}
_SWITCHES = frozenset({"large_feature_map"})  # plain on/off flags


def add_train_arguments(parser) -> None:
    """One `--flag` per TrainConfig field marked `flag`, typed and checked by its Option;
    defaults come from the dataclass, so `--help` shows what a run gets."""
    groups: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if not f.metadata["flag"]:
            continue
        option: Option = f.metadata["option"]
        group_name = _GROUPS.get(f.name, "optimization")
        group = groups.get(group_name) or groups.setdefault(
            group_name, parser.add_argument_group(group_name)
        )
        default = field_default(f)
        shown = "none" if default in (None, [], "") else "%(default)s"
        text = f.metadata["help"]
        text = text if "(default:" in text else f"{text} (default: {shown})"
        kwargs = dict(dest=f.name, default=default, help=text)
        if option.kind is bool and default is False and f.name in _SWITCHES:
            kwargs.update(action="store_true")
        else:
            if option.choices is not None:
                kwargs["choices"] = option.choices
            else:
                kwargs["type"] = flag_type(option)
                kwargs["metavar"] = f.metadata["metavar"] or (
                    "BOOL" if option.kind is bool else "VALUE"
                )
            if option.kind is bool:
                kwargs.update(nargs="?", const=True)
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def config_from_args(args, hparams: dict[str, Any], **run: Any) -> TrainConfig:
    """A TrainConfig from parsed `train` flags (every flag field) plus run-only values."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.metadata["flag"]}
    flags = {name: "--" + name.replace("_", "-") for name in values}
    return TrainConfig.checked({**run, **values, "hparams": hparams}, flags)


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
        console.print(f"weights sha256: {checkpoint_hash(path)}", soft_wrap=True)
    distributed.shutdown()
    return 0
