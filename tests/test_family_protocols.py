"""The tscam, scm, bas and dawsol protocols equal their families' own evaluation code.

tests/data/family_parity.npz holds generated cases (CUB-like single boxes, ILSVRC-like 1-4
boxes per image, odd image sizes, boxes on the borders, 0/1 rectangles whose box has IoU
exactly 0.5 with the GT under TS-CAM's rules, constant, ring, noise and blob maps at several
feature resolutions, predictions with the GT class first, lower or absent, CUB masks).
tests/data/family_parity.json holds what each family's own code gives on them, run outside
the repository (the source and each change made to run it are recorded in
docs/protocols.md sec. 10 "How they were checked"): TS-CAM @ 25aece4 ``evaluate_cls_loc``, SCM @
be5bdfa ``val_loc_one_epoch`` (without the constant-map images, which its code refuses), BAS
@ 54c395e ``BAS_inference.py``'s loop, DA-WSOL @ d60e8ea ``CAMComputer`` + ``BoxEvaluator`` +
``MaskEvaluator``. Every number must be equal, as ``wsolbench evaluate --protocol`` writes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsolbench.cli import main

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "family_parity.json").read_text())
SOURCE = GOLDEN.pop("_source")  # repository, commit, file and command of each family's numbers


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """The packed cases as a user has them: metadata, predictions, masks and one .npy per
    image holding every class's raw map (C, h, w) (the classes no protocol reads are zeros)."""
    root = tmp_path_factory.mktemp("family_cases")
    with np.load(DATA / "family_parity.npz") as packed:
        files = {name: packed[name] for name in packed.files}
    for ds in ("cub", "ilsvrc"):
        for name, value in files.items():
            if name.startswith(f"{ds}/") and not name.startswith((f"{ds}/gt/", f"{ds}/top1/")):
                if name.endswith("classes"):
                    continue
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(value.tobytes())
        ids = (root / ds / "meta/image_ids.txt").read_text().split()
        labels = dict(
            line.split(",") for line in (root / ds / "meta/class_labels.txt").read_text().split()
        )
        top1 = {
            line.split(",")[0]: int(line.split(",")[1])
            for line in (root / ds / "predictions.csv").read_text().split()
        }
        classes = int(files[f"{ds}/classes"])
        for k, image_id in enumerate(ids):
            gt = files[f"{ds}/gt/{k}"]
            maps = np.zeros((classes, *gt.shape), np.float32)
            maps[int(labels[image_id])] = gt
            if f"{ds}/top1/{k}" in files:
                maps[top1[image_id]] = files[f"{ds}/top1/{k}"]
            path = root / ds / "maps" / f"{image_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, maps)
        scm = root / ds / "meta_scm"  # the images whose maps SCM's code accepts
        keep = set(scm.joinpath("image_ids.txt").read_text().split())
        for name in ("class_labels.txt", "image_sizes.txt", "localization.txt"):
            lines = (root / ds / "meta" / name).read_text().splitlines()
            (scm / name).write_text("".join(f"{x}\n" for x in lines if x.split(",")[0] in keep))
    return root


def _evaluate(cases: Path, protocol: str, ds: str, tmp_path: Path) -> dict:
    meta, predictions = (
        ("meta_scm", "predictions_scm.csv")
        if protocol == "scm"
        else (
            "meta",
            "predictions.csv",
        )
    )
    out = tmp_path / f"{protocol}_{ds}.json"
    argv = [
        "evaluate",
        "--metadata-root", str(cases / ds / meta),
        "--scoremap-root", str(cases / ds / "maps"),
        "--protocol", protocol,
        "--dataset", ds,
        "--predictions", str(cases / ds / predictions),
        "--output", str(out),
    ]  # fmt: skip
    if ds == "cub" and protocol == "dawsol":
        argv += ["--mask-root", str(cases / ds)]
    assert main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("protocol", "ds"), [(protocol, ds) for protocol in sorted(GOLDEN) for ds in GOLDEN[protocol]]
)
def test_every_number_equals_the_family_code(cases, protocol, ds, tmp_path):
    golden = GOLDEN[protocol][ds]
    assert protocol in SOURCE  # where the numbers come from
    out = _evaluate(cases, protocol, ds, tmp_path)
    assert out["protocol"] == protocol
    differ = []
    for key, expected in golden.items():
        metric, _, threshold = key.partition("/")
        value = out[metric][threshold] if threshold else out.get(metric)
        if value != expected:
            differ.append((key, value, expected))
    assert not differ, differ[:10]
    # Every threshold of the family's scan, every metric it defines, was compared.
    curves = [k for k in out if k.endswith("_per_threshold")]
    assert curves and all(len(out[c]) in (100, 101, 1000) for c in curves)
    assert sum(1 for k in golden if "/" in k) == sum(len(out[c]) for c in curves)


def test_scm_refuses_a_constant_map_as_its_code_does(cases, capsys):
    """SCM's check_scoremap_validity raises on the NaN a constant map's min-max gives: one
    line naming the map."""
    argv = [
        "evaluate",
        "--metadata-root", str(cases / "cub" / "meta"),
        "--scoremap-root", str(cases / "cub" / "maps"),
        "--protocol", "scm",
        "--predictions", str(cases / "cub" / "predictions.csv"),
    ]  # fmt: skip
    assert main(argv) == 2
    printed = " ".join(capsys.readouterr().err.split())
    assert "constant map" in printed and ".npy" in printed and "Traceback" not in printed


def test_fixed_threshold_families_report_their_dataset_threshold(cases, tmp_path):
    """tscam / bas: the headline is the per-threshold value at the family's threshold for the
    dataset (TS-CAM CUB 0.1, ILSVRC 0.12; BAS CUB 0.15, ILSVRC 0.45), --box-threshold moves
    it; scm / dawsol report each metric's best of their scan."""
    for protocol, ds, threshold in (("tscam", "ilsvrc", "0.12"), ("bas", "cub", "0.15")):
        out = _evaluate(cases, protocol, ds, tmp_path)
        assert out["GTKnownLoc"] == out["GTKnownLoc_per_threshold"][threshold]
    out = _evaluate(cases, "dawsol", "ilsvrc", tmp_path)
    assert out["GTKnownLoc"] == max(out["GTKnownLoc_per_threshold"].values())
    assert (
        len(out["GTKnownLoc_per_threshold"]) == 1000 and "0.001" in out["GTKnownLoc_per_threshold"]
    )


def test_spa_from_gt_class_maps_and_predictions_equals_scoring_every_class_map(cases, tmp_path):
    """`evaluate --protocol spa --predictions`: the GT class's maps and each image's top-5
    classes give Top-1 / Top-5 / GT-known Loc and the five error types exactly as scoring the
    top-5 classes' own maps does (only the GT class's box can count in any of them)."""
    import torch

    from wsolbench.data.metadata import read_split
    from wsolbench.data.predictions import read_predictions
    from wsolbench.evaluation import Evaluator, GroundTruth, MapBatch, create_protocols
    from wsolbench.registry import create_postprocessor

    ds = "ilsvrc"
    meta = cases / ds / "meta"
    split = read_split(meta)
    topk = read_predictions(cases / ds / "predictions.csv", split.image_ids)
    identity = create_postprocessor("identity")
    spa = create_protocols({"box_thresholds": (0.3,)}, names=["spa"])
    evaluator = Evaluator(spa.values(), boxes=True)
    maps = []
    for i, image_id in enumerate(split.image_ids):
        raw = np.load(cases / ds / "maps" / f"{image_id}.npy")
        rng = np.random.default_rng(i)  # the other classes' maps: anything at all
        others = [c for c in range(len(raw)) if c != int(split.labels[i])]
        raw[others] = rng.random((len(others), *raw.shape[1:]), np.float32)
        classes = [int(split.labels[i]), *topk[i]]
        width, height = (int(v) for v in split.sizes[i])
        cams = torch.from_numpy(raw[classes])[None]
        maps.append(identity(cams, None, [(height, width)])[0])
    evaluator.update(
        MapBatch(
            gt=GroundTruth(sizes=[tuple(s) for s in split.sizes], boxes=split.boxes),
            maps=maps,
            labels=split.labels,
            topk=topk,
        )
    )
    expected = evaluator.results()["spa"]
    out = tmp_path / "spa.json"
    argv = [
        "evaluate",
        "--metadata-root", str(meta),
        "--scoremap-root", str(cases / ds / "maps"),
        "--protocol", "spa",
        "--box-threshold", "0.3",
        "--predictions", str(cases / ds / "predictions.csv"),
        "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert {k: result[k] for k in expected} == expected
    assert 0 < result["top1_loc"] < result["gt_known_loc"] and result["err_cls"] > 0
    assert set(result["gt_known_loc_per_threshold"]) == {"0.3"}


def test_predictions_of_a_model_with_fewer_than_five_classes(tmp_path):
    """`infer --predictions` of a 3-class model writes three classes per line; they read back
    with the absent ranks empty (-1, never a label), and a line of seven fields is refused."""
    from wsolbench.data.predictions import is_predictions_file, read_predictions
    from wsolbench.errors import MetadataError

    path = tmp_path / "top.csv"
    path.write_text("a,2,0,1\nb,1,2,0\n", encoding="utf-8")
    assert is_predictions_file(path)
    got = read_predictions(path, ["b", "a"])
    np.testing.assert_array_equal(got, [[1, 2, 0, -1, -1], [2, 0, 1, -1, -1]])
    path.write_text("a,1,2,3,4,5,6\n", encoding="utf-8")
    assert not is_predictions_file(path)
    with pytest.raises(MetadataError, match="1 to 5 classes"):
        read_predictions(path, ["a"])
