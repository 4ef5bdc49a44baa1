"""Which two blocks of a vision transformer should SCG fuse? Every pair, measured.

SCG (the SPA paper's self-correlation post-processor) fuses the self-correlation of two feature
taps. A CNN offers its last two stages; a ViT offers the patch tokens of any of its blocks, all
on one grid. This script takes a trained transformer checkpoint (TS-CAM or SCM), taps the patch
tokens of every block, and scores the method's maps plain and + SCG for every pair of blocks
under the spa and wsolevaluation protocols (box threshold chosen on val, applied on test, as the
bench does), so the choice of ``scg_taps`` is a measurement:

    wsolbench bench --suite synthetic-transformers          # trains tscam and scm on tinyvit
    python benchmarks/bench_vit_taps.py --checkpoint runs/synthetic-transformers/tscam-*/last.pt \\
        --data data/synthetic
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine.checkpoint import load_model
from wsolbench.engine.evaluate import score_split
from wsolbench.evaluation import create_protocols
from wsolbench.methods.postprocessor import PostProcessor
from wsolbench.registry import create_postprocessor

METRICS = (
    ("spa", "GTKnownLoc", "GT-known Loc"),
    ("spa", "Top1Loc", "Top-1 Loc"),
    ("wsolevaluation", "MaxBoxAccV2", "MaxBoxAccV2"),
    ("wsolevaluation", "PxAP", "PxAP"),
)


class PairSCG(PostProcessor):
    """SCG on two of the taps ``predict`` hands over (every block's, in block order)."""

    def __init__(self, scg, first: int, second: int):
        self.scg, self.pair = scg, (first, second)

    def process(self, cams, taps, image_size):
        return self.scg.process(cams, [taps[i] for i in self.pair], image_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a tscam / scm checkpoint")
    parser.add_argument("--data", required=True, help="the synthetic benchmark's root")
    parser.add_argument("--image-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument("--preset", default="cub", help="SCG thresholds (default: %(default)s)")
    args = parser.parse_args()

    model = load_model(args.checkpoint)
    backbone = model.backbone
    blocks = tuple(f"block{i}" for i in range(backbone.depth))
    backbone.scg_taps = blocks  # predict() hands every block's tokens to the post-processors
    scg = create_postprocessor("scg", **_preset(args.preset))
    postprocessors = {"none": create_postprocessor("identity")}
    for first, second in itertools.combinations(range(len(blocks)), 2):
        postprocessors[f"scg {first},{second}"] = PairSCG(scg, first, second)
    protocols = create_protocols(
        {
            "map_size": args.image_size,
            "cam_curve_interval": 0.01,
            "box_thresholds": [0.05 * k for k in range(1, 13)],
        }
    )
    data = Path(args.data)
    scores = {}
    for split in ("val", "test"):
        dataset = EvalDataset(
            read_split(data / "metadata" / split),
            data / "images",
            args.image_size,
            mask_root=data / "masks",
        )
        scores[split] = score_split(
            model, dataset, postprocessors, protocols, batch_size=args.batch_size
        )
    table = Table(
        title=f"SCG on two blocks of {model.hparams['backbone']} ({Path(args.checkpoint).parent.name}): "
        "test split, box threshold chosen on val"
    )
    table.add_column("taps")
    for _, _, label in METRICS:
        table.add_column(label, justify="right")
    for name in postprocessors:
        rows = scores["test"][name].rows({}, scores["val"][name].choose())
        values = {(r["protocol"], r["metric"]): r["value"] for r in rows}
        table.add_row(
            name if name == "none" else f"blocks {name.split()[1]}",
            *(f"{values[(p, m)]:.1f}" for p, m, _ in METRICS),
        )
    Console(width=120).print(table)


def _preset(name: str) -> dict:
    from wsolbench.methods.scg import SCG

    return dict(SCG.presets[name])


if __name__ == "__main__":
    main()
