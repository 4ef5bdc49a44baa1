"""What explainers add to a suite: one scoring pass (val + test, as `wsolbench bench` runs it,
ten-crop, plain and + SCG) per explainer on one model, against the same pass with the model's CAM.

    python benchmarks/bench_explainers.py --checkpoint runs/synthetic-default/cam-*/last.pt
    python benchmarks/bench_explainers.py --explainers cam gradcam++ layercam scorecam

Without --checkpoint, a randomly initialized CAM/tinyvgg (the cost does not depend on training).
The ratio to the CAM pass is what transfers between machines and loads: multiply it by a suite's
measured CAM scoring time (the leaderboard notes' "inference with scoring") to extrapolate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from wsolbench.bench import postprocessors as suite_postprocessors
from wsolbench.bench import prepare_data, score_data_split
from wsolbench.engine.checkpoint import load_model
from wsolbench.evaluation import create_protocols
from wsolbench.registry import create_explainer, create_method
from wsolbench.suite import load_suite


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="synthetic-default")
    parser.add_argument(
        "--data", default=None, help="the suite's dataset root (default: a temporary one)"
    )
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument(
        "--explainers",
        nargs="+",
        default=["cam", "gradcam++", "layercam"],
        help="the first is the reference of the ratios (default: %(default)s)",
    )
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as scratch:
        overrides = [f"dataset.root={args.data or Path(scratch) / 'data'}"]
        suite = load_suite(args.suite, overrides)
        paths = prepare_data(suite, console)
        if args.checkpoint:
            model = load_model(args.checkpoint)
        else:
            torch.manual_seed(0)
            model = create_method("cam", backbone=suite.train["backbone"], num_classes=10).eval()
        postprocessors = suite_postprocessors(suite)
        protocols = create_protocols(suite.evaluation)
        table = Table(
            title=f"one val + test scoring pass per explainer ({args.suite}, torch threads {torch.get_num_threads()})"
        )
        for column in ("explainer", "pass s", "x CAM pass", "maps ms / image"):
            table.add_column(column, justify="right")
        # Warm-up (numba compilation of the evaluator, imports), not timed.
        score_data_split(
            model,
            paths,
            "val",
            postprocessors,
            protocols,
            suite,
            torch.device("cpu"),
            False,
            create_explainer("cam"),
        )
        reference = None
        for name in args.explainers:
            explainer = create_explainer(name)
            started = time.perf_counter()
            for split in ("val", "test"):
                score_data_split(
                    model,
                    paths,
                    split,
                    postprocessors,
                    protocols,
                    suite,
                    torch.device("cpu"),
                    False,
                    explainer,
                )
            seconds = time.perf_counter() - started
            reference = reference or seconds
            table.add_row(
                name,
                f"{seconds:.1f}",
                f"{seconds / reference:.2f}",
                f"{explainer.ms_per_image():.1f}",
            )
            console.print(f"{name}: {seconds:.1f} s")
    console.print(table)


if __name__ == "__main__":
    main()
