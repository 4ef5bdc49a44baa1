"""The main job end to end on the tiny suite: results, caching, resume, report.

The bench run itself is shared (tests/conftest.py `tiny_bench`: cam and spa on the tiny dataset);
tests that run the bench again work on a copy of it in their tmp_path.
"""

import pandas as pd
import pytest
import torch
from engine_helpers import load_tiny_suite, run_tiny_bench

from wsolbench import bench
from wsolbench.engine import train as train_module

METRICS = {
    "spa": {
        "Top1Loc",
        "Top5Loc",
        "GTKnownLoc",
        "Top1Cls",
        "Top5Cls",
        "err_cls",
        "err_mins",
        "err_part",
        "err_more",
        "err_ot",
        "box_threshold",
        "Top1Loc_on_test",
        "Top5Loc_on_test",
        "GTKnownLoc_on_test",
        "box_threshold_on_test",
    },
    "wsolevaluation": {
        "MaxBoxAcc",
        "MaxBoxAccV2",
        "MaxBoxAccV2@30",
        "MaxBoxAccV2@50",
        "MaxBoxAccV2@70",
        "PxAP",
    },
    "peak": {"PeakIoU", "PeakT"},
}


def test_bench_writes_every_metric_family_and_caches(tiny_bench, tmp_path, monkeypatch):
    results = tiny_bench.results
    assert set(results["method"]) == {"cam", "spa"}
    assert set(results["postprocessor"]) == {"none", "scg"}
    assert set(results["protocol"]) == set(METRICS)
    for (method, postprocessor, protocol), group in results.groupby(
        ["method", "postprocessor", "protocol"]
    ):
        setting = (method, postprocessor, protocol)
        assert set(group["metric"]) == METRICS[protocol], setting
        values = dict(zip(group["metric"], group["value"]))
        if protocol == "peak":
            assert 0 <= values["PeakIoU"] <= 100 and 0 <= values["PeakT"] <= 255, setting
            continue
        if protocol == "spa":  # the box thresholds are chosen among the suite's
            assert values.pop("box_threshold") in (0.1, 0.3), setting
            on_test = values.pop("box_threshold_on_test")
            assert on_test in (0.1, 0.3), setting
            # on test, the threshold with the best GT-known Loc there: never below val's choice
            assert values["GTKnownLoc_on_test"] >= values["GTKnownLoc"], setting
        # Percentages of the test images (or pixels).
        assert all(0 <= v <= 100 for v in values.values()), setting
        if protocol == "spa":
            # The five error types add up to the Top-1 Loc error; Top-5 >= Top-1.
            errors = sum(values[m] for m in ("err_cls", "err_mins", "err_part", "err_more"))
            assert errors + values["err_ot"] == pytest.approx(100 - values["Top1Loc"]), setting
            assert values["err_cls"] == pytest.approx(100 - values["Top1Cls"]), setting
            assert values["Top1Loc"] <= values["Top5Loc"], setting
            assert values["Top1Loc"] <= values["GTKnownLoc"], setting
    out = tiny_bench.board
    for name in ("leaderboard.md", "results.csv", "results.json", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "figures" / "overlays.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = pd.read_csv(out / "results.csv")
    pd.testing.assert_series_equal(saved["value"], results["value"], check_names=False)
    assert saved.groupby("method")["config_hash"].nunique().to_dict() == {"cam": 1, "spa": 1}

    # A second run only re-renders: no training, no inference.
    copy = tiny_bench.copy_to(tmp_path)
    monkeypatch.setattr(bench, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(bench, "score_split", lambda *a, **k: pytest.fail("inferred again"))
    monkeypatch.setattr(bench, "write_overlay_maps", lambda *a, **k: pytest.fail("inferred again"))
    again = run_tiny_bench(copy.suite, copy.root)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), results.reset_index(drop=True))
    # The first run kept its records in memory; the second read them back: the same report.
    for name in ("per_image.npz", "results.csv", "results.json", "curves.json"):
        assert (copy.board / name).read_bytes() == (out / name).read_bytes(), name


def test_interrupted_bench_resumes_to_the_same_result(
    tiny_bench, tiny_data, tmp_path, monkeypatch, one_thread
):
    """cam of the tiny suite, interrupted after its first epoch and resumed, gives the shared
    run's cam: the same weights and the same numbers (trained on one thread too)."""
    suite = load_tiny_suite(tmp_path, tiny_data)  # cam alone
    real_train = train_module.train

    def interrupted(config, on_epoch_end=None, **kwargs):
        def stop(epoch, stats):
            raise KeyboardInterrupt

        return real_train(config, on_epoch_end=stop, **kwargs)

    monkeypatch.setattr(bench, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_tiny_bench(suite, tmp_path)
    (checkpoint,) = (tmp_path / "runs" / "tiny").glob("cam-*/last.pt")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    monkeypatch.setattr(bench, "train", real_train)
    threads = torch.get_num_threads()
    resumed = run_tiny_bench(suite, tmp_path)
    assert torch.get_num_threads() == threads  # the next method trains as it would alone
    fresh = tiny_bench.results
    fresh = fresh[fresh["method"] == "cam"]
    key = ["postprocessor", "protocol", "metric"]
    pd.testing.assert_series_equal(
        resumed.set_index(key)["value"].sort_index(), fresh.set_index(key)["value"].sort_index()
    )
    weights = [
        torch.load(path, weights_only=True)["model"]
        for path in (checkpoint, tiny_bench.checkpoint("cam"))
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_results_carry_provenance(tiny_bench):
    results = tiny_bench.results
    assert (results["versions"].str.contains('"torch"')).all()
    assert results["seed"].eq(0).all() and results["protocol"].notna().all()
    # One configuration hash per method: the run folder's name, the checkpoint's and every
    # row's; the checkpoint hash is that of the weights (checkpoint_hash).
    from wsolbench.engine.checkpoint import checkpoint_hash

    for method, rows in results.groupby("method"):
        checkpoint_path = tiny_bench.checkpoint(method)
        recorded = torch.load(checkpoint_path, weights_only=True)["config_hash"]
        assert rows["config_hash"].eq(recorded).all(), method
        assert checkpoint_path.parent.name == f"{method}-{recorded[:12]}"
        assert rows["checkpoint_hash"].eq(checkpoint_hash(checkpoint_path)).all(), method
    note = (tiny_bench.board / "leaderboard.md").read_text()
    assert f"Reproduce with `wsolbench bench --suite {tiny_bench.suite.source}" in note
