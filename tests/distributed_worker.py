"""Run under torchrun by tests/test_distributed.py: DDP-train one tiny epoch, then evaluate a
split sharded across the ranks and save the merged evaluator state (rank 0)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import load_model
from wsolbench.engine.evaluate import evaluate
from wsolbench.engine.train import train

sys.path.insert(0, str(Path(__file__).parent))
from engine_helpers import CountingEvaluator, box_inputs, real_evaluator, tiny_config  # noqa: E402


def main(data: Path, out: Path) -> None:
    torch.set_num_threads(1)
    checkpoint = train(tiny_config(data, out / "run", epochs=1, batch_size=8)).checkpoint
    model = load_model(checkpoint)
    dataset = EvalDataset(read_split(data / "metadata" / "test"), data / "images", 32)
    counts = evaluate(model, dataset, CountingEvaluator(), batch_size=2)
    metrics = evaluate(model, dataset, real_evaluator(), prepare=box_inputs(16), batch_size=2)
    if distributed.is_main():
        torch.save(
            {
                "state": counts.state_dict(),
                "world_size": distributed.world_size(),
                "evaluator": metrics.state_dict(),
            },
            out / "merged.pt",
        )
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
