"""Fixtures shared by the whole suite, and what the `slow` and `gpu` markers do.

The session fixtures train as little as the suite needs:

- ``tiny_data``: the tiny synthetic dataset (engine_helpers.make_tiny_dataset), generated once;
- ``tiny_run``: ONE cam / tinyvgg run on it (engine_helpers.tiny_config, 8 epochs), for every
  test that needs *a* trained checkpoint (engine, infer, explainers, evaluation maps, bad input);
- ``tiny_bench``: ONE ``bench`` run of the tiny suite (engine_helpers.TINY_SUITE with cam and
  spa, both post-processors, every protocol) on the same dataset, for the bench, report and
  browser tests.

Their files are shared: tests read them in place, and copy them into their ``tmp_path`` before
writing next to them (``TinyRun.copy_to``, ``TinyBench.copy_to``). A test that writes into them
anyway fails (``_shared_files_stay_unchanged``), so one test's writes cannot leak into another.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from engine_helpers import (
    load_tiny_suite,
    make_tiny_dataset,
    run_tiny_bench,
    snapshot,
    tiny_config,
)

from wsolbench.engine.config import TrainConfig

SHARED_FIXTURES = ("tiny_data", "tiny_run", "tiny_bench")


# -- markers -----------------------------------------------------------------------------------
def pytest_collection_modifyitems(config, items):
    no_cuda = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False here")
    cuda = torch.cuda.is_available()
    for item in items:
        if not cuda and item.get_closest_marker("gpu") is not None:
            item.add_marker(no_cuda)


@pytest.fixture
def one_thread():
    """One torch thread for the test: the CI machine's cores are shared (two threads mostly wait
    on each other at these sizes), and CPU float sums depend on the thread count, so runs that
    must be bit-identical train with the same one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- shared data, checkpoint and bench run -----------------------------------------------------
@pytest.fixture(scope="session")
def shared_root(tmp_path_factory) -> Path:
    """The folder that holds every shared fixture's files (checked by the guard below)."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def tiny_data(shared_root) -> Path:
    return make_tiny_dataset(shared_root / "synthetic")


@dataclass(frozen=True)
class TinyRun:
    """A finished `train` run: its config and its last.pt (read it in place, do not write)."""

    config: TrainConfig
    checkpoint: Path

    @property
    def data(self) -> Path:
        return Path(self.config.data)

    def copy_to(self, folder: Path) -> Path:
        """A private copy of the run folder (checkpoint, config.json, history.json) at `folder`;
        returns the copy's checkpoint."""
        shutil.copytree(self.checkpoint.parent, folder)
        return folder / self.checkpoint.name


@pytest.fixture(scope="session")
def tiny_run(tiny_data, shared_root) -> TinyRun:
    """cam on tinyvgg, 8 epochs (about a second on one core): it learns the tiny dataset well
    above chance, which test_engine checks."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from wsolbench.engine.train import train

        config = tiny_config(tiny_data, shared_root / "run", epochs=8)
        checkpoint = train(config).checkpoint
    finally:
        torch.set_num_threads(previous)
    return TinyRun(config, checkpoint)


@dataclass(frozen=True)
class TinyBench:
    """A finished `bench` run of the tiny suite: `runs/` (one folder per method), `lb/tiny/`
    (the leaderboard) and the results table."""

    root: Path
    suite: object  # wsolbench.suite.Suite
    frame: pd.DataFrame

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def board(self) -> Path:
        return self.root / "lb" / self.suite.name

    @property
    def results(self) -> pd.DataFrame:
        return self.frame.copy()  # a test may change its copy

    def checkpoint(self, label: str) -> Path:
        (path,) = (self.runs / self.suite.name).glob(f"{label}-*/last.pt")
        return path

    def copy_to(self, folder: Path) -> TinyBench:
        """A private copy of runs/ and lb/ (to run the bench again on them)."""
        for name in ("runs", "lb"):
            shutil.copytree(self.root / name, folder / name)
        return TinyBench(folder, self.suite, self.frame)


@pytest.fixture(scope="session")
def tiny_bench(tiny_data, shared_root) -> TinyBench:
    root = shared_root / "bench"
    root.mkdir()
    suite = load_tiny_suite(root, tiny_data, ["methods.spa={}"])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_tiny_bench(suite, root, width=80)
    finally:
        torch.set_num_threads(previous)
    return TinyBench(root, suite, results)


@pytest.fixture(autouse=True)
def _shared_files_stay_unchanged(request):
    """Fails the test that wrote, replaced or deleted a file of a shared fixture."""
    if not any(name in request.fixturenames for name in SHARED_FIXTURES):
        yield
        return
    root = request.getfixturevalue("shared_root")
    before = snapshot(root)
    yield
    after = snapshot(root)
    if after != before:
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        pytest.fail(
            f"the test changed shared fixture files (copy them into tmp_path first): {changed}",
            pytrace=False,
        )
