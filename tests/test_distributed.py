"""Two gloo processes on the CPU (torchrun): DDP training runs, and evaluation sharded across
the ranks merges to exactly the single-process counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from engine_helpers import CountingEvaluator, box_inputs, make_tiny_dataset, real_evaluator

from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import load_checkpoint, load_model
from wsolbench.engine.evaluate import evaluate

WORKER = Path(__file__).with_name("distributed_worker.py")


def test_shards_cover_every_image_once():
    shards = [distributed.shard_indices(11, rank, 3) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert distributed.world_size() == 1 and distributed.is_main()


def test_two_gloo_ranks_train_and_merge_evaluation_exactly(tmp_path):
    data = make_tiny_dataset(tmp_path / "synthetic")
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

    saved = torch.load(tmp_path / "merged.pt", weights_only=True)
    assert saved["world_size"] == 2
    checkpoint_path = tmp_path / "run" / "last.pt"
    history = load_checkpoint(checkpoint_path)["history"]
    assert len(history) == 1
    assert history[0]["images"] == len(read_split(data / "metadata" / "train"))  # summed over ranks

    # The same checkpoint evaluated in this single process.
    dataset = EvalDataset(read_split(data / "metadata" / "test"), data / "images", 32)
    model = load_model(checkpoint_path)
    single = evaluate(model, dataset, CountingEvaluator(), batch_size=2)
    expected = single.state_dict()
    assert saved["state"]["images"] == expected["images"] == len(dataset)
    assert saved["state"]["ids"] == expected["ids"]  # every image once, none padded in
    assert saved["state"]["correct"] == expected["correct"]
    assert torch.equal(saved["state"]["counts"], expected["counts"])

    # The real evaluator (MaxBoxAcc counts, classic localization counts): the same counts.
    reference = evaluate(model, dataset, real_evaluator(), prepare=box_inputs(16), batch_size=2)
    expected_state = reference.state_dict()
    assert saved["evaluator"].keys() == expected_state.keys()
    for name, fields in expected_state.items():
        for key, value in fields.items():
            assert torch.equal(
                torch.as_tensor(saved["evaluator"][name][key]), torch.as_tensor(value)
            ), (name, key)
    assert int(expected_state["box"]["count"]) == len(dataset)
    assert reference.compute()["MaxBoxAcc"] >= 0
