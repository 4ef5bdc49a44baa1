"""CPU float arithmetic (engine/numerics.py): a CPU training's bits depend on its own settings
(threads, MKL branch), never on the caller's thread count or on a numba launch before it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
from engine_helpers import tiny_config

from wsolbench.engine import numerics
from wsolbench.engine.train import train
from wsolbench.evaluation.level_sets import batch_level_hits


def _weights(config) -> dict[str, torch.Tensor]:
    return torch.load(train(config).checkpoint, weights_only=True)["model"]


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _numba_launch() -> None:
    """numba's parallel box search, unguarded: it sets the OpenMP count torch shares to its own."""
    levels = np.zeros((2, 4, 4), np.int64)
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], np.int64)
    batch_level_hits(levels, gt, np.array([0, 1, 2]), np.array([50]), 2)


def test_training_bits_do_not_depend_on_the_callers_threads_or_a_numba_launch(tiny_data, tmp_path):
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _weights(tiny_config(tiny_data, tmp_path / "one", threads=1, epochs=1))
        assert torch.get_num_threads() == 1  # the caller's count is put back
        two = _weights(tiny_config(tiny_data, tmp_path / "two", threads=2, epochs=1))
        # The premise: the thread count changes the weights (oneDNN's convolution backward
        # splits its batch sum among the threads), so the pin below is what keeps them.
        assert not _equal(one, two)
        torch.set_num_threads(2)
        _numba_launch()
        again = _weights(tiny_config(tiny_data, tmp_path / "again", threads=1, epochs=1))
        assert torch.get_num_threads() == numerics.cpu_threads(0)
        assert _equal(one, again)
    finally:
        torch.set_num_threads(previous)


def test_the_thread_count_and_mkl_branch_are_part_of_a_cpu_runs_identity(tiny_data, tmp_path):
    one = tiny_config(tiny_data, tmp_path / "a", threads=1)
    assert one.execution()["threads"] == 1
    assert one.execution()["mkl"] == numerics.mkl_branch()
    assert one.config_hash() != tiny_config(tiny_data, tmp_path / "a", threads=2).config_hash()
    assert "threads" not in tiny_config(tiny_data, tmp_path / "a", device="cuda").execution()
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # threads = 0: the count torch has when the run starts
        assert tiny_config(tiny_data, tmp_path / "a", threads=0).execution()["threads"] == 3
    finally:
        torch.set_num_threads(previous)


def test_mkl_runs_in_its_reproducible_mode_once_wsolbench_is_imported():
    """MKL (nn.Linear's gemm) fixes its code branch at its first call: importing wsolbench asks
    for conditional numerical reproducibility before that, in this process and in a new one."""
    code = (
        "import torch, wsolbench\n"
        "from wsolbench.engine import numerics\n"
        "torch.nn.Linear(8, 4)(torch.ones(2, 8))\n"
        "print(numerics.mkl_branch())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    expected = "none" if numerics.mkl_branch() == "none" else numerics.MKL_BRANCH.lower()
    assert out == [expected]
    assert numerics.mkl_branch() == expected
