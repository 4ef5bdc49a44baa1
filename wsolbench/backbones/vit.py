"""Vision transformers built with timm: DeiT-S (``deit_small``) as TS-CAM and SCM use it, and
``tinyvit``, a small one that trains from scratch on a CPU (the transformer counterpart of
tinyvgg: 8-pixel patches, 6 blocks, dim 96).

``deit_small`` is timm's ``deit_small_patch16_224`` (patch 16, dim 384, 12 blocks, 6 heads, MLP
ratio 4, qkv bias, LayerNorm eps 1e-6), the network of TS-CAM's ``deit_tscam_small_patch16_224``
(vasgaowei/TS-CAM @ 25aece4, ``lib/models/deit.py``) and SCM's ``deit_scm_small_patch16_224``
(hbai98/SCM @ be5bdfa), with drop_path 0.1 as both train it (``--drop-path`` default in their
``lib/config/default.py``). Its module names are timm's and DeiT's (``patch_embed.proj``,
``cls_token``, ``pos_embed``, ``blocks.<i>.attn.qkv``, ``norm``), so DeiT's release and TS-CAM's
checkpoints load by name. Pretrained weights are DeiT's ImageNet weights through timm (the
Hugging Face hub), or a local copy of ``deit_small_patch16_224-cd65a155.pth`` (``weights=PATH``;
its ``{"model": ...}`` wrapper and classifier are handled).

The forward pass runs timm's own modules block by block, computing each block's attention
explicitly (timm's fused kernel returns no weights; ``_block`` is timm's ``Block.forward``
with the softmax made visible, and a test checks it against timm's own forward). It returns:

- features: the patch tokens after the final norm as an (N, D, h, w) map (TS-CAM's ``x_patch``);
- taps ``block<i>``: the patch tokens after block i as (N, D, h, w) maps, for the blocks SCG
  fuses (``scg_taps``);
- tap ``attention``: the class token's attention to every patch, (N, depth, heads, h * w):
  row 0, columns 1.. of each block's softmax (what TS-CAM and SCM sum into their maps).

Inputs of any size work (timm's ``dynamic_img_size``: the position embeddings are resampled
bicubically to the patch grid; at the size they were made for they are used as they are).
There is no large-feature-map variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from wsolbench.backbones.base import Backbone, load_weights
from wsolbench.errors import MissingWeights, WsolbenchError
from wsolbench.registry import register_backbone

DEIT_SMALL_URL = "https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth"


def _block(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's ``Block.forward`` (pre-norm attention and MLP, layer scale, drop path) that also
    returns the attention weights (N, heads, T, T) (timm's non-fused path, made explicit)."""
    attn = block.attn
    y = block.norm1(x)
    batch, tokens, _ = y.shape
    qkv = attn.qkv(y).reshape(batch, tokens, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    y = (attn.attn_drop(weights) @ v).transpose(1, 2).reshape(batch, tokens, -1)
    y = attn.proj_drop(attn.proj(getattr(attn, "norm", nn.Identity())(y)))
    x = x + block.drop_path1(block.ls1(y))
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    return x, weights


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(N, h * w, D) patch tokens -> (N, D, h, w), row-major (TS-CAM's reshape and permute;
    pytorch-grad-cam's ``vit_reshape_transform`` without the class token)."""
    return tokens.reshape(tokens.shape[0], *grid, tokens.shape[-1]).permute(0, 3, 1, 2)


class VisionTransformer(Backbone):
    """Base of the timm ViT backbones: subclasses name the timm model and its options."""

    timm_name: ClassVar[str]
    timm_options: ClassVar[dict[str, Any]] = {}
    architecture_types = ("vit",)
    init_modes: ClassVar[Mapping[str, str]] = {"vit": "timm"}
    insertion_points = ("norm",)  # on the tokens after the final norm
    large_feature_map_variant = False
    cam_head = "none"
    # timm's classifier and a distilled DeiT's second head: not part of the backbone.
    dropped_prefixes = ("head.", "head_dist.", "fc_norm.")
    backbone_name: ClassVar[str]  # the registered name, for messages
    pretrained_url: ClassVar[str | None] = None

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        architecture_type: str = "vit",
    ):
        super().__init__(inserts, architecture_type)
        if large_feature_map:
            raise WsolbenchError(f"{type(self).__name__} has no large-feature-map variant")
        net = self._create(pretrained and weights is None)
        self.patch_embed, self.cls_token, self.pos_embed = (
            net.patch_embed,
            net.cls_token,
            net.pos_embed,
        )
        self.pos_drop, self.blocks, self.norm = net.pos_drop, net.blocks, net.norm
        self.patch_size = int(net.patch_embed.patch_size[0])
        self.grid = tuple(int(v) for v in net.patch_embed.grid_size)  # of the pos_embed
        self.feature_stride = self.patch_size
        self.out_channels = self.head_width = int(net.embed_dim)
        self.depth, self.num_heads = len(net.blocks), int(net.blocks[0].attn.num_heads)
        self.tap_channels = {f"block{i}": self.out_channels for i in range(self.depth)}
        # Where pytorch-grad-cam's documentation puts a ViT's target layer (the last block's
        # norm1, with its ViT reshape transform): the explainers' default target layer.
        self.explainer_layer = f"blocks.{self.depth - 1}.norm1"
        self._check_inserts()
        if weights is not None:
            load_weights(self, name=self.backbone_name, pretrained=False, weights=weights)

    def _create(self, pretrained: bool) -> nn.Module:
        import timm

        options = dict(self.timm_options, num_classes=0, dynamic_img_size=True)
        try:
            return timm.create_model(self.timm_name, pretrained=pretrained, **options)
        except Exception as error:  # offline, proxy, hub errors: all mean "no weights"
            if not pretrained:
                raise
            raise MissingWeights(
                f"cannot get pretrained weights for backbone '{self.backbone_name}' "
                f"({type(error).__name__}: {error})",
                url=self.pretrained_url,
            ) from None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from timm.layers import resample_abs_pos_embed

        x = self.patch_embed(images)  # (N, h, w, D): timm's dynamic-size layout
        batch, height, width, dim = x.shape
        grid = (height, width)
        pos_embed = resample_abs_pos_embed(self.pos_embed, list(grid), list(self.grid), 1)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x.reshape(batch, -1, dim)], 1)
        x = self.pos_drop(x + pos_embed)
        taps: dict[str, torch.Tensor] = {}
        attention = []
        for index, block in enumerate(self.blocks):
            x, weights = _block(block, x)
            attention.append(weights[:, :, 0, 1:])
            if f"block{index}" in self.scg_taps:
                taps[f"block{index}"] = tokens_to_map(x[:, 1:], grid)
        x = self._insert("norm", self.norm(x))
        taps["attention"] = torch.stack(attention, dim=1)
        return tokens_to_map(x[:, 1:], grid), taps

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth growing linearly from 0 to ``rate`` over the blocks (timm's and
        TS-CAM's ``dpr`` rule); 0 turns it off."""
        from timm.layers import DropPath

        rates = torch.linspace(0, rate, self.depth, device="cpu").tolist()  # also on meta
        for block, value in zip(self.blocks, rates):
            block.drop_path1 = DropPath(value) if value > 0 else nn.Identity()
            block.drop_path2 = DropPath(value) if value > 0 else nn.Identity()

    def reshape_transform(self, images: torch.Tensor):
        """pytorch-grad-cam's ``vit_reshape_transform`` for this input's patch grid."""
        from functools import partial

        from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

        height, width = (side // self.patch_size for side in images.shape[-2:])
        return partial(vit_reshape_transform, height=height, width=width)


@register_backbone("deit_small")
class DeiTSmall(VisionTransformer):
    """DeiT-S/16 (timm's deit_small_patch16_224): 14 x 14 patch tokens at 224, drop_path 0.1."""

    backbone_name = "deit_small"
    timm_name = "deit_small_patch16_224"
    timm_options: ClassVar[dict[str, Any]] = {"drop_path_rate": 0.1}
    pretrained_url = DEIT_SMALL_URL
    # SCG's taps: the patch tokens of two late blocks, not the last: 2/3 and 5/6 of the depth,
    # where benchmarks/bench_vit_taps.py puts TS-CAM's best pair on the synthetic benchmark
    # (tinyvit's blocks 3 and 4 of 0..5; the last pair is never the best there).
    scg_taps = ("block7", "block9")


@register_backbone("tinyvit")
class TinyViT(VisionTransformer):
    """Small ViT (6 blocks, dim 96, 8 px patches: 8 x 8 tokens at 64 px); trains on CPU.

    About tinyvgg's cost (3 heads, MLP ratio 2); no pretrained weights."""

    backbone_name = "tinyvit"
    timm_name = "vit_tiny_patch16_224"  # the architecture family; every size is overridden
    timm_options: ClassVar[dict[str, Any]] = {
        "img_size": 64,
        "patch_size": 8,
        "embed_dim": 96,
        "depth": 6,
        "num_heads": 3,
        "mlp_ratio": 2.0,
    }
    scg_taps = ("block3", "block4")  # 2/3 and 5/6 of the depth, as deit_small's

    def _create(self, pretrained: bool) -> nn.Module:
        if pretrained:
            raise MissingWeights("backbone 'tinyvit' has no pretrained weights")
        return super()._create(False)
