"""`wsolbench evaluate` end to end on tiny splits written in tmp_path, and its bad inputs."""

import json

import cv2
import numpy as np

from wsolbench.cli import main
from wsolbench.evaluation import evaluate_scoremaps


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def _box_split(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    _write(meta / "image_ids.txt", ["a/1.jpg", "a/2.jpg", "b/3.jpg"])
    _write(meta / "class_labels.txt", ["a/1.jpg,0", "a/2.jpg,0", "b/3.jpg,1"])
    _write(meta / "image_sizes.txt", ["a/1.jpg,40,20", "a/2.jpg,20,20", "b/3.jpg,30,60"])
    _write(
        meta / "localization.txt",
        ["a/1.jpg,4,2,19,9", "a/2.jpg,0,0,9,9", "a/2.jpg,10,10,19,19", "b/3.jpg,3,6,20,50"],
    )
    maps = tmp_path / "maps"
    rng = np.random.default_rng(0)
    arrays = {}
    for image_id in ("a/1.jpg", "a/2.jpg", "b/3.jpg"):
        (maps / image_id).parent.mkdir(parents=True, exist_ok=True)
        m = cv2.GaussianBlur(rng.random((20, 20)), (0, 0), 2)
        m = (m - m.min()) / (m.max() - m.min())
        np.save(maps / f"{image_id}.npy", m)
        arrays[image_id] = m
    return meta, maps, arrays


def test_boxes_end_to_end(tmp_path, capsys):
    meta, maps, arrays = _box_split(tmp_path)
    out = tmp_path / "results.json"
    code = main(
        [
            "evaluate",
            "--metadata-root",
            str(meta),
            "--scoremap-root",
            str(maps),
            "--output",
            str(out),
            "--cam-curve-interval",
            "0.05",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    # GT rescaled from the original size to the 20x20 maps with int(x * 20 / W).
    gt = [
        np.array([[2, 2, 9, 9]]),
        np.array([[0, 0, 9, 9], [10, 10, 19, 19]]),
        np.array([[2, 2, 13, 16]]),
    ]
    expected = evaluate_scoremaps(np.stack(list(arrays.values())), gt, cam_curve_interval=0.05)
    for key in ("MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2_per_iou", "box_correct_counts_v2"):
        assert result[key] == expected[key]
    assert "MaxBoxAccV2" in capsys.readouterr().out


def _mask_split(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    _write(meta / "image_ids.txt", ["x/1.jpg", "x/2.jpg"])
    _write(meta / "class_labels.txt", ["x/1.jpg,0", "x/2.jpg,0"])
    _write(meta / "image_sizes.txt", [])
    _write(
        meta / "localization.txt",
        [
            "x/1.jpg,x/1_m0.png,x/1_ignore.png",
            "x/1.jpg,x/1_m1.png,",
            "x/2.jpg,x/2_m0.png,x/2_ignore.png",
        ],
    )
    masks = tmp_path / "masks"
    (masks / "x").mkdir(parents=True)
    m0 = np.zeros((32, 32), np.uint8)
    m0[4:12, 4:12] = 255
    m1 = np.zeros((32, 32), np.uint8)
    m1[20:28, 20:30] = 255
    ignore = np.zeros((32, 32), np.uint8)
    ignore[0:16, 0:16] = 255
    for name, image in (
        ("1_m0", m0),
        ("1_m1", m1),
        ("1_ignore", ignore),
        ("2_m0", m1),
        ("2_ignore", ignore),
    ):
        cv2.imwrite(str(masks / "x" / f"{name}.png"), image)
    maps = tmp_path / "maps"
    (maps / "x").mkdir(parents=True)
    for image_id, mask in (("x/1.jpg", m0 | m1), ("x/2.jpg", m1)):
        np.save(maps / f"{image_id}.npy", cv2.resize(mask / 255.0 * 0.8 + 0.1, (16, 16)))
    return meta, maps, masks


def test_masks_end_to_end(tmp_path):
    meta, maps, masks = _mask_split(tmp_path)
    out = tmp_path / "r.json"
    code = main(
        [
            "evaluate",
            "--metadata-root",
            str(meta),
            "--scoremap-root",
            str(maps),
            "--mask-root",
            str(masks),
            "--output",
            str(out),
            "--normalize",
            "minmax",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert 99 < result["PxAP"] < 100  # the maps are the masks, blurred only by the bicubic resize
    assert result["PeakIoU"] > 90 and 0 < result["PeakT"] < 255


def _error(capsys, argv):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_inputs_give_one_clear_line(tmp_path, capsys):
    meta, maps, _ = _box_split(tmp_path)
    base = ["evaluate", "--metadata-root", str(meta), "--scoremap-root", str(maps)]

    np.save(maps / "stray.npy", np.zeros((20, 20)))
    assert "stray.npy" in _error(capsys, base + ["--strict"])
    (maps / "stray.npy").unlink()

    np.save(maps / "a" / "2.jpg.npy", np.full((20, 20), np.nan))
    err = _error(capsys, base)
    assert "a/2.jpg.npy" in err and "NaN" in err
    np.save(maps / "a" / "2.jpg.npy", np.zeros((20, 20)))

    np.save(maps / "a" / "2.jpg.npy", np.array([{"x": 1}], dtype=object))
    assert "pickled" in _error(capsys, base)

    (maps / "a" / "2.jpg.npy").unlink()
    err = _error(capsys, base)
    assert "a/2.jpg.npy" in err and "not found" in err


def test_nan_and_constant_maps_under_minmax_become_zero(tmp_path):
    meta, maps, _ = _box_split(tmp_path)
    np.save(maps / "a" / "1.jpg.npy", np.full((7, 9), np.nan))
    np.save(maps / "a" / "2.jpg.npy", np.full((7, 9), 3.0))
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                "--metadata-root",
                str(meta),
                "--scoremap-root",
                str(maps),
                "--normalize",
                "minmax",
                "--output",
                str(out),
                "--cam-curve-interval",
                "0.5",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["num_images"] == 3


def test_wrong_size_mask_is_named(tmp_path, capsys):
    meta, maps, masks = _mask_split(tmp_path)
    cv2.imwrite(str(masks / "x" / "1_m1.png"), np.zeros((10, 10), np.uint8))
    err = _error(
        capsys,
        [
            "evaluate",
            "--metadata-root",
            str(meta),
            "--scoremap-root",
            str(maps),
            "--mask-root",
            str(masks),
            "--normalize",
            "minmax",
        ],
    )
    assert "1_m1.png" in err


def test_minmax_normalization_is_wsolevaluations_cam_computer(tmp_path):
    from wsolbench.evaluation.scoremaps import load_scoremap

    np.save(tmp_path / "nan.npy", np.array([[np.nan, 1.0], [2.0, 3.0]]))
    np.save(tmp_path / "constant.npy", np.full((5, 6), 7.0))
    raw = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "ramp.npy", raw)
    assert not load_scoremap(tmp_path / "nan.npy", "minmax").any()
    assert load_scoremap(tmp_path / "constant.npy", "minmax").shape == (224, 224)
    ramp = load_scoremap(tmp_path / "ramp.npy", "minmax", size=(6, 8))
    expected = cv2.resize(raw, (8, 6), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    expected -= expected.min()
    expected /= expected.max()
    assert np.array_equal(ramp, expected) and ramp.min() == 0 and ramp.max() == 1


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path, capsys):
    import torch

    meta, maps, _ = _box_split(tmp_path)
    argv = [
        "evaluate",
        "--metadata-root",
        str(meta),
        "--scoremap-root",
        str(maps),
        "--device",
        "cuda",
    ]
    if torch.cuda.is_available():
        assert main(argv) == 0
    else:
        assert "CUDA" in _error(capsys, argv)
