"""Two gloo processes on the CPU (torchrun): DDP training runs, and the bench's scoring path
sharded across the ranks gives exactly the single-process results (rows, curves, per-image
records), merged by torchmetrics."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import bench_scores

from wsolbench.data.metadata import read_split
from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import load_checkpoint, load_model

WORKER = Path(__file__).with_name("distributed_worker.py")


def test_shards_cover_every_image_once():
    shards = [distributed.shard_indices(11, rank, 3) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert distributed.world_size() == 1 and distributed.is_main()


@pytest.mark.slow  # torchrun, two processes
def test_two_gloo_ranks_train_and_score_exactly_as_one_process(tiny_data, tmp_path):
    data = tiny_data
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        str(WORKER),
        str(data),
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    merged = pickle.loads((tmp_path / "scores.pkl").read_bytes())
    assert merged.pop("world_size") == 2
    checkpoint_path = tmp_path / "run" / "last.pt"
    history = load_checkpoint(checkpoint_path)["history"]
    assert len(history) == 1
    assert history[0]["images"] == len(read_split(data / "metadata" / "train"))  # summed over ranks

    # The same checkpoint scored by the same path in this single process.
    single = bench_scores(load_model(checkpoint_path), data)
    test_images = len(read_split(data / "metadata" / "test"))
    assert merged.keys() == single.keys() == {"none", "scg"}
    for name, expected in single.items():
        got = merged[name]
        assert got["rows"] == expected["rows"], name
        assert {r["protocol"] for r in got["rows"]} == {"spa", "wsolevaluation", "peak"}
        assert got["curves"] == expected["curves"], name
        assert got["per_image"].keys() == expected["per_image"].keys()
        # every image once (none padded in, none lost), in dataset order
        assert got["per_image"]["index"].tolist() == list(range(test_images))
        assert got["per_image"]["thumb_index"].tolist() == list(range(0, test_images, 2))
        for key, value in expected["per_image"].items():
            assert np.array_equal(got["per_image"][key], value), (name, key)
            assert got["per_image"][key].dtype == value.dtype, (name, key)
