"""Loading workers: at most one per available CPU, silently, by one rule (engine/workers.py)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from wsolbench.engine import workers as workers_module
from wsolbench.engine.config import TrainConfig
from wsolbench.engine.workers import available_cpus, loader_workers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(workers_module, "available_cpus", lambda: 2)


def test_at_most_one_worker_per_cpu(two_cpus):
    assert [loader_workers(n) for n in (0, 1, 2, 8)] == [0, 1, 2, 2]


def test_available_cpus_is_what_pytorch_counts():
    import os

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == expected >= 1


def test_training_records_the_workers_it_runs(two_cpus, tmp_path):
    """A suite's `workers = 8` on a 2-CPU machine trains with 2, and the run's identity says
    so (the augmentation stream is the 2-worker one); 0 stays 0."""
    eight = TrainConfig(data=str(tmp_path), workers=8)
    assert eight.workers == 2
    assert eight.config_hash() == TrainConfig(data=str(tmp_path), workers=2).config_hash()
    assert TrainConfig(data=str(tmp_path), workers=0).workers == 0
    checked = TrainConfig.checked(
        {"data": str(tmp_path), "workers": 8}, {"workers": "train.workers"}
    )
    assert checked.workers == 2


@pytest.mark.slow  # starts loader worker processes
def test_more_workers_than_cpus_starts_no_pytorch_warning(tiny_data):
    """`predict` with more workers than the machine has: no PyTorch worker warning."""
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.infer import predict
    from wsolbench.registry import create_method

    split = read_split(Path(tiny_data) / "metadata" / "test")
    dataset = EvalDataset(split.subset(range(2)), Path(tiny_data) / "images", 32)
    model = create_method("cam", backbone="tinyvgg", num_classes=split.num_classes)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*worker.*")
        batches = list(predict(model, dataset, batch_size=2, ten_crop=False, workers=64))
    assert len(batches) == 1


def test_every_loader_takes_its_workers_from_the_rule():
    """Each DataLoader's `num_workers` and each map-reading pool goes through loader_workers."""
    sources = [*ROOT.glob("wsolbench/**/*.py"), *ROOT.glob("methods/*.py")]
    sources += list(ROOT.glob("evaluation/**/*.py"))
    found = 0
    for path in sources:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bnum_workers\s*=", line):
                found += 1
                assert "loader_workers(" in line, f"{path}:{number}: {line.strip()}"
    assert found >= 2
