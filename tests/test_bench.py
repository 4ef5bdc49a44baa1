"""The main job end to end on a tiny synthetic suite: results, caching, resume, report."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from rich.console import Console

from wsolbench import bench
from wsolbench.engine import train as train_module
from wsolbench.suite import load_suite

TINY = """
name = "tiny"
[dataset]
kind = "synthetic"
root = "{root}"
image_size = 32
resize_size = 36
synthetic = {{ num_classes = 3, image_size = 32, train_per_class = 6, val_per_class = 2, test_per_class = 3 }}
[train]
backbone = "tinyvgg"
pretrained = false
epochs = 2
batch_size = 8
lr = 0.01
workers = 0
[methods.cam]
[postprocessors.none]
[postprocessors.scg]
fo_th = 0.1
[evaluation]
box_thresholds = [0.1, 0.3]
map_size = 32
overlay_images = 2
batch_size = 8
"""


def tiny_suite(tmp_path: Path, **overrides):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(root=tmp_path / "data"))
    return load_suite(path, [f"{k}={v}" for k, v in overrides.items()])


def run(suite, tmp_path):
    return bench.run_bench(
        suite,
        runs_dir=tmp_path / "runs",
        out_dir=tmp_path / "lb",
        device="cpu",
        console=Console(width=200, record=True),
        progress=False,
    )


def test_bench_writes_every_metric_family_and_caches(tmp_path, monkeypatch):
    suite = tiny_suite(tmp_path)
    threads = torch.get_num_threads()
    results = run(suite, tmp_path)
    assert torch.get_num_threads() == threads  # the next method trains as it would alone
    metrics = set(results["metric"])
    for metric in (
        "top1_loc",
        "top5_loc",
        "gt_known_loc",
        "err_cls",
        "MaxBoxAcc",
        "MaxBoxAccV2",
        "PxAP",
        "PeakIoU",
        "PeakT",
    ):
        assert metric in metrics
    assert set(results["postprocessor"]) == {"none", "scg"}
    assert set(results["protocol"]) == {"spa", "wsolevaluation", "peak"}
    # The five error types add up to the Top-1 Loc error.
    for _, group in results[results["protocol"] == "spa"].groupby("postprocessor"):
        values = dict(zip(group["metric"], group["value"]))
        errors = sum(values[m] for m in ("err_cls", "err_mins", "err_part", "err_more", "err_ot"))
        assert errors == pytest.approx(100 - values["top1_loc"])
    out = tmp_path / "lb" / "tiny"
    for name in (
        "leaderboard.md",
        "results.csv",
        "results.json",
        "report.html",
        "figures/overlays.png",
    ):
        assert (out / name).is_file(), name
    saved = pd.read_csv(out / "results.csv")
    assert len(saved) == len(results) and saved["config_hash"].nunique() == 1

    # A second run only re-renders: no training, no inference.
    monkeypatch.setattr(bench, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(bench, "predict", lambda *a, **k: pytest.fail("inferred again"))
    again = run(suite, tmp_path)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), results.reset_index(drop=True))


def test_interrupted_bench_resumes_to_the_same_result(tmp_path, monkeypatch):
    suite = tiny_suite(tmp_path)
    real_train = train_module.train

    def interrupted(config, on_epoch_end=None):
        def stop(epoch, stats):
            raise KeyboardInterrupt

        return real_train(config, on_epoch_end=stop)

    monkeypatch.setattr(bench, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(suite, tmp_path / "a")
    monkeypatch.setattr(bench, "train", real_train)
    resumed = run(suite, tmp_path / "a")
    fresh = run(suite, tmp_path / "b")
    assert resumed["value"].tolist() == fresh["value"].tolist()
    weights = [
        torch.load(next((tmp_path / d / "runs" / "tiny").glob("cam-*/last.pt")), weights_only=True)[
            "model"
        ]
        for d in ("a", "b")
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_results_carry_provenance(tmp_path):
    results = run(tiny_suite(tmp_path), tmp_path)
    assert (results["versions"].str.contains('"torch"')).all()
    assert results["checkpoint_hash"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert results["seed"].eq(0).all() and results["protocol"].notna().all()
    # One configuration hash: the run folder's name, the checkpoint's and every row's.
    checkpoint_path = next((tmp_path / "runs" / "tiny").glob("cam-*/last.pt"))
    recorded = torch.load(checkpoint_path, weights_only=True)["config_hash"]
    assert (
        results["config_hash"].eq(recorded).all()
        and checkpoint_path.parent.name == f"cam-{recorded[:12]}"
    )
    note = (tmp_path / "lb" / "tiny" / "leaderboard.md").read_text()
    assert "Reproduce with `wsolbench bench --suite" in note
