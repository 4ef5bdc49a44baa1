"""Training and inference speed of every registered method, relative to CAM on the same backbone.

Methods without a network on ``--backbone`` (the transformer methods TS-CAM and SCM on a CNN)
run on ``--vit-backbone`` with their own recipe (AdamW), still relative to CAM on ``--backbone``.

Measures the model alone (forward, the method's input transform and loss, backward, SGD step)
on random tensors, so the data pipeline does not blur the comparison. Every method runs in the
same process on the same device, each after a warm-up; the ratio to CAM is what to compare.

    python benchmarks/bench_training.py                      # tinyvgg, 64 px, CPU or GPU
    python benchmarks/bench_training.py --backbone vgg16 --image-size 224 --batch-size 32 \
        --vit-backbone deit_small
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from wsolbench.engine.config import TrainConfig
from wsolbench.engine.device import resolve_device
from wsolbench.engine.optim import build_optimizer
from wsolbench.methods.base import runs_on
from wsolbench.registry import create_method, list_methods


def backbone_of(name: str, args) -> str:
    """``--backbone``, or ``--vit-backbone`` for a method that has no network on it."""
    return args.backbone if runs_on(name, args.backbone) else args.vit_backbone


def recipe_of(name: str, args) -> str:
    return args.recipe if runs_on(name, args.backbone) else name


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: bool):
    enabled = amp and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def seconds_per_step(step, steps: int, device) -> float:
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def build_steps(name: str, args, device: torch.device):
    """A training step and an inference step of one method on a fixed random batch."""
    torch.manual_seed(0)
    backbone = backbone_of(name, args)
    method = create_method(name, backbone=backbone, num_classes=args.num_classes).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    config = TrainConfig(
        data=".", method=name, backbone=backbone, lr=0.001, recipe=recipe_of(name, args)
    )
    optimizer = build_optimizer(method, config)
    method.set_epoch(10**6)  # every epoch-dependent branch on (e.g. SPA's RAM)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), device=device)

    def train_step():
        method.train()
        batch, targets = method.prepare_batch(images, labels)
        with autocast(device, args.amp):
            loss = method.loss(method(batch, labels), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer_step():
        method.eval()
        with autocast(device, args.amp):
            method(images)

    return train_step, infer_step


def measure(names: list[str], args, device: torch.device) -> dict[str, tuple[float, float]]:
    """Images/s (train, infer) per method: rounds interleave the methods and the best round
    counts, so load from other processes hits every method alike and is mostly filtered out."""
    steps = {name: build_steps(name, args, device) for name in names}
    best = {name: [float("inf"), float("inf")] for name in names}
    for train_step, infer_step in steps.values():  # warm-up (allocator, kernels, caches)
        for _ in range(args.warmup):
            train_step()
            infer_step()
    for _ in range(args.rounds):
        for name, (train_step, infer_step) in steps.items():
            best[name][0] = min(best[name][0], seconds_per_step(train_step, args.steps, device))
            best[name][1] = min(best[name][1], seconds_per_step(infer_step, args.steps, device))
    return {name: (args.batch_size / t, args.batch_size / i) for name, (t, i) in best.items()}


def count_flops(name: str, args) -> tuple[float, float]:
    """FLOPs per image of a training step (forward, loss, backward) and of inference: a
    machine-independent cost. Shapes only (meta tensors) when the method allows it; methods
    that read values on the host (`.item()`) run on the CPU with a batch of 2."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2
    for device in ("meta", "cpu"):
        try:
            torch.manual_seed(0)
            method = create_method(
                name, backbone=backbone_of(name, args), num_classes=args.num_classes
            ).to(device)
            method.set_epoch(10**6)
            images = torch.randn(batch, 3, args.image_size, args.image_size, device=device)
            labels = torch.arange(batch, device=device) % args.num_classes
            with FlopCounterMode(display=False) as train_counter:
                method.train()
                inputs, targets = method.prepare_batch(images, labels)
                method.loss(method(inputs, labels), targets).backward()
            with FlopCounterMode(display=False) as infer_counter, torch.no_grad():
                method.eval()
                method(images)
            return train_counter.get_total_flops() / batch, infer_counter.get_total_flops() / batch
        except (RuntimeError, NotImplementedError):
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tinyvgg", help="backbone (default: %(default)s)")
    parser.add_argument(
        "--vit-backbone",
        default="tinyvit",
        help="backbone of the transformer methods (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size", type=int, default=64, help="input size (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--num-classes", type=int, default=10, help="classes (default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per round (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds, best kept (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads, 0: torch's default (default: %(default)s)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (default: off)")
    parser.add_argument(
        "--recipe",
        default="wsolevaluation",
        help="training recipe: its parameter groups (default: %(default)s)",
    )
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    parser.add_argument(
        "--flops", action="store_true", help="also count FLOPs per image (default: off)"
    )
    parser.add_argument(
        "--no-timing", action="store_true", help="FLOPs only, no timing (default: off)"
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in args.methods.split(",") if n] or list_methods()
    names = ["cam"] + [n for n in names if n != "cam"]
    timed = not args.no_timing
    results = measure(names, args, device) if timed else {}
    flops = {name: count_flops(name, args) for name in names} if args.flops or not timed else {}

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    title = f"{args.backbone} {args.image_size}px, batch {args.batch_size}, {where}"
    table = Table(title=title + (", bf16" if args.amp and device.type == "cuda" else ""))
    columns = ["method", "backbone"]
    if timed:
        columns += ["train img/s", "train time / CAM", "infer img/s", "infer time / CAM"]
    if flops:
        columns += ["train GFLOP/img", "train FLOPs / CAM", "infer GFLOP/img", "infer FLOPs / CAM"]
    for column in columns:
        table.add_column(column, justify="right")
    for name in names:
        row = [name, backbone_of(name, args)]
        if timed:
            (train_speed, infer_speed), (cam_train, cam_infer) = results[name], results["cam"]
            row += [
                f"{train_speed:,.0f}",
                f"{cam_train / train_speed:.2f}x",
                f"{infer_speed:,.0f}",
                f"{cam_infer / infer_speed:.2f}x",
            ]
        if flops:
            (train_flops, infer_flops), (cam_train_flops, cam_infer_flops) = (
                flops[name],
                flops["cam"],
            )
            row += [
                f"{train_flops / 1e9:.3g}",
                f"{train_flops / cam_train_flops:.2f}x",
                f"{infer_flops / 1e9:.3g}",
                f"{infer_flops / cam_infer_flops:.2f}x",
            ]
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
