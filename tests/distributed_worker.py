"""Run under torchrun by tests/test_distributed.py: DDP-train one tiny epoch, then score the test
split with the bench's own scoring path, sharded across the ranks, and save what rank 0 gets."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import torch

from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import load_model
from wsolbench.engine.train import train

sys.path.insert(0, str(Path(__file__).parent))
from engine_helpers import bench_scores, tiny_config  # noqa: E402


def main(data: Path, out: Path) -> None:
    torch.set_num_threads(1)
    checkpoint = train(tiny_config(data, out / "run", epochs=1, batch_size=8)).checkpoint
    scores = bench_scores(load_model(checkpoint), data)
    if distributed.is_main():
        scores["world_size"] = distributed.world_size()
        (out / "scores.pkl").write_bytes(pickle.dumps(scores))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
