"""Training: one function, `train(config)`, alone or under `torchrun` (DDP).

The loop only sees `TrainDataset` (images and labels): boxes never reach training. Each epoch
reseeds every RNG from (seed, epoch, rank) and the sampler from (seed, epoch), and a checkpoint
is written atomically at the end of every epoch, so `resume=True` continues an interrupted run
to exactly the weights an uninterrupted run reaches (on CPU, with the same seed).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import (
    build_from_checkpoint,
    check_resume_fields,
    load_checkpoint,
    restore_training_state,
    rng_state,
    save_checkpoint,
)
from wsolbench.engine.config import TrainConfig
from wsolbench.engine.device import resolve_device, run_device  # noqa: F401  (resolve_device: re-exported)
from wsolbench.engine.optim import build_optimizer, build_scheduler
from wsolbench.engine.progress import TrainProgress
from wsolbench.engine.seeding import derive_seed, seed_everything, seed_worker
from wsolbench.engine.workers import loader_workers
from wsolbench.errors import WsolbenchError
from wsolbench.io import claim_folder, write_json
from wsolbench.registry import COMMON_ARGUMENTS

CHECKPOINT_NAME = "last.pt"
RUN_KIND = "run"  # the writer's marker of a training run's folder
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    """What a caller of `train` needs: the checkpoint, the device it trained on, the run's
    configuration hash. It is also the checkpoint's path (`os.PathLike`) for older callers."""

    checkpoint: Path
    device: torch.device
    config_hash: str

    def __fspath__(self) -> str:
        return str(self.checkpoint)


def load_train_split(config: TrainConfig, split=None):
    """The training dataset and class count; every image is opened (header only) before
    training, unless the caller read and checked the split already (``split``)."""
    from wsolbench.data.datasets import TrainDataset, check_images
    from wsolbench.data.metadata import check_labels, read_split

    checked = split is not None
    split = split if checked else read_split(config.resolved_metadata_root() / "train")
    num_classes = check_labels(split, config.num_classes, require_every_class=True)
    if not checked:
        check_images(split, config.resolved_image_root())
    dataset = TrainDataset(
        split, config.resolved_image_root(), config.image_size, config.resize_size
    )
    return dataset, num_classes


def build_method(config: TrainConfig, num_classes: int) -> torch.nn.Module:
    from wsolbench.registry import create_method

    return create_method(
        config.method,
        backbone=config.backbone,
        num_classes=num_classes,
        pretrained=config.pretrained,
        weights=config.weights,
        large_feature_map=config.large_feature_map,
        **config.hparams,
    )


def _checkpoint_payload(
    method, optimizer, scheduler, epoch: int, config: TrainConfig, num_classes: int, history
) -> dict[str, Any]:
    return {
        "model": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,  # epochs completed
        "rng": rng_state(),
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "execution": config.execution(),
        "dataset": config.dataset_name(),
        "method": config.method,
        "backbone": config.backbone,
        "hparams": method_hparams(method, config),
        "num_classes": num_classes,
        "history": history,
    }


def method_hparams(method, config: TrainConfig) -> dict[str, Any]:
    """The method's own hyperparameters (build arguments are stored separately)."""
    values = dict(getattr(method, "hparams", None) or config.hparams)
    return {k: v for k, v in values.items() if k not in COMMON_ARGUMENTS}


def check_resumable(checkpoint: dict, config: TrainConfig, path: Path) -> None:
    """Resume only the same run: every hashed field but `epochs` must agree (so a finished
    run can also be extended), and so must the execution (device, dtype, processes), which
    changes the numbers, as does the worker count (augmentation draws from the RNG of the
    process that loads the image)."""
    check_resume_fields(checkpoint, path)
    if "recipe" not in checkpoint["config"]:
        raise WsolbenchError(
            "cannot resume: the checkpoint predates named training recipes (its lr schedule "
            "differs); start a new run in another --out folder",
            path=path,
        )
    try:
        saved = TrainConfig.from_dict(checkpoint["config"]).hashed_fields()
    except (WsolbenchError, TypeError) as error:
        raise WsolbenchError(
            f"cannot resume: the checkpoint's config is malformed ({error})", path=path
        ) from None
    saved["execution"] = checkpoint.get("execution", saved["execution"])
    wanted = config.hashed_fields()
    differing = sorted(k for k in wanted if k != "epochs" and saved.get(k) != wanted[k])
    if differing == ["execution"]:
        changes = ", ".join(
            f"{k} {saved['execution'].get(k)} -> {v}"
            for k, v in wanted["execution"].items()
            if saved["execution"].get(k) != v
        )
        changes = changes or "a different execution"
        raise WsolbenchError(
            f"cannot resume: it would change the results ({changes}); resume on "
            "the same kind of device and dtype, or start a new run",
            path=path,
        )
    if differing:
        raise WsolbenchError(
            f"cannot resume: the checkpoint was trained with other settings ({', '.join(differing)})",
            path=path,
        )


def _check_output(config: TrainConfig, checkpoint_path: Path) -> None:
    """Before any data is read: the output folder is a run's (or new, or empty), writable,
    and holds no run that this one would replace without being asked to (`resume` continues
    it, `overwrite` replaces it)."""
    claim_folder(config.out_dir, "output folder", RUN_KIND)
    if checkpoint_path.exists() and not (config.resume or config.overwrite):
        raise WsolbenchError(
            "holds a previous run: pass --resume to continue it or --overwrite to replace it",
            path=checkpoint_path,
        )


def train(
    config: TrainConfig, on_epoch_end: EpochCallback | None = None, train_split=None
) -> TrainResult:
    """Train `config.method`; returns the final checkpoint (`<out>/last.pt`), the device and
    the configuration hash.

    `on_epoch_end(epoch, stats)` runs on every rank after each epoch's checkpoint is written
    (e.g. a val evaluation: choose thresholds and hyperparameters on val, never on test).
    ``train_split``: the train split, if the caller has read it already.
    """
    device = run_device(config.device)
    rank, world = distributed.rank(), distributed.world_size()
    # config.batch_size is the total batch (as the references count it): each process takes its
    # share, and DDP's gradient average makes the step that of the whole batch.
    if config.batch_size % world:
        raise WsolbenchError(
            f"batch_size {config.batch_size} is the total batch and must divide evenly over the "
            f"{world} processes"
        )
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    _check_output(config, checkpoint_path)  # on every rank, so that all stop together
    # With `overwrite` the previous checkpoint stays until the first epoch replaces it atomically.
    resumed = None
    if config.resume and checkpoint_path.is_file():  # read and checked before any data
        resumed = load_checkpoint(checkpoint_path)
        check_resumable(resumed, config, checkpoint_path)

    dataset, num_classes = load_train_split(config, train_split)
    seed_everything(config.seed)  # the same initial weights on every rank
    start_epoch, history = 0, []
    if resumed is not None:
        method = build_from_checkpoint(resumed)
        start_epoch, history = int(resumed["epoch"]), list(resumed.get("history", []))
    else:
        method = build_method(config, num_classes)

    on_cuda = device.type == "cuda"
    method = method.to(device)
    if on_cuda and config.channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method, config)
    scheduler = build_scheduler(optimizer, config)
    if resumed is not None:
        restore_training_state(resumed, optimizer, scheduler, checkpoint_path)
    model = method
    if world > 1:
        model = DistributedDataParallel(
            method,
            device_ids=[device.index] if on_cuda else None,
            find_unused_parameters=True,  # some methods skip a branch in some steps
        )

    # The sampler shuffles from (seed, epoch); with one replica it is a plain seeded shuffle.
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed
    )
    loader_generator = torch.Generator()
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size // world,
        sampler=sampler,
        num_workers=loader_workers(config.workers),
        pin_memory=on_cuda,
        worker_init_fn=seed_worker,
        generator=loader_generator,
        persistent_workers=False,  # workers are reseeded from the generator every epoch
        drop_last=False,
    )

    def autocast():
        if on_cuda and config.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # Nothing is written before the first epoch ends: a run that fails on its data leaves no trace.
    saved_config = {
        **config.to_dict(),
        "config_hash": config.config_hash(),
        "execution": config.execution(),
    }

    show = config.progress and distributed.is_main()
    with TrainProgress(config.epochs, len(loader), enabled=show) as progress:
        progress.skip_to(start_epoch)
        for epoch in range(start_epoch, config.epochs):
            seed_everything(derive_seed(config.seed, epoch, rank))
            loader_generator.manual_seed(derive_seed(config.seed, epoch, rank, 1))
            sampler.set_epoch(epoch)
            getattr(method, "set_epoch", lambda e: None)(epoch)
            stats = _train_one_epoch(
                model, method, loader, optimizer, device, autocast, config, progress, epoch
            )
            stats["lr"] = optimizer.param_groups[0]["lr"]
            scheduler.step()
            history.append({"epoch": epoch + 1, **stats})
            if distributed.is_main():
                save_checkpoint(
                    checkpoint_path,
                    _checkpoint_payload(
                        method, optimizer, scheduler, epoch + 1, config, num_classes, history
                    ),
                )
                write_json(out_dir / "history.json", history)
                write_json(out_dir / "config.json", saved_config)
            distributed.barrier()
            if on_epoch_end is not None:
                on_epoch_end(epoch, stats)
    return TrainResult(checkpoint_path, device, config.config_hash())


def _train_one_epoch(
    model, method, loader, optimizer, device, autocast, config, progress, epoch
) -> dict[str, float]:
    model.train()
    # Running sums stay on the device: no host sync per step, one all-reduce per epoch.
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, seen
    channels_last = device.type == "cuda" and config.channels_last
    progress.start_epoch(epoch)
    started = time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images, targets = method.prepare_batch(images, labels)
        with autocast():
            outputs = model(images, labels)
            loss = method.loss(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            correct = (outputs["logits"].argmax(dim=1) == labels).sum()
            totals += torch.stack(
                [
                    loss.detach().double() * labels.numel(),
                    correct.double(),
                    torch.tensor(float(labels.numel()), dtype=torch.float64, device=device),
                ]
            )
        if progress.enabled and (step % 10 == 0 or step + 1 == len(loader)):
            loss_sum, correct_sum, seen = totals.tolist()
            progress.update(
                step + 1,
                loss_sum / seen,
                100.0 * correct_sum / seen,
                seen * distributed.world_size() / (time.perf_counter() - started),
            )
    loss_sum, correct_sum, seen = distributed.all_reduce_sum(totals).tolist()
    elapsed = time.perf_counter() - started
    if not torch.isfinite(torch.tensor(loss_sum)):
        raise WsolbenchError(f"training diverged in epoch {epoch + 1}: the loss is not finite")
    return {
        "loss": loss_sum / max(seen, 1),
        "accuracy": 100.0 * correct_sum / max(seen, 1),
        "images": int(seen),  # over all ranks
        "images_per_second": seen / elapsed if elapsed > 0 else 0.0,
        "seconds": elapsed,
    }
