"""A method entry given a checkpoint (``checkpoint = PATH`` in a suite, ``bench --checkpoint
LABEL=PATH``): scored as it is under every protocol of the suite, nothing trained, the weights'
hash in every row; a checkpoint that disagrees with its entry is refused before any work."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from engine_helpers import TINY_SUITE, tiny_bench_argv

from wsolbench.cli import main
from wsolbench.engine.checkpoint import checkpoint_hash
from wsolbench.suite import load_suite

VALUES = ["dataset", "split", "backbone", "method", "postprocessor", "protocol", "metric"]


def run(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err.strip()


def test_a_checkpoint_entry_is_scored_as_the_trained_run_is_without_training(
    tiny_bench, tmp_path, capsys
):
    """The tiny bench's own checkpoints, given back to the same suite: every number of every
    protocol (plain and + SCG, ten-crop classification) equals the trained run's."""
    cam, spa = tmp_path / "cam.pt", tmp_path / "spa.pt"
    shutil.copy(tiny_bench.checkpoint("cam"), cam)
    shutil.copy(tiny_bench.checkpoint("spa"), spa)
    argv = tiny_bench_argv(tmp_path, tiny_bench.suite.dataset["root"], "--set", "methods.spa={}")
    argv += ["--checkpoint", f"cam={cam}", "--checkpoint", f"spa={spa}"]
    code, err = run(argv, capsys)
    assert code == 0, err
    assert not list((tmp_path / "runs").rglob("*.pt"))  # nothing trained
    ours = pd.read_csv(tmp_path / "lb" / "tiny" / "results.csv")
    trained = tiny_bench.results
    assert set(ours["protocol"]) == set(trained["protocol"]) >= {"spa", "wsolevaluation", "peak"}
    merged = ours.merge(trained, on=VALUES, suffixes=("", "_trained"))
    assert len(merged) == len(ours) == len(trained)
    assert (merged["value"] == merged["value_trained"]).all()
    for label, path in (("cam", cam), ("spa", spa)):
        # the hash of the weights themselves (identity.weights_hash), as a trained run's
        assert set(ours.loc[ours["method"] == label, "checkpoint_hash"]) == {checkpoint_hash(path)}
    # A second run reads the cached scores; another checkpoint is another run folder.
    code, err = run(argv, capsys)
    assert code == 0, err
    assert len(list((tmp_path / "runs" / "tiny").glob("cam-*"))) == 1


def test_a_checkpoint_key_in_the_suite_file_is_the_same_entry(tiny_bench, tmp_path):
    path = tmp_path / "suite.toml"
    text = TINY_SUITE.format(root=tiny_bench.suite.dataset["root"])
    path.write_text(text.replace("[methods.cam]", '[methods.cam]\ncheckpoint = "w/cam.pt"'))
    (spec,) = load_suite(path).methods
    assert (spec.label, spec.method, spec.checkpoint, spec.hparams) == (
        "cam",
        "cam",
        "w/cam.pt",
        {},
    )
    with pytest.raises(Exception, match=r"methods\.cam\.checkpoint"):
        load_suite(path, ["methods.cam.checkpoint=3"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "train.backbone=resnet50"], "the suite's train.backbone is 'resnet50'"),
        (["--set", "dataset.num_classes=9"], "num_classes"),
        (["--set", "methods.cam.method=has"], "the suite's methods.cam.method is 'has'"),
        (["--set", "train.large_feature_map=true"], "train.large_feature_map"),
    ],
)
def test_a_checkpoint_that_is_not_the_entrys_model_is_refused_up_front(
    tiny_bench, tmp_path, capsys, extra, message
):
    weights = tmp_path / "cam.pt"
    shutil.copy(tiny_bench.checkpoint("cam"), weights)
    argv = tiny_bench_argv(tmp_path, tiny_bench.suite.dataset["root"], *extra)
    code, err = run([*argv, "--checkpoint", f"cam={weights}"], capsys)
    assert code == 2 and "methods.cam.checkpoint" in err and message in err, err
    assert str(weights) in err  # names the file
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lb").exists()


def test_the_entrys_hyperparameters_build_the_model_and_its_tensors_must_fit(
    tiny_bench, tmp_path, capsys
):
    """Training-only hyperparameters (SPA's RAM weight) change nothing: the entry's build the
    model, the checkpoint gives the weights; weights that do not fit it are refused up front."""
    weights = tmp_path / "spa.pt"
    shutil.copy(tiny_bench.checkpoint("spa"), weights)
    argv = tiny_bench_argv(
        tmp_path / "a", tiny_bench.suite.dataset["root"], "--set", "methods.spa={alpha=0.0}"
    )
    code, err = run([*argv, "--methods", "spa", "--checkpoint", f"spa={weights}"], capsys)
    assert code == 0, err
    ours = pd.read_csv(tmp_path / "a" / "lb" / "tiny" / "results.csv")
    trained = tiny_bench.results
    merged = ours.merge(trained[trained["method"] == "spa"], on=VALUES, suffixes=("", "_t"))
    assert len(merged) == len(ours) > 0 and (merged["value"] == merged["value_t"]).all()

    payload = torch.load(weights, weights_only=True)
    dropped = sorted(payload["model"])[-1]
    del payload["model"][dropped]
    torch.save(payload, tmp_path / "partial.pt")
    argv = tiny_bench_argv(
        tmp_path / "b", tiny_bench.suite.dataset["root"], "--set", "methods.spa={}"
    )
    code, err = run([*argv, "--checkpoint", f"spa={tmp_path / 'partial.pt'}"], capsys)
    assert code == 2 and f"{dropped}: absent in the checkpoint" in err, err
    assert not (tmp_path / "b" / "runs").exists()


@pytest.mark.parametrize(
    "given, message",
    [
        ("nope={weights}", "suite tiny has no method 'nope' (its methods: cam)"),
        ("cam", "--checkpoint cam: expected LABEL=PATH"),
        ("cam={missing}", "checkpoint not found"),
        ("cam={garbage}", "unsafe or malformed checkpoint"),
    ],
)
def test_a_bad_checkpoint_flag_is_one_line(tiny_bench, tmp_path, capsys, given, message):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    given = given.format(
        weights=tiny_bench.checkpoint("cam"),
        missing=tmp_path / "missing.pt",
        garbage=tmp_path / "garbage.pt",
    )
    code, err = run(
        [*tiny_bench_argv(tmp_path, tiny_bench.suite.dataset["root"]), "--checkpoint", given],
        capsys,
    )
    assert code == 2 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_with_nan_weights_is_refused_before_scoring(tiny_bench, tmp_path, capsys):
    payload = torch.load(tiny_bench.checkpoint("cam"), weights_only=True)
    key = next(iter(payload["model"]))
    payload["model"][key] = payload["model"][key].clone().fill_(float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    argv = tiny_bench_argv(
        tmp_path, tiny_bench.suite.dataset["root"], "--checkpoint", f"cam={tmp_path / 'nan.pt'}"
    )
    code, err = run(argv, capsys)
    assert code == 2 and "NaN" in err, err
    assert not (tmp_path / "runs").exists()
