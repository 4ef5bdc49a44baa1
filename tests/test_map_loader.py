"""The score-map loader of `wsolbench evaluate`: batches in the split's order whatever the
threads, reused batch arrays that never leak into a later batch, maps of several sizes."""

import numpy as np
import pytest
import torch

from wsolbench.data.metadata import read_split
from wsolbench.engine.map_loader import ScoreMapLoader
from wsolbench.errors import ScoreMapError
from wsolbench.evaluation import Evaluator, create_protocols, evaluate_scoremaps, rescale_boxes


def _split(tmp_path, shapes):
    """A split of len(shapes) images, one box each, and one map per image of the given shape."""
    meta, maps = tmp_path / "meta", tmp_path / "maps"
    meta.mkdir()
    maps.mkdir()
    ids = [f"img{i}.jpg" for i in range(len(shapes))]
    rng = np.random.default_rng(0)
    arrays, boxes = [], []
    for image_id, shape in zip(ids, shapes):
        m = rng.random(shape)
        m[0, 0], m[-1, -1] = 0.0, 1.0
        np.save(maps / f"{image_id}.npy", m)
        arrays.append(m)
        boxes.append([2, 3, 40, 30])
    (meta / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (meta / "class_labels.txt").write_text("\n".join(f"{i},0" for i in ids) + "\n")
    (meta / "image_sizes.txt").write_text("\n".join(f"{i},50,40" for i in ids) + "\n")
    (meta / "localization.txt").write_text(
        "\n".join(f"{i},{','.join(map(str, b))}" for i, b in zip(ids, boxes)) + "\n"
    )
    return read_split(meta), maps, arrays, boxes


def _counts(loader):
    evaluator = Evaluator(
        create_protocols({"cam_curve_interval": 0.01}, ["wsolevaluation"]).values()
    )
    for batch in loader:
        evaluator.update(batch)
    return evaluator.summary()


@pytest.mark.parametrize("workers", [1, 3])
def test_batches_equal_one_pass_over_the_maps(tmp_path, workers):
    # 11 maps in batches of 2 with 2 batches in flight: the ring of 3 arrays is reused 3 times.
    split, root, arrays, boxes = _split(tmp_path, [(16, 20)] * 11)
    loader = ScoreMapLoader(split, root, workers=workers, batch_size=2, prefetch=2)
    seen = []
    for batch in loader:
        assert isinstance(batch.scoremaps, torch.Tensor) and batch.scoremaps.shape[1:] == (16, 20)
        seen.append(batch.scoremaps.clone())
    assert len(seen) == len(loader) == 6
    assert torch.equal(torch.cat(seen), torch.from_numpy(np.stack(arrays)))
    gt = [rescale_boxes([b], (50, 40), (20, 16)) for b in boxes]
    expected = evaluate_scoremaps(np.stack(arrays), gt, cam_curve_interval=0.01)
    got = _counts(ScoreMapLoader(split, root, workers=workers, batch_size=2))
    assert got["box_correct_counts_v2"] == expected["box_correct_counts_v2"]
    assert got["box_correct_counts_v1"] == expected["box_correct_counts_v1"]


def test_maps_of_several_sizes_are_scored_per_size(tmp_path):
    shapes = [(16, 20), (16, 20), (12, 9), (16, 20), (30, 8)]
    split, root, arrays, boxes = _split(tmp_path, shapes)
    batches = list(ScoreMapLoader(split, root, batch_size=3))
    first, second = batches[0].scoremaps, batches[1].scoremaps
    assert isinstance(first, list) and [tuple(m.shape) for m in first] == shapes[:3]
    assert np.array_equal(first[2].numpy(), arrays[2])
    assert isinstance(second, list) and np.array_equal(second[1].numpy(), arrays[4])
    gt = [rescale_boxes([b], (50, 40), s[::-1]) for b, s in zip(boxes, shapes)]
    expected = evaluate_scoremaps(arrays, gt, cam_curve_interval=0.01)
    got = _counts(ScoreMapLoader(split, root, batch_size=3))
    assert got["box_correct_counts_v1"] == expected["box_correct_counts_v1"]


def test_maps_of_another_layout_or_bad_are_read_by_the_safe_path(tmp_path):
    """Maps laid out as the first one are read straight into the batch; any other file (another
    byte order, order or dtype) goes through ``load_scoremap``, and a bad one is named."""
    split, root, arrays, _ = _split(tmp_path, [(16, 20)] * 5)
    np.save(root / "img1.jpg.npy", arrays[1].astype(">f8"))
    np.save(root / "img2.jpg.npy", np.asfortranarray(arrays[2]))
    arrays[3] = arrays[3].astype(np.float32)
    np.save(root / "img3.jpg.npy", arrays[3])
    (batch,) = list(ScoreMapLoader(split, root, batch_size=8))
    assert torch.equal(batch.scoremaps, torch.from_numpy(np.stack(arrays).astype(np.float64)))
    bad = arrays[4].copy()
    bad[5, 5] = np.nan
    np.save(root / "img4.jpg.npy", bad)
    with pytest.raises(ScoreMapError, match="NaN") as error:
        list(ScoreMapLoader(split, root, batch_size=8))
    assert "img4.jpg.npy" in str(error.value)
    np.save(root / "img2.jpg.npy", arrays[2])  # the first layout, truncated
    (root / "img2.jpg.npy").write_bytes((root / "img2.jpg.npy").read_bytes()[:-8])
    with pytest.raises(ScoreMapError, match="not a valid .npy") as error:
        list(ScoreMapLoader(split, root, batch_size=8))
    assert "img2.jpg.npy" in str(error.value)
