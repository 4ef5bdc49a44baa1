"""Checkpoints trained with the reference code: `import_reference_checkpoint`, the CLI, errors,
and ResNet50's ImageNet fc kept for a 1000-class CAM head."""

from __future__ import annotations

import pytest
import torch

import wsolbench
from wsolbench.cli import main
from wsolbench.engine.checkpoint import import_reference_checkpoint, load_model
from wsolbench.errors import WsolbenchError

NUM_CLASSES = 4


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def trained_elsewhere(method: str, seed: int = 0, **kwargs):
    """A model and its state dict under the reference's names, saved as wsolevaluation's
    main.py saves it (DataParallel-prefixed here, as the SPA code's are)."""
    torch.manual_seed(seed)
    model = wsolbench.create_method(
        method, backbone="tinyvgg", num_classes=NUM_CLASSES, **kwargs
    ).eval()
    names = model.reference_names()
    state = {f"module.{names[k]}": v.clone() for k, v in model.state_dict().items()}
    return model, state


def save_reference(path, state):
    torch.save(
        {
            "architecture": "vgg16",
            "epoch": 3,
            "state_dict": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]},
        },
        path,
    )
    return path


@pytest.mark.parametrize("method", ["acol", "spg"])
def test_cli_import_gives_the_same_model(method, tmp_path):
    model, state = (
        trained_elsewhere(method, erase_threshold=0.6)
        if method == "acol"
        else trained_elsewhere(method)
    )
    reference = save_reference(tmp_path / "best_checkpoint.pth.tar", state)
    out = tmp_path / "imported.pt"
    options = ["--hparam", "erase_threshold=0.6"] if method == "acol" else []
    code = main(
        [
            "checkpoint",
            "import",
            str(reference),
            "--method",
            method,
            "--backbone",
            "tinyvgg",
            "--num-classes",
            str(NUM_CLASSES),
            "--out",
            str(out),
            *options,
        ]
    )
    assert code == 0
    imported = load_model(out)
    assert imported.hparams.get("erase_threshold", 0.6) == 0.6
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = model(images), imported(images)
    assert torch.equal(expected["logits"], actual["logits"])
    assert torch.equal(expected["cams"], actual["cams"])


def test_unknown_missing_and_misshaped_keys_are_named(tmp_path):
    _, state = trained_elsewhere("spg")
    state.pop("module.SPG_C.0.weight")
    state["module.surprise.weight"] = torch.zeros(1)
    state["module.SPG_A_4.bias"] = torch.zeros(NUM_CLASSES + 1)
    path = save_reference(tmp_path / "ref.pth", state)
    with pytest.raises(WsolbenchError) as error:
        import_reference_checkpoint(path, "spg", "tinyvgg", NUM_CLASSES)
    message = str(error.value)
    assert "SPG_C.0.weight" in message and "surprise.weight" in message
    assert "SPG_A_4.bias (5,) != (4,)" in message and str(path) in message


def test_wrong_method_is_one_clear_error(tmp_path, capsys):
    _, state = trained_elsewhere("acol")
    path = save_reference(tmp_path / "ref.pth", state)
    code = main(
        [
            "checkpoint",
            "import",
            str(path),
            "--method",
            "cam",
            "--backbone",
            "tinyvgg",
            "--num-classes",
            str(NUM_CLASSES),
            "--out",
            str(tmp_path / "out.pt"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "classifier_A" in err and "unknown" in err
    assert not (tmp_path / "out.pt").exists()


class Unsafe:
    pass


def test_files_that_need_unpickling_are_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "extra": Unsafe()}, path)
    with pytest.raises(WsolbenchError, match="weights_only"):
        import_reference_checkpoint(path, "cam", "tinyvgg", NUM_CLASSES)
    with pytest.raises(WsolbenchError, match="not found"):
        import_reference_checkpoint(tmp_path / "absent.pth", "cam", "tinyvgg", NUM_CLASSES)


@pytest.fixture(scope="module")
def imagenet_resnet(tmp_path_factory):
    """A torchvision-format ResNet50 file with a 1000-class fc (random fc, constant elsewhere:
    shapes from a model on the meta device, so nothing slow is initialized)."""
    from torchvision.models import resnet50

    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in resnet50(weights=None).state_dict().items()}
    state = {k: torch.full(shape, 0.5, dtype=dtype) for k, (shape, dtype) in shapes.items()}
    generator = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(1000, 2048, generator=generator)
    state["fc.bias"] = torch.randn(1000, generator=generator)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(state, path)
    return path, state["fc.weight"], state["fc.bias"]


@pytest.mark.parametrize(
    "method, num_classes, kept",
    [
        ("adl", 1000, True),
        ("cam", 200, False),
    ],
)
def test_resnet_keeps_imagenet_fc_for_1000_classes(imagenet_resnet, method, num_classes, kept):
    path, weight, bias = imagenet_resnet
    model = wsolbench.create_method(
        method, backbone="resnet50", num_classes=num_classes, weights=path
    )
    fc = model.cam_head.fc
    assert torch.equal(fc.weight, weight) is kept and torch.equal(fc.bias, bias) is kept
    assert model.backbone.imagenet_fc is None  # not kept around after use
