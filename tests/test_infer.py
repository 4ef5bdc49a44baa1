"""Inference: the batch generator (ten-crop protocol, top-k, maps, taps) and `wsolbench infer`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import NUM_CLASSES, every_class_map

from wsolbench.cli import main
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine.checkpoint import load_model
from wsolbench.engine.infer import predict
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.scoremaps import load_scoremap, scoremap_path


@pytest.fixture
def checkpoint(tiny_run, one_thread):
    """The shared tiny run (tests/conftest.py): its dataset and checkpoint, read in place."""
    return tiny_run.data, tiny_run.checkpoint


def test_predict_yields_maps_taps_and_dataset_fields(checkpoint):
    data, path = checkpoint
    model = load_model(path)
    split = read_split(data / "metadata" / "test")
    dataset = EvalDataset(split, data / "images", 32, ten_crop=True, resize_size=36)
    batches = list(predict(model, dataset, batch_size=4, ten_crop=True, topk=2))
    assert sum(len(b["image_id"]) for b in batches) == len(split)
    batch = batches[0]
    n = len(batch["image_id"])
    assert batch["probs"].shape == (n, NUM_CLASSES)
    assert torch.allclose(batch["probs"].sum(1), torch.ones(n), atol=1e-5)
    assert batch["topk"].shape == (n, 2)
    assert batch["cams_gt"].shape == (n, 8, 8)  # tinyvgg: stride 4 at 32 px
    assert batch["cams_topk"].shape == (n, 2, 8, 8)
    assert batch["tap_names"] == ("feat4", "feat5") and len(batch["taps"]) == 2
    assert "crops" not in batch
    # The dataset's fields of each image travel with its maps, in the split's order.
    assert batch["image_id"] == split.image_ids[:n]
    assert batch["label"].tolist() == [int(c) for c in split.labels[:n]]
    assert [tuple(map(int, s)) for s in batch["size"]] == [tuple(s) for s in split.sizes[:n]]
    for boxes, expected in zip(batch["boxes"], split.boxes[:n]):
        np.testing.assert_array_equal(np.asarray(boxes).reshape(-1, 4), expected)

    # The spa protocol: softmax per crop, then the mean over the ten crops.
    items = [dataset[i] for i in range(n)]
    with torch.no_grad():
        outputs = model(torch.stack([item["image"] for item in items]))
        crop_probs = torch.stack(
            [model(item["crops"])["logits"].softmax(1).mean(0) for item in items]
        )
    assert torch.allclose(batch["probs"], crop_probs, atol=1e-5)
    labels = torch.tensor([item["label"] for item in items])
    maps = every_class_map(model, outputs)  # the same batch: the same bits
    assert torch.equal(batch["cams_gt"], maps[torch.arange(n), labels])
    top = batch["topk"]
    assert torch.equal(batch["cams_topk"][:, 1], maps[torch.arange(n), top[:, 1]])


def test_single_view_probabilities_are_the_softmax_of_the_logits(checkpoint):
    data, path = checkpoint
    dataset = EvalDataset(read_split(data / "metadata" / "val"), data / "images", 32)
    batch = next(predict(load_model(path), dataset, batch_size=8, ten_crop=False))
    assert torch.allclose(batch["probs"], batch["logits"].softmax(1))
    with pytest.raises(WsolbenchError, match="ten_crop=True"):
        next(predict(load_model(path), dataset, batch_size=8, ten_crop=True))


@pytest.mark.parametrize("postprocessor", ["none", "scg"])
def test_cli_infer_writes_scoremaps_in_the_wsolevaluation_layout(
    checkpoint, tmp_path, postprocessor
):
    data, path = checkpoint
    out = tmp_path / "maps"
    code = main(
        [
            "infer",
            "--checkpoint",
            str(path),
            "--metadata-root",
            str(data / "metadata" / "test"),
            "--image-root",
            str(data / "images"),
            "--out",
            str(out),
            "--map-size",
            "24",
            "--postprocessor",
            postprocessor,
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    split = read_split(data / "metadata" / "test")
    peaks = []
    for image_id in split.image_ids:
        assert (out / f"{image_id}.npy").is_file()  # wsolevaluation's layout
        # What `wsolbench evaluate` reads: a finite 2-D float map in [0, 1], no normalization.
        score_map = load_scoremap(scoremap_path(out, image_id), normalize="none")
        assert score_map.shape == (24, 24) and score_map.dtype == np.float64  # as scored
        assert 0.0 <= score_map.min() and score_map.max() <= 1.0
        peaks.append(score_map.max())
    assert max(peaks) == pytest.approx(1.0)  # min-max normalized (a GT map may be all zeros)
    assert not list(out.rglob("*.tmp"))


def test_cli_infer_names_a_bad_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    code = main(
        [
            "infer",
            "--checkpoint",
            str(bogus),
            "--metadata-root",
            str(tmp_path),
            "--image-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    assert "bogus.pt" in capsys.readouterr().err
