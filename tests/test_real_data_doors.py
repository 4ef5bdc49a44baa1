"""Real data meets no dead end: validate a folder of splits, convert errors that name the cause,
scg figures on any metadata split, bench's offline-weights error in bench's own terms."""

from __future__ import annotations

import shutil
from pathlib import Path

from native_trees import make_cub

from wsolbench.cli import main


def _error(capsys) -> str:
    return capsys.readouterr().err


def _out(capsys) -> str:
    """Standard output with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


# ----------------------------------------------------------------------------- data validate


def test_validate_a_folder_of_splits_checks_each(tiny_data, tmp_path, capsys):
    metadata = Path(shutil.copytree(tiny_data / "metadata", tmp_path / "metadata"))
    assert main(["data", "validate", "--metadata-root", str(metadata)]) == 0
    out = _out(capsys)
    assert "3 splits, each checked" in out
    assert out.index("│ train") < out.index("│ val") < out.index("│ test")
    # Each split is really read: a broken val fails the folder, naming val's file and line.
    labels = metadata / "val" / "class_labels.txt"
    labels.write_text(labels.read_text().replace(",", ",x", 1))
    assert main(["data", "validate", "--metadata-root", str(metadata)]) == 2
    assert f"{labels}:1" in _error(capsys)


def test_validate_one_split_as_before(tiny_data, capsys):
    split = tiny_data / "metadata" / "test"
    assert main(["data", "validate", "--metadata-root", str(split)]) == 0
    out = _out(capsys)
    assert f"valid: {split}" in out and "splits" not in out


def test_validate_neither_split_nor_splits_gives_a_hint(tiny_data, tmp_path, capsys):
    assert main(["data", "validate", "--metadata-root", str(tiny_data)]) == 2
    error = _error(capsys)
    assert "neither a split nor a folder of splits" in error
    assert "metadata/CUB/test" in error and "its metadata/ folder" in error
    (tmp_path / "empty").mkdir()
    assert main(["data", "validate", "--metadata-root", str(tmp_path / "empty")]) == 2
    assert "neither a split nor a folder of splits" in _error(capsys)


# ----------------------------------------------------------------------------- data convert cub


def _convert_cub(root: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "convert", "cub", "--root", str(root), "--out", str(out), *extra]


def test_convert_cub_few_training_images_per_class_keeps_train(tmp_path, capsys):
    """One training image per class with the default --val-per-class 5: val is drawn from
    train and stays in it (SPA trains on every training image), so nothing is empty."""
    root = make_cub(tmp_path / "CUB_200_2011", classes=2, train_per_class=1, test_per_class=1)
    assert main(_convert_cub(root, tmp_path / "out", "--style", "spa")) == 0
    from wsolbench.data.metadata import read_split

    train, val = (read_split(tmp_path / "out" / name) for name in ("train", "val"))
    assert len(train) == 2 and val.image_ids == train.image_ids


def test_convert_cub_empty_split_names_the_cause(tmp_path, capsys):
    root = make_cub(tmp_path / "no-train", classes=2, train_per_class=0, test_per_class=1)
    assert main(_convert_cub(root, tmp_path / "a", "--style", "spa")) == 2
    error = _error(capsys)
    assert f"{root / 'train_test_split.txt'}: the train split would be empty" in error
    assert "no image is marked 1 (train)" in error
    root = make_cub(tmp_path / "no-test", classes=2, train_per_class=2, test_per_class=0)
    assert main(_convert_cub(root, tmp_path / "b", "--style", "spa")) == 2
    assert "the test split would be empty: no image is marked 0 (test)" in _error(capsys)


# ----------------------------------------------------------------------------- bench weights

BENCH_SUITE = """
name = "weights"
[dataset]
kind = "synthetic"
root = "{root}"
image_size = 32
resize_size = 36
synthetic = {{ num_classes = 2, image_size = 32, train_per_class = 2, val_per_class = 1, test_per_class = 1 }}
[train]
backbone = "{backbone}"
pretrained = true
epochs = 1
batch_size = 2
workers = 0
[methods.cam]
[postprocessors.none]
[evaluation]
map_size = 32
"""


def _bench_without_weights(tmp_path, backbone: str, capsys) -> tuple[str, str]:
    suite = tmp_path / f"{backbone}.toml"
    suite.write_text(BENCH_SUITE.format(root=tmp_path / "data", backbone=backbone))
    runs = tmp_path / "runs"
    command = ["bench", "--suite", str(suite), "--runs-dir", str(runs)]
    command += ["--out", str(tmp_path / "lb"), "--device", "cpu", "--no-progress"]
    assert main(command) == 2
    assert not list(runs.rglob("*.pt")), "nothing may be trained"
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_bench_missing_weights_names_bench_settings_before_any_model(tmp_path, capsys):
    out, err = _bench_without_weights(tmp_path, "tinyvgg", capsys)
    assert "backbone 'tinyvgg' has no pretrained weights" in err
    assert "--set train.pretrained=false" in err and "--set train.weights=PATH" in err
    assert "--weights PATH (" not in err and "--pretrained false" not in err
    assert "cam on tinyvgg" not in out  # the first model's header never came


def test_bench_offline_weights_name_the_file_and_bench_settings(tmp_path, capsys, monkeypatch):
    import urllib.error

    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # an empty cache

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    out, err = _bench_without_weights(tmp_path, "vgg16", capsys)
    err = " ".join(err.split())
    assert "vgg16-397923af.pth" in err and "URLError" in err
    assert "pass it with --set train.weights=PATH" in err
    assert "or use --set train.pretrained=false" in err
    assert "cam on vgg16" not in out


# ----------------------------------------------------------------------------- scg figures


def test_scg_figures_on_any_metadata_split(tiny_run, tmp_path, capsys):
    """--metadata-root / --image-root, as infer and evaluate take a split: no synthetic layout
    needed (here the split and the images sit in folders of their own)."""
    split = Path(shutil.copytree(tiny_run.data / "metadata" / "val", tmp_path / "meta" / "val"))
    images = Path(shutil.copytree(tiny_run.data / "images", tmp_path / "pictures"))
    out = tmp_path / "figures"
    command = ["scg", "figures", "--checkpoint", str(tiny_run.checkpoint), "--out", str(out)]
    command += ["--metadata-root", str(split), "--image-root", str(images)]
    assert main([*command, "--num-images", "1", "--device", "cpu", "--no-progress"]) == 0
    written = sorted(p.name for p in out.glob("*.png"))
    assert len(written) == 2 and written[0].startswith("000_val_")
    assert written[0].endswith("_scg_process.png") and written[1].endswith("_self_correlation.png")


def test_scg_figures_needs_one_way_to_the_images(tiny_run, tmp_path, capsys):
    base = ["scg", "figures", "--checkpoint", str(tiny_run.checkpoint), "--out", str(tmp_path)]
    assert main(base) == 2
    assert "--metadata-root SPLIT --image-root DIR" in _error(capsys)
    split = str(tiny_run.data / "metadata" / "test")
    assert main([*base, "--metadata-root", split]) == 2
    assert "--image-root is missing" in _error(capsys)
    assert main([*base, "--metadata-root", split, "--image-root", "x", "--data", "y"]) == 2
    assert "not both" in _error(capsys)
