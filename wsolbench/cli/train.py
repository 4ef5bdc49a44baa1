"""`wsolbench train`: train one method on one dataset (alone or under torchrun)."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from wsolbench.cli import add_command
from wsolbench.engine.config import TrainConfig, method_hparam_defaults, parse_hparams
from wsolbench.engine.recipes import RECIPES
from wsolbench.errors import WsolbenchError

DEFAULTS = TrainConfig(data=".")


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def parse_milestones(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs, got '{text}'") from None


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "train",
        help="Train a WSOL method (SGD, wsolevaluation or spa recipe; DDP under torchrun).",
        description="Train a WSOL method on a dataset's train split (labels only: boxes never "
        "reach training). Writes <out>/last.pt every epoch (loads with weights_only=True), "
        "<out>/config.json and <out>/history.json. Several GPUs: "
        "`torchrun --nproc_per_node=N -m wsolbench train ...`; --batch-size is the total batch, "
        "divided over the N processes.",
    )
    d = DEFAULTS
    what = parser.add_argument_group("model")
    what.add_argument("--method", metavar="NAME", default=d.method, help="registered method (`wsolbench list`) (default: %(default)s)")
    what.add_argument("--backbone", metavar="NAME", default=d.backbone, help="registered backbone (default: %(default)s)")
    what.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                      help="method hyperparameter, repeatable; values parse as int, float, bool "
                      "or string; keys are checked against the method's defaults (default: none)")
    what.add_argument("--pretrained", type=parse_bool, nargs="?", const=True, default=d.pretrained,
                      metavar="BOOL", help="start from torchvision's ImageNet weights (default: %(default)s)")
    what.add_argument("--weights", default=d.weights, metavar="PATH",
                      help="backbone weights from a local state_dict file (default: none)")
    what.add_argument("--large-feature-map", action="store_true",
                      help="wsolevaluation's large-feature-map backbone variant (default: off)")

    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR",
                      help="dataset root with images/ and metadata/{train,val,test} (the synthetic layout)")
    data.add_argument("--image-root", metavar="DIR", help="image root of a real dataset (instead of --data)")
    data.add_argument("--metadata-root", metavar="DIR", help="folder holding train/ val/ test/ metadata (instead of --data)")
    data.add_argument("--dataset", metavar="NAME", default="", help="dataset name recorded in results (default: the data folder's name)")
    data.add_argument("--num-classes", metavar="N", type=int, default=None, help="number of classes (default: 1 + largest train label)")
    data.add_argument("--image-size", metavar="PX", type=int, default=d.image_size, help="training crop size in pixels (default: %(default)s)")
    data.add_argument("--resize-size", metavar="PX", type=int, default=d.resize_size, help="resize before the random crop (default: %(default)s)")

    optim = parser.add_argument_group("optimization")
    optim.add_argument("--recipe", choices=tuple(RECIPES), default=d.recipe,
                       help="parameter groups and lr schedule of a reference: wsolevaluation (features "
                       "1x / rest 10x by its names, x0.1 every --lr-step epochs one epoch early as its "
                       "adjust_learning_rate) or spa (weights 1x / biases 2x, head 10x / 20x, x0.1 at "
                       "--lr-milestones) (default: %(default)s)")
    optim.add_argument("--epochs", metavar="N", type=int, default=d.epochs, help="epochs (default: %(default)s)")
    optim.add_argument("--batch-size", metavar="N", type=int, default=d.batch_size, help="TOTAL images per step; under torchrun each of the N processes takes N-th of it (default: %(default)s)")
    optim.add_argument("--lr", metavar="LR", type=float, default=d.lr, help="backbone learning rate (default: %(default)s)")
    optim.add_argument("--head-lr-multiplier", metavar="X", type=float, default=d.head_lr_multiplier, help="new layers' lr as a multiple of --lr (default: %(default)s)")
    optim.add_argument("--momentum", metavar="M", type=float, default=d.momentum, help="SGD momentum (default: %(default)s)")
    optim.add_argument("--nesterov", type=parse_bool, default=d.nesterov, metavar="BOOL", help="Nesterov momentum (default: %(default)s)")
    optim.add_argument("--weight-decay", metavar="WD", type=float, default=d.weight_decay, help="weight decay (default: %(default)s)")
    optim.add_argument("--lr-decay", choices=("step", "multistep"), default=d.lr_decay,
                       help="must match the recipe if given: step (wsolevaluation) every --lr-step epochs; "
                       "multistep (spa) at --lr-milestones (default: the recipe's)")
    optim.add_argument("--lr-step", metavar="N", type=int, default=d.lr_step, help="epochs between decays for 'step' (default: %(default)s)")
    optim.add_argument("--lr-milestones", type=parse_milestones, default=[], metavar="E1,E2",
                       help="decay epochs for 'multistep', comma-separated (default: none)")
    optim.add_argument("--lr-gamma", metavar="G", type=float, default=d.lr_gamma, help="decay factor (default: %(default)s)")
    optim.add_argument("--seed", metavar="N", type=int, default=d.seed, help="seed of weights, data order and augmentation (default: %(default)s)")

    run = parser.add_argument_group("run")
    run.add_argument("--out", default=d.out_dir, metavar="DIR", help="output folder (default: %(default)s)")
    run.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists (default: off)")
    run.add_argument("--workers", metavar="N", type=int, default=d.workers, help="data-loading processes (default: %(default)s)")
    run.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    run.add_argument("--amp", type=parse_bool, default=d.amp, metavar="BOOL", help="bf16 autocast, CUDA only; the references train in fp32 (default: %(default)s)")
    run.add_argument("--channels-last", type=parse_bool, default=d.channels_last, metavar="BOOL", help="channels-last memory format, CUDA only (default: %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    parser.set_defaults(func=run_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.data is None and (args.image_root is None or args.metadata_root is None):
        raise WsolbenchError("give --data DIR, or both --image-root and --metadata-root")
    hparams = parse_hparams(args.hparam, method_hparam_defaults(args.method), args.method)
    return TrainConfig(
        method=args.method, recipe=args.recipe, backbone=args.backbone, hparams=hparams, data=args.data,
        image_root=args.image_root, metadata_root=args.metadata_root, dataset=args.dataset,
        num_classes=args.num_classes, image_size=args.image_size, resize_size=args.resize_size,
        large_feature_map=args.large_feature_map, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
        head_lr_multiplier=args.head_lr_multiplier, lr_decay=args.lr_decay, lr_step=args.lr_step,
        lr_milestones=args.lr_milestones, lr_gamma=args.lr_gamma, pretrained=args.pretrained,
        weights=args.weights, seed=args.seed, out_dir=args.out, workers=args.workers,
        device=args.device, amp=args.amp, channels_last=args.channels_last, resume=args.resume,
        progress=not args.no_progress,
    )


def run_train(args: argparse.Namespace) -> int:
    from wsolbench.engine import distributed
    from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint
    from wsolbench.engine.train import train

    config = config_from_args(args)
    path = train(config)
    if distributed.is_main():
        history = load_checkpoint(path).get("history", [])
        table = Table(title=f"{config.method} on {config.backbone}: training")
        for column in ("epoch", "loss", "accuracy %", "images/s", "lr"):
            table.add_column(column, justify="right")
        for row in history:
            table.add_row(
                str(row["epoch"]), f"{row['loss']:.4f}", f"{row['accuracy']:.2f}",
                f"{row['images_per_second']:,.0f}", f"{row['lr']:.3g}",
            )
        console = Console()
        console.print(table)
        console.print(f"checkpoint: {path}", soft_wrap=True)
        console.print(f"config hash: {config.config_hash()}", soft_wrap=True)
        console.print(f"checkpoint sha256: {checkpoint_hash(path)}", soft_wrap=True)
    distributed.shutdown()
    return 0
