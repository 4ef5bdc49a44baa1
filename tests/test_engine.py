"""Training engine: config hash, learning, exact resume, checkpoints, CLI options."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import NUM_CLASSES, every_class_map, small_backbone, tiny_config

from wsolbench.cli import main
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine import numerics
from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint, load_model
from wsolbench.engine.config import TrainConfig
from wsolbench.engine.infer import predict
from wsolbench.engine.train import train
from wsolbench.errors import WsolbenchError
from wsolbench.identity import weights_hash
from wsolbench.options import parse_key_values, parse_text
from wsolbench.registry import check_method, create_method, list_methods


def trained_run(config: TrainConfig, tiny_run) -> Path:
    """The checkpoint of a run with this configuration: the shared run (tests/conftest.py) when
    it is the same configuration (its hash), else a new training (on one thread, as the shared
    run: CPU float sums depend on the thread count)."""
    if config.config_hash() == tiny_run.config.config_hash():
        return tiny_run.checkpoint
    return train(config).checkpoint


# -- config ------------------------------------------------------------------------------------
def test_config_hash_ignores_run_only_fields_but_not_hyperparameters(tmp_path):
    base = tiny_config(tmp_path, tmp_path / "a")
    moved = tiny_config(tmp_path / "elsewhere", tmp_path / "b", progress=True)
    assert base.config_hash() == moved.config_hash()
    # Workers, device and dtype change the numbers, so they are part of the identity.
    assert base.config_hash() != tiny_config(tmp_path, tmp_path / "a", workers=2).config_hash()
    assert len(base.config_hash()) == 64
    assert base.config_hash() != tiny_config(tmp_path, tmp_path / "a", device="cuda").config_hash()
    assert base.execution() == {
        "device": "cpu",
        "dtype": "float32",
        "channels_last": False,
        "world_size": 1,
        "threads": 1,  # CPU float sums depend on both (test_numerics)
        "mkl": numerics.mkl_branch(),
    }
    assert base.config_hash() != tiny_config(tmp_path, tmp_path / "a", lr=0.5).config_hash()
    assert (
        base.config_hash()
        != tiny_config(tmp_path, tmp_path / "a", hparams={"grid_size": 8}).config_hash()
    )


def test_config_defaults_follow_the_wsolevaluation_recipe(tmp_path):
    config = TrainConfig(data=str(tmp_path))
    assert (config.lr, config.momentum, config.weight_decay) == (0.01, 0.9, 1e-4)
    assert (config.nesterov, config.recipe, config.lr_step, config.batch_size) == (
        True,
        "wsolevaluation",
        30,
        64,
    )
    assert config.head_lr_multiplier == 10.0 and config.amp is False
    with pytest.raises(WsolbenchError, match="recipe 'wsolevaluation' decays the lr as 'step'"):
        TrainConfig(data=str(tmp_path), lr_decay="multistep")
    with pytest.raises(WsolbenchError, match="recipe: unknown recipe 'sap'"):
        TrainConfig(data=str(tmp_path), recipe="sap")
    with pytest.raises(WsolbenchError, match="data root"):
        TrainConfig()


def test_hparam_values_and_unknown_keys():
    assert [parse_text(v) for v in ("3", "0.5", "true", "False", "abc")] == [
        3,
        0.5,
        True,
        False,
        "abc",
    ]
    values = parse_key_values(["grid_size=8"], "--hparam")
    assert check_method("has", "tinyvgg", values, "--hparam") == {"grid_size": 8}
    with pytest.raises(
        WsolbenchError, match="unknown hyperparameter 'gird_size' .valid: drop_rate, grid_size"
    ):
        check_method("has", "tinyvgg", parse_key_values(["gird_size=8"], "--hparam"), "--hparam")
    with pytest.raises(WsolbenchError, match="key=value"):
        parse_key_values(["grid_size"], "--hparam")


def test_cli_reports_an_unknown_hparam_in_one_line(tmp_path, capsys):
    code = main(["train", "--method", "cam", "--data", str(tmp_path), "--hparam", "alpha=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "--hparam: unknown hyperparameter 'alpha'" in err
        and "valid:" in err
        and "Traceback" not in err
    )


def test_cli_trains_and_reports(tiny_data, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "--method",
            "has",
            "--hparam",
            "grid_size=8",
            "--data",
            str(tiny_data),
            "--image-size",
            "32",
            "--resize-size",
            "36",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["hparams"]["grid_size"] == 8 and checkpoint["config"]["method"] == "has"
    assert checkpoint["dataset"] == tiny_data.name
    # config.json and history.json beside the checkpoint say what it holds.
    saved = json.loads((out / "config.json").read_text())
    assert saved["config_hash"] == checkpoint["config_hash"]
    assert (saved["method"], saved["hparams"], saved["epochs"]) == ("has", {"grid_size": 8}, 1)
    history = json.loads((out / "history.json").read_text())
    assert history == checkpoint["history"] and [h["epoch"] for h in history] == [1]
    assert checkpoint_hash(out / "last.pt") in capsys.readouterr().out


def test_cli_help_lists_options_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--hparam", "--resume", "--lr-decay", "--epochs", "--image-root"):
        assert option in text
    assert "default: 0.01" in text


# -- training ----------------------------------------------------------------------------------
def test_short_training_learns(tiny_run):
    config, path = tiny_run.config, tiny_run.checkpoint
    history = load_checkpoint(path)["history"]
    assert len(history) == config.epochs
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    # Classify the training images without augmentation: chance is 33%.
    split = read_split(tiny_run.data / "metadata" / "train")
    dataset = EvalDataset(split, tiny_run.data / "images", config.image_size)
    correct = sum(
        int((batch["topk"][:, 0] == batch["label"]).sum())
        for batch in predict(load_model(path), dataset, batch_size=64, ten_crop=False)
    )
    assert 100.0 * correct / len(split) > 100.0 / NUM_CLASSES + 20


# Loader workers are reseeded per epoch too. With workers = 0 the uninterrupted run is the
# shared one (8 epochs); with 2 workers a shorter one is trained (each epoch starts workers).
@pytest.mark.parametrize("workers, epochs", [(0, 8), (2, 2)])
def test_resume_reproduces_the_uninterrupted_run_exactly(
    tiny_data, tiny_run, tmp_path, one_thread, workers, epochs
):
    straight = trained_run(
        tiny_config(tiny_data, tmp_path / "straight", epochs=epochs, workers=workers), tiny_run
    )

    class Interrupt(Exception):
        pass

    def stop_after_first_epoch(epoch, stats):
        raise Interrupt

    interrupted = tiny_config(tiny_data, tmp_path / "resumed", epochs=epochs, workers=workers)
    with pytest.raises(Interrupt):
        train(interrupted, on_epoch_end=stop_after_first_epoch)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    resumed = train(
        tiny_config(tiny_data, tmp_path / "resumed", epochs=epochs, workers=workers, resume=True)
    ).checkpoint

    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["epoch"] == b["epoch"] == epochs
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    # Two trainings with the same weights (their files differ: wall times) hash alike.
    assert checkpoint_hash(straight) == checkpoint_hash(resumed)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_resume_refuses_a_different_run(tiny_run):
    # Refused before anything is written: the shared run's folder stays as it is.
    path = tiny_run.checkpoint
    other = tiny_config(tiny_run.data, path.parent, lr=0.5, resume=True, epochs=5)
    with pytest.raises(WsolbenchError, match=r"trained with other settings \(lr\)"):
        train(other)


# -- checkpoints -------------------------------------------------------------------------------
def test_checkpoint_round_trip_gives_identical_outputs(tiny_run):
    config, path = tiny_run.config, tiny_run.checkpoint
    checkpoint = load_checkpoint(path)
    assert checkpoint["method"] == "cam" and checkpoint["num_classes"] == NUM_CLASSES
    assert checkpoint["config_hash"] == config.config_hash()
    model = load_model(path)
    assert not model.training
    again = load_model(path)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, second = model(images), again(images)
    assert torch.equal(first["logits"], second["logits"])
    assert torch.equal(every_class_map(model, first), every_class_map(again, second))
    # The provenance hash is that of the weights (identity.weights_hash), not of the file.
    assert (
        checkpoint_hash(path)
        == weights_hash(checkpoint["model"])
        == weights_hash(model.state_dict())
    )
    assert checkpoint_hash(path) != hashlib.sha256(path.read_bytes()).hexdigest()


def test_weights_hash_is_that_of_the_weights_not_of_the_file(tiny_run, tmp_path):
    """Two checkpoints with the same weights but another history (per-epoch seconds), optimizer
    state and RNG state hash alike; one changed weight, or a renamed or retyped tensor, differs."""
    from wsolbench.engine.checkpoint import save_checkpoint

    checkpoint = load_checkpoint(tiny_run.checkpoint)
    other = dict(checkpoint)
    other["history"] = [dict(epoch, seconds=epoch["seconds"] + 1.5) for epoch in other["history"]]
    other["optimizer"] = {"state": {}, "param_groups": []}
    other["model"] = {k: v.clone() for k, v in reversed(checkpoint["model"].items())}
    copy = save_checkpoint(tmp_path / "other.pt", other)
    assert copy.read_bytes() != tiny_run.checkpoint.read_bytes()
    assert checkpoint_hash(copy) == checkpoint_hash(tiny_run.checkpoint)
    assert checkpoint_hash(other) == checkpoint_hash(copy)  # a loaded checkpoint, too
    name, tensor = next((k, v) for k, v in checkpoint["model"].items() if v.is_floating_point())
    changed = dict(checkpoint["model"])
    changed[name] = tensor.clone()
    changed[name].view(-1)[0] += 1e-6
    assert weights_hash(changed) != weights_hash(checkpoint["model"])
    assert weights_hash({name: tensor}) != weights_hash({name + "x": tensor})
    assert weights_hash({name: tensor}) != weights_hash({name: tensor.double()})


def test_unsafe_checkpoint_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "wsolbench-checkpoint", "payload": _Arbitrary()}, handle, protocol=2)
    with pytest.raises(WsolbenchError, match="unsafe or malformed") as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_tensor_only_file_without_format_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(WsolbenchError, match="not a wsolbench checkpoint"):
        load_model(path)


class _Arbitrary:
    """Any class: unpickling it would run arbitrary code paths, so weights_only refuses it."""


def train_accuracy(path, data) -> float:
    """Top-1 accuracy (%) on the training images, without augmentation."""
    split = read_split(data / "metadata" / "train")
    dataset = EvalDataset(split, data / "images", 32)
    correct = sum(
        int((batch["topk"][:, 0] == batch["label"]).sum())
        for batch in predict(load_model(path), dataset, batch_size=64, ten_crop=False)
    )
    return 100.0 * correct / len(split)


# What a method's short run needs besides tiny_config's SGD at lr 0.02. wsolevaluation's ACoL
# and SPG heads (several unnormalized conv layers at 10x the rate) and BAS's (ReLU'd class maps
# at 10x / 20x) blow up on these 48 images at lr 0.02: lower rates. The transformers train with
# their own recipe (AdamW).
LEARNING = {
    "acol": dict(lr=0.005),
    "spg": dict(lr=0.005),
    "bas": dict(recipe="bas", lr=0.005),
    "tscam": dict(recipe="tscam", lr=1e-3, weight_decay=0.05),
    "scm": dict(recipe="scm", lr=1e-3, weight_decay=0.05),
}


@pytest.mark.parametrize("method", list_methods())
def test_every_method_learns_and_reloads(method, tiny_data, tiny_run, tmp_path, one_thread):
    """Each registered method goes through the engine: its input transform, targets and loss
    train a short run that learns (well above chance on the synthetic data), and its checkpoint
    rebuilds it with its hyperparameters. (cam's run is the shared one: the same config.)"""
    backbone = small_backbone(method)
    config = tiny_config(
        tiny_data, tmp_path, method=method, backbone=backbone, epochs=8, **LEARNING.get(method, {})
    )
    path = trained_run(config, tiny_run)
    checkpoint = load_checkpoint(path)
    assert checkpoint["method"] == method and np.isfinite(checkpoint["history"][-1]["loss"])
    assert train_accuracy(path, tiny_data) > 100.0 / NUM_CLASSES + 15
    model = load_model(path)
    reference = create_method(
        method, backbone=backbone, num_classes=NUM_CLASSES, **checkpoint["hparams"]
    )
    reference.load_state_dict(checkpoint["model"])
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = model(images), reference.eval()(images)
        assert torch.equal(every_class_map(model, ours), every_class_map(reference, theirs))


def test_optimizer_groups_and_schedules(tmp_path):
    from wsolbench.engine.optim import build_optimizer, build_scheduler

    method = create_method("cam", backbone="tinyvgg", num_classes=NUM_CLASSES)
    config = tiny_config(
        tmp_path, tmp_path, lr=0.1, head_lr_multiplier=5.0, recipe="spa", lr_milestones=[2, 3]
    )
    optimizer = build_optimizer(method, config)
    # tinyvgg has no reference network: backbone weights / biases, new layers' weights / biases.
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.2, 0.5, 1.0])
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in optimizer.param_groups)
    scheduler = build_scheduler(optimizer, config)
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.001])
