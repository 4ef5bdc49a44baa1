"""Everything checked before the first expensive step (the bench's `plan`, the commands' own
checks), datasets as inputs (the writer's marker), the one exit path, and numba's cache on a
read-only installation (docs/bad-input.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import TINY_SUITE, snapshot, tiny_bench_argv
from PIL import Image

from wsolbench.cli import main


def run(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err.strip()


@pytest.fixture
def data(tiny_data, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_data, tmp_path / "data"))


def first(data: Path, split: str) -> str:
    return (data / "metadata" / split / "image_ids.txt").read_text().splitlines()[0]


def assert_nothing_trained(tmp_path: Path) -> None:
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lb").exists()


# ----------------------------------------------------------------------------- up front


def test_a_missing_test_image_is_found_before_training(data, tmp_path, capsys):
    (data / "images" / first(data, "test")).unlink()
    code, err = run(tiny_bench_argv(tmp_path, data), capsys)
    assert code == 2 and "not found" in err and "test/image_ids.txt:1" in err, err
    assert_nothing_trained(tmp_path)


def test_an_image_of_another_size_than_image_sizes_says_is_found_before_training(
    data, tmp_path, capsys
):
    Image.new("RGB", (7, 5)).save(data / "images" / first(data, "val"))
    code, err = run(tiny_bench_argv(tmp_path, data), capsys)
    assert code == 2 and "is 7x5, image_sizes.txt says" in err and "val/image_ids.txt:1" in err
    assert_nothing_trained(tmp_path)


def test_an_unknown_explainer_layer_is_found_before_training(data, tmp_path, capsys):
    extra = '[explainers.cam]\n[explainers.g]\nexplainer = "gradcam"\ntarget_layers = ["backbone.nope"]\n'
    code, err = run(tiny_bench_argv(tmp_path, data, toml=extra), capsys)
    assert code == 2 and "explainers.g on cam" in err and "no layer 'backbone.nope'" in err, err
    assert_nothing_trained(tmp_path)


def test_a_missing_mask_root_is_found_before_training(data, tmp_path, capsys):
    argv = tiny_bench_argv(tmp_path, data)
    text = (tmp_path / "suite.toml").read_text()
    text = text.replace(
        'kind = "synthetic"',
        f'kind = "metadata"\nimage_root = "{data / "images"}"\nmetadata_root = "{data / "metadata"}"'
        f'\nmask_root = "{tmp_path / "no-masks"}"',
    )
    (tmp_path / "suite.toml").write_text(text)
    code, err = run(argv, capsys)
    assert code == 2 and "not found" in err and "no-masks" in err, err
    assert_nothing_trained(tmp_path)


def test_a_checkpoint_to_resume_with_malformed_fields_is_refused_before_training(
    data, tmp_path, capsys, tiny_run
):
    argv = tiny_bench_argv(tmp_path, data)
    from wsolbench.bench import prepare_data
    from wsolbench.runs import RunFolder
    from wsolbench.suite import load_suite

    suite = load_suite(tmp_path / "suite.toml")
    spec = suite.methods[0]
    paths = prepare_data(suite, None)
    config = suite.train_config(
        spec,
        image_root=str(paths.image_root),
        metadata_root=str(paths.metadata_root),
        dataset=paths.name,
        device="cpu",
        resume=True,
    )
    folder = RunFolder.of(tmp_path / "runs", suite, spec.label, config.config_hash())
    payload = torch.load(tiny_run.checkpoint, weights_only=True)
    payload["optimizer"] = {"state": {}, "param_groups": [{"lr": "fast", "params": [0]}]}
    folder.path.mkdir(parents=True)
    torch.save(payload, folder.checkpoint)
    before = snapshot(tmp_path / "runs")
    code, err = run(argv, capsys)
    assert code == 2 and "cannot resume: the checkpoint's 'optimizer'" in err, err
    assert snapshot(tmp_path / "runs") == before


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path, capsys, tiny_run, tiny_data):
    payload = torch.load(tiny_run.checkpoint, weights_only=True)
    key = next(iter(payload["model"]))
    payload["model"][key] = payload["model"][key].clone().fill_(float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    code, err = run(
        [
            "infer",
            "--checkpoint",
            tmp_path / "nan.pt",
            "--metadata-root",
            tiny_data / "metadata" / "test",
            "--image-root",
            tiny_data / "images",
            "--out",
            tmp_path / "maps",
            "--device",
            "cpu",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 2 and f"'{key}' holds NaN or inf" in err, err
    assert not (tmp_path / "maps").exists()


# ----------------------------------------------------------------------------- datasets are inputs


def test_data_synth_never_writes_over_a_users_dataset(tmp_path, capsys):
    theirs = tmp_path / "theirs"
    (theirs / "metadata").mkdir(parents=True)
    (theirs / "metadata" / "image_ids.txt").write_text("a.png\n")
    before = snapshot(theirs)
    code, err = run(["data", "synth", "--out", theirs, "--num-classes", "2"], capsys)
    assert code == 2 and "holds files wsolbench did not write" in err, err
    assert snapshot(theirs) == before


def test_data_synth_regenerates_its_own_benchmark(tmp_path, capsys):
    argv = ["data", "synth", "--out", tmp_path / "syn", "--num-classes", "2"]
    argv += ["--train-per-class", "1", "--val-per-class", "1", "--test-per-class", "1"]
    assert run(argv, capsys)[0] == 0
    assert run(argv + ["--seed", "3"], capsys)[0] == 0
    assert '"seed": 3' in (tmp_path / "syn" / "synthetic.json").read_text()


def test_bench_never_assumes_a_named_root_is_synthetic(tmp_path, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "photo.png").write_bytes(b"mine")
    argv = tiny_bench_argv(tmp_path, theirs)
    text = (tmp_path / "suite.toml").read_text().replace('kind = "synthetic"\n', "")
    (tmp_path / "suite.toml").write_text(text)
    code, err = run(argv, capsys)
    assert code == 2 and "dataset.kind is required" in err, err
    assert [p.name for p in theirs.iterdir()] == ["photo.png"]


def test_the_kind_of_a_synthetic_benchmark_is_detected(data, tmp_path):
    from wsolbench.suite import load_suite

    text = TINY_SUITE.format(root=data).replace('kind = "synthetic"\n', "")
    (tmp_path / "suite.toml").write_text(text)
    assert load_suite(tmp_path / "suite.toml").dataset["kind"] == "synthetic"


# ----------------------------------------------------------------------------- one exit path


def test_a_bug_is_one_line_naming_the_saved_traceback(monkeypatch, capsys, tmp_path):
    import wsolbench.cli.list as listing

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(listing, "run", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code, err = run(["list"], capsys)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("internal error: KeyError: 'a bug'"), err
    saved = Path(err.split("traceback saved to ")[1].rstrip(")"))
    assert saved.parent == tmp_path and "Traceback" in saved.read_text()


def test_a_user_error_is_one_line_and_exit_2(capsys):
    code, err = run(["list", "nothing"], capsys)
    assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- numba's cache


def test_numba_caches_somewhere_writable_or_not_at_all(tmp_path, monkeypatch):
    """A read-only installation with an unwritable HOME: no numba folder can be written. The
    kernels are then cached in a private temporary folder, or not cached at all; either way a
    `cache=True` function compiles and runs, quietly."""
    import numba
    from numba.core.dispatcher import Dispatcher

    from wsolbench import caches

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    unwritable = [blocked / "cache"]  # a folder that cannot be made
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    private = tmp_path / f"wsolbench-numba-{os.getuid()}"
    assert caches.configure(unwritable) == str(private)
    monkeypatch.setattr("tempfile.tempdir", str(blocked))
    monkeypatch.setattr(Dispatcher, "enable_caching", Dispatcher.enable_caching)
    assert caches.configure(unwritable) == "none"

    @numba.njit(cache=True)
    def double(x):
        return 2 * x

    assert double(np.int64(3)) == 6


def test_matplotlib_gets_a_private_folder_when_its_own_cannot_be_written(tmp_path, monkeypatch):
    from wsolbench import caches

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocked))  # ~/.config/matplotlib cannot be made
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    private = str(tmp_path / f"wsolbench-matplotlib-{os.getuid()}")
    assert caches.configure_matplotlib() == private and os.environ["MPLCONFIGDIR"] == private
