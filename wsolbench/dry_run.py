"""`wsolbench bench --dry-run`: what a suite would do, and how long it would take here.

It prints the suite's resolved settings, each model's state (cached scores, a checkpoint to
resume, or to train) and an estimate of the run time on this machine from one measured step
per method (one training batch, one evaluation batch, on random images of the suite's size),
and writes nothing: no run, leaderboard or dataset folder is claimed or created (a synthetic
benchmark not generated yet is generated into a temporary folder, to count its images).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from wsolbench.engine.config import TrainConfig
from wsolbench.runs import RunFolder
from wsolbench.suite import Suite

SPLITS = ("train", "val", "test")


def dry_run(
    suite: Suite,
    runs_dir: str | Path = "runs",
    device: str = "auto",
    only: list[str] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Print the plan and the estimate; returns them (``jobs``: label -> state, ``seconds``)."""
    from wsolbench.engine.device import run_device
    from wsolbench.io import scratch_folder

    console = console or Console()
    torch_device = run_device(device, "--device")
    from wsolbench.bench import _train_config

    with scratch_folder() as scratch:
        data, where = _locate(suite, scratch)
        counts = {name: len(data.split(name)) for name in SPLITS}
    labels = data.split("train").labels
    num_classes = suite.dataset["num_classes"] or (int(labels.max()) + 1 if len(labels) else 0)
    data.num_classes = num_classes
    _print_settings(suite, counts, num_classes, where, console)
    where_runs = escape(str(Path(runs_dir) / suite.name))
    console.print(f"[bold]runs[/] ({where_runs}):", soft_wrap=True, highlight=False)
    jobs, seconds, measured = {}, 0.0, {}
    for spec in suite.methods:
        config = _train_config(suite, spec, data, runs_dir, device)  # the bench's run hash
        folder = RunFolder.of(runs_dir, suite, spec.label, config.config_hash())
        state, epochs_left = _state(folder, config)
        if only is not None and spec.label not in only and state != "cached":
            continue
        jobs[spec.label] = state
        text = f"  {escape(spec.label):<12} {escape(_describe(state, folder, config))}"
        console.print(text, soft_wrap=True, highlight=False)  # a path stays whole
        if state == "cached":
            continue
        key = (spec.method, tuple(sorted(spec.hparams.items())))
        if key not in measured:
            measured[key] = measure_steps(suite, config, num_classes, torch_device)
        train_step, eval_step = measured[key]
        seconds += _estimate(suite, config, counts, epochs_left, train_step, eval_step)
    for classifier in suite.classifiers:
        jobs[classifier.label] = "inference only (not measured)"
        console.print(f"  {escape(classifier.label):<12} scored as it is (not measured)")
    if measured:
        train_step, eval_step = next(iter(measured.values()))
        console.print(
            f"measured on {_device_name(torch_device)}: {train_step:.3f} s per training batch "
            f"of {suite.train['batch_size']}, {eval_step:.3f} s per evaluation batch of "
            f"{suite.evaluation['batch_size']} (first method; each method measured)"
        )
        console.print(
            f"[bold]estimated time here: {_duration(seconds)}[/] (training and inference; data "
            "loading and scoring not included)"
        )
    else:
        console.print("[bold]estimated time here: nothing to train[/] (every model is cached)")
    if suite.cost:
        console.print(f"the suite's own estimate: {escape(suite.cost)}")
    console.print("dry run: nothing was written")
    return {"jobs": jobs, "seconds": seconds}


def _locate(suite: Suite, scratch: Path):
    """The suite's data (``bench.locate_data``) and in words where it is; a synthetic
    benchmark not generated yet is generated into ``scratch`` (never into dataset.root)."""
    from wsolbench.bench import locate_data

    ds = suite.dataset
    if ds["kind"] != "synthetic":
        return locate_data(suite), f"metadata {ds['metadata_root']}, images {ds['image_root']}"
    root = Path(ds["root"])
    if (root / "synthetic.json").is_file():
        return locate_data(suite), f"synthetic benchmark at {root}"
    from wsolbench.data.synthetic import generate

    generate(scratch / "synthetic", **dict(ds["synthetic"], seed=ds["seed"]))
    return locate_data(suite, scratch / "synthetic"), f"synthetic, not generated yet at {root}"


def _print_settings(suite, counts, num_classes, where, console) -> None:
    def line(title: str, values: dict[str, Any]) -> None:
        text = ", ".join(f"{k}={v}" for k, v in values.items()) or "-"
        console.print(f"[bold]{title}[/]: {escape(text)}", highlight=False)

    title = f"[bold]suite {escape(suite.name)}[/] ({escape(suite.source)})"
    console.print(title, soft_wrap=True, highlight=False)
    if suite.reproduces:
        console.print(f"reproduces: {escape(suite.reproduces)}", highlight=False)
    sizes = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    console.print(f"[bold]dataset[/]: {escape(where)}", soft_wrap=True, highlight=False)
    console.print(f"{sizes} images, {num_classes} classes", highlight=False)
    line("train", suite.train)
    for spec in suite.methods:
        line(f"methods.{spec.label}", {"method": spec.method, **spec.hparams})
    for name, options in suite.postprocessors.items():
        line(f"postprocessors.{name}", options)
    line("evaluation", suite.evaluation)
    for overrides in suite.overrides:
        console.print(f"--set {escape(overrides)}", highlight=False)


def _state(folder: RunFolder, config: TrainConfig) -> tuple[str, int]:
    """("cached" | "resume" | "train", epochs left to train)."""
    if folder.load(quiet=True) is not None:
        return "cached", 0
    if folder.checkpoint.is_file():
        from wsolbench.engine.checkpoint import load_checkpoint

        done = int(load_checkpoint(folder.checkpoint).get("epoch", 0))
        return "resume", max(config.epochs - done, 0)
    return "train", config.epochs


def _describe(state: str, folder: RunFolder, config: TrainConfig) -> str:
    if state == "cached":
        return f"cached: {folder.path}"
    if state == "resume":
        return f"resumes from {folder.checkpoint} ({config.epochs} epochs in all)"
    return f"to train: {config.epochs} epochs, then scored"


def measure_steps(
    suite: Suite, config: TrainConfig, num_classes: int, device: torch.device
) -> tuple[float, float]:
    """Seconds of one training step (forward, loss, backward, optimizer) at the suite's batch
    size and of one evaluation forward at its evaluation batch size, after a warm-up step of
    two images; random images of the suite's size, random initialization (no weights read)."""
    from wsolbench.engine.optim import build_optimizer
    from wsolbench.registry import create_method

    method = create_method(
        config.method,
        backbone=config.backbone,
        num_classes=num_classes,
        pretrained=False,
        weights=None,
        large_feature_map=config.large_feature_map,
        **config.hparams,
    ).to(device)
    optimizer = build_optimizer(method, config)
    size = suite.dataset["image_size"]

    def train_step(count: int) -> None:
        images = torch.randn(count, 3, size, size, device=device)
        labels = torch.randint(0, num_classes, (count,), device=device)
        images, targets = method.prepare_batch(images, labels)
        loss = method.loss(method(images, labels), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def eval_step(count: int) -> None:
        with torch.no_grad():
            method(torch.randn(count, 3, size, size, device=device))

    method.train()
    train_seconds = _timed(train_step, config.batch_size, device)
    method.eval()
    eval_seconds = _timed(eval_step, suite.evaluation["batch_size"], device)
    return train_seconds, eval_seconds


def _timed(step, count: int, device: torch.device, repeats: int = 5, budget: float = 3.0) -> float:
    """The fastest of up to ``repeats`` steps (fewer once ``budget`` seconds are spent) after
    a warm-up step of the same size: the first step of a shape allocates and picks kernels, and
    on shared cores single steps vary several-fold."""
    best, spent = math.inf, 0.0
    for index in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        step(count)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        if index:
            best, spent = min(best, seconds), spent + seconds
            if spent > budget:
                break
    return best


def _estimate(suite, config, counts, epochs_left, train_step, eval_step) -> float:
    """Training steps x the measured step, plus the forward passes of scoring: every val and
    test image once for its maps and ten more times with ten-crop classification, per
    explainer."""
    train = epochs_left * math.ceil(counts["train"] / config.batch_size) * train_step
    passes = 1 + (10 if suite.evaluation["ten_crop"] else 0)
    images = (counts["val"] + counts["test"]) * passes * len(suite.explainers)
    return train + math.ceil(images / suite.evaluation["batch_size"]) * eval_step


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"~{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def _device_name(device: torch.device) -> str:
    """The device, with the CPU load the measurement shared the cores with."""
    import os

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU cores ({torch.get_num_threads()} threads{load})"
