"""`make gpu-check` on a machine without CUDA: one line, exit 0, nothing written."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the check itself runs")
def test_gpu_check_without_cuda_says_so_in_one_line(tmp_path):
    out = tmp_path / "gpu-check.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing run"
    ]
    assert done.stderr == "" and not out.exists()
