"""Named training recipes: which tensors learn at which multiple of the lr, and the lr schedule.

Each recipe is its reference's, selecting tensors by the REFERENCE code's parameter names
(``method.reference_names()`` maps wsolbench's keys to them), so a method trains exactly as the
code behind the published numbers trains it:

- ``wsolevaluation`` (clovaai/wsolevaluation @ 96f4b88, ``main.py`` ``_set_optimizer`` and
  ``adjust_learning_rate``, ``config.py``): two groups by name substrings. VGG (``features.``)
  and Inception (``Mixed``, ``Conv2d_1`` .. ``Conv2d_4``): matching tensors at 1x, the rest at
  ``head_lr_multiplier`` (``lr_classifier_ratio``, 10); ResNet (``layer4.``, ``fc.``): matching
  at 10x, the rest at 1x. The lr is multiplied by ``lr_gamma`` (0.1) before every epoch ``e``
  (0-based) with ``(e + 1) % lr_step == 0``: ``adjust_learning_rate(epoch + 1)``, so the first
  decay comes one epoch earlier than torch's StepLR would put it.
- ``spa`` (Panxjia/SPA_CVPR2021 @ 32bf2d5, ``exper/train_cam_spa.py`` ``get_model``,
  ``exper/my_optim.py`` ``reduce_lr``, ``scripts/``): four groups, weights and biases apart
  ("weight" / "bias" in the name; a tensor with neither is not optimized): backbone weights
  1x, backbone biases 2x, head weights ``head_lr_multiplier`` (10x), head biases twice that
  (20x), the head being the names containing ``cls``, ``fpn``, ``fc`` or ``classifier``. The
  lr is multiplied by ``lr_gamma`` (0.1) before each epoch listed in ``lr_milestones``
  (``--decay_points``). The SPA code trains only its own network; other methods under this
  recipe take their new layers (outside the backbone) as the head.

- ``bas`` (wpy1999/BAS @ 54c395e, ``{CUB,ILSVRC}/utils/optimizer.py`` ``get_optimizer``,
  ``utils/lr.py`` ``poly_lr_scheduler``, ``train.py``): SPA's four groups with the head being the
  names containing ``classifier`` (``classifier_cls``, ``classifier_loc``; the ILSVRC code also
  skips its ``*_copy`` modules, which wsolbench does not have). x0.1 before every epoch
  ``e > 0`` with ``e % decay_epoch == 0``: the multiples of ``decay_epoch`` as ``lr_milestones``
  (CUB 80 of 100 epochs: [80]; ILSVRC 3 of 9: [3, 6]).
- ``tscam`` and ``scm`` (vasgaowei/TS-CAM @ 25aece4 with timm 0.3.2, hbai98/SCM @ be5bdfa with
  timm 0.6.13: ``train_cam.py`` ``create_optimizer(args, model)``, ``lib/core/engine.py``
  ``adjust_learning_rate_normal``): AdamW (betas 0.9 / 0.999, eps 1e-8) with timm's parameter
  groups: no weight decay for 1-D tensors, biases and the model's ``no_weight_decay()``
  (``pos_embed``, ``cls_token``), ``weight_decay`` for the rest, all at ``lr``. x0.1 before every
  1-based epoch divisible by one of the config's ``LR_STEPS``: given as ``lr_milestones`` in
  0-based epochs (TS-CAM CUB, LR_STEPS [30] over 60 epochs: [29, 59]; ILSVRC [10, 12] over 20:
  [9, 11, 19]). SCM trains with its own copy of that code: the same rule.

wsolevaluation, SPA and BAS use SGD with Nesterov momentum (momentum and weight decay from the
config: 0.9 and 1e-4 in wsolevaluation, 0.9 and 5e-4 hard-coded in the SPA code and set in BAS's)
and train in fp32. On a backbone with no reference network (tinyvgg), the backbone is the 1x part
and every new layer the head (what wsolevaluation's VGG rule gives for a VGG-like network).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsolbench.registry import RECIPES

if TYPE_CHECKING:  # torch stays unimported here: the CLI lists the recipes without it
    from torch import nn

    from wsolbench.engine.config import TrainConfig  # config checks `recipe` by the registry

# wsolevaluation's architecture families (main.py _FEATURE_PARAM_LAYER_PATTERNS); for VGG and
# Inception the matching names are the 1x part, for ResNet the 10x part.
WSOLEVALUATION_PATTERNS = {
    "vgg16": (("features.",), False),
    "inception_v3": (("Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"), False),
    "resnet50": (("layer4.", "fc."), True),
}
# train_cam_spa.py get_model: `added_layers`, matched as substrings of the parameter name.
SPA_HEAD_PATTERNS = ("cls", "fpn", "fc", "classifier")
# (method, backbone) pairs whose reference_names() are the SPA code's / SPA2Net's own names.
SPA_CODE_NETWORKS = {("spa", "vgg16"), ("spa", "inception_v3")}
# BAS's get_optimizer: the names containing "classifier" are the 10x / 20x head.
BAS_HEAD_PATTERNS = ("classifier",)
# timm's VisionTransformer.no_weight_decay() (TS-CAM's and SCM's copies of it).
TIMM_NO_WEIGHT_DECAY = ("pos_embed", "cls_token")


@dataclass(frozen=True)
class Group:
    name: str
    lr_multiplier: float  # of config.lr
    params: tuple[str, ...]  # wsolbench parameter names
    decay: bool = True  # config.weight_decay applies (else 0)


@dataclass(frozen=True)
class Recipe:
    name: str
    schedule: str  # the lr_decay form it uses: "step" (lr_step) or "multistep" (lr_milestones)
    groups: Callable[[nn.Module, TrainConfig], list[Group]]
    lr_factor: Callable[[TrainConfig, int], float]  # lr multiplier in 0-based epoch e
    optimizer: str = "sgd"  # "sgd" (Nesterov when configured) or "adamw" (timm's defaults)


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry: `train.recipe` / `--recipe` accept it from then on."""
    return RECIPES.add(recipe.name, recipe)


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)


def _contains_any(name: str, patterns: tuple[str, ...]) -> bool:
    return any(pattern in name for pattern in patterns)


def _is_new_layer(method: nn.Module) -> Callable[[str], bool]:
    """Parameters outside the backbone (the method's own ``param_groups`` split)."""
    backbone = {id(p) for p in method.param_groups(1.0, 0.0)[0]["params"]}
    ids = dict(method.named_parameters())
    return lambda name: id(ids[name]) not in backbone


def _wsolevaluation_groups(method: nn.Module, config: TrainConfig) -> list[Group]:
    names = method.reference_names()
    family = WSOLEVALUATION_PATTERNS.get(config.backbone)
    is_new = _is_new_layer(method) if family is None else None
    features, classifiers = [], []
    for key, _ in method.named_parameters():
        if family is None:
            high = is_new(key)
        else:
            patterns, matching_is_high = family
            high = _contains_any(names[key], patterns) == matching_is_high
        (classifiers if high else features).append(key)
    return [
        Group("features", 1.0, tuple(features)),
        Group("classifiers", config.head_lr_multiplier, tuple(classifiers)),
    ]


def _weight_bias_groups(
    head_patterns: tuple[str, ...], own_network: Callable[[TrainConfig], bool]
) -> Callable[[nn.Module, TrainConfig], list[Group]]:
    """SPA's and BAS's rule: weights / biases of the backbone and of the head, the head being
    the reference names containing one of ``head_patterns`` on the reference's own networks
    (``own_network(config)``), the new layers otherwise."""

    def groups(method: nn.Module, config: TrainConfig) -> list[Group]:
        names = method.reference_names()
        own = own_network(config)
        is_new = _is_new_layer(method)
        lists: dict[str, list[str]] = {
            "weight": [],
            "bias": [],
            "added_weight": [],
            "added_bias": [],
        }
        for key, _ in method.named_parameters():
            name = names[key]
            added = _contains_any(name, head_patterns) if own else is_new(key)
            kind = "weight" if "weight" in name else "bias" if "bias" in name else None
            if kind is not None:  # the reference optimizes only these two kinds
                lists[f"added_{kind}" if added else kind].append(key)
        head = config.head_lr_multiplier
        multipliers = {"weight": 1.0, "bias": 2.0, "added_weight": head, "added_bias": 2.0 * head}
        return [Group(group, multipliers[group], tuple(keys)) for group, keys in lists.items()]

    return groups


_spa_groups = _weight_bias_groups(
    SPA_HEAD_PATTERNS, lambda config: (config.method, config.backbone) in SPA_CODE_NETWORKS
)


def _timm_groups(method: nn.Module, config: TrainConfig) -> list[Group]:
    """timm's ``add_weight_decay`` / ``param_groups_weight_decay`` on the reference's names:
    1-D tensors, biases and ``no_weight_decay()`` without decay, then the rest."""
    names = method.reference_names()
    no_decay, decay = [], []
    for key, parameter in method.named_parameters():
        name = names[key]
        exempt = parameter.ndim <= 1 or name.endswith(".bias") or name in TIMM_NO_WEIGHT_DECAY
        (no_decay if exempt else decay).append(key)
    return [Group("no_decay", 1.0, tuple(no_decay), False), Group("decay", 1.0, tuple(decay))]


def _multistep_factor(config: TrainConfig, epoch: int) -> float:
    """x lr_gamma for each milestone <= the 0-based epoch (SPA's reduce_lr tests `epoch in
    change_points`: a repeated milestone decays once)."""
    return config.lr_gamma ** sum(
        1 for milestone in set(config.lr_milestones) if milestone <= epoch
    )


register_recipe(
    Recipe(
        name="wsolevaluation",
        schedule="step",
        groups=_wsolevaluation_groups,
        lr_factor=lambda config, epoch: config.lr_gamma ** ((epoch + 1) // config.lr_step),
    )
)
register_recipe(
    Recipe(name="spa", schedule="multistep", groups=_spa_groups, lr_factor=_multistep_factor)
)
register_recipe(
    Recipe(
        name="bas",
        schedule="multistep",
        groups=_weight_bias_groups(BAS_HEAD_PATTERNS, lambda config: config.method == "bas"),
        lr_factor=_multistep_factor,
    )
)
for _name in ("tscam", "scm"):
    register_recipe(
        Recipe(
            name=_name,
            schedule="multistep",
            groups=_timm_groups,
            lr_factor=_multistep_factor,
            optimizer="adamw",
        )
    )
