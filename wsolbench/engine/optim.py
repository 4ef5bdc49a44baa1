"""Optimizer and learning-rate schedule of the wsolevaluation recipe."""
from __future__ import annotations

import inspect

import torch

from wsolbench.engine.config import TrainConfig

# Methods build their head groups at this multiple of the backbone lr (docs/interfaces.md).
METHOD_HEAD_MULTIPLIER = 10.0


def param_groups(method: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """The method's groups (backbone at lr, new layers higher), rescaled to the configured
    head multiplier when it differs from the methods' built-in 10x."""
    build = method.param_groups
    if "head_lr_multiplier" in inspect.signature(build).parameters:
        return build(config.lr, config.weight_decay, head_lr_multiplier=config.head_lr_multiplier)
    groups = build(config.lr, config.weight_decay)
    if config.head_lr_multiplier != METHOD_HEAD_MULTIPLIER:
        scale = config.head_lr_multiplier / METHOD_HEAD_MULTIPLIER
        for group in groups:
            if group.get("lr", config.lr) > config.lr:
                group["lr"] = group["lr"] * scale
    return groups


def build_optimizer(method: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        param_groups(method, config),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: x`lr_gamma` every `lr_step` epochs, or at `lr_milestones`."""
    if config.lr_decay == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=sorted(config.lr_milestones), gamma=config.lr_gamma
        )
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
