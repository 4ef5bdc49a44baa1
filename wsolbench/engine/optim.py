"""Optimizer and learning-rate schedule of the configured recipe (``engine/recipes.py``)."""

from __future__ import annotations

import torch

from wsolbench.engine.config import TrainConfig
from wsolbench.engine.recipes import get_recipe


def param_groups(method: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """The recipe's groups as optimizer parameter groups (``name``, ``lr_multiplier``, and the
    parameters' names in ``param_names``); empty groups are left out."""
    parameters = dict(method.named_parameters())
    return [
        {
            "params": [parameters[name] for name in group.params],
            "lr": config.lr * group.lr_multiplier,
            "weight_decay": config.weight_decay if group.decay else 0.0,
            "name": group.name,
            "lr_multiplier": group.lr_multiplier,
            "param_names": list(group.params),
        }
        for group in get_recipe(config.recipe).groups(method, config)
        if group.params
    ]


def build_optimizer(method: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimizer: SGD (momentum, Nesterov from the config) or, for the transformer
    recipes, AdamW with timm's defaults (betas 0.9 / 0.999, eps 1e-8; momentum unused)."""
    if get_recipe(config.recipe).optimizer == "adamw":
        return torch.optim.AdamW(
            param_groups(method, config),
            lr=config.lr,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=config.weight_decay,
        )
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
    """Stepped once per epoch, after it: epoch e (0-based) trains at lr x the recipe's factor."""
    factor = get_recipe(config.recipe).lr_factor
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: factor(config, epoch))
