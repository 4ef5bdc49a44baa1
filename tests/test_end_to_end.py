"""End to end against the reference code, as a user runs wsolbench: every number equal.

The reference numbers (``tests/data/e2e/reference_values.json``) come from running the reference
repositories' own scripts outside this repository on the miniature set ``tests/data/e2e`` (six
JPEGs: odd sizes, one grayscale, one with two objects, one stored 120 x 80 with EXIF orientation
6; instance and ignore masks), with checkpoints saved in each reference's own format holding
``tests/parity_weights.py``'s seeded weights. The file records, for each, the repository,
commit, file, command and the run-time shims:

- clovaai/wsolevaluation @ 96f4b88 ``main.py --epochs 0`` (its Trainer saves
  ``last_checkpoint.pth.tar``, loads it back, and scores the test split with ``CAMComputer`` and
  ``BoxEvaluator`` / ``MaskEvaluator``), VGG16, ResNet50 and InceptionV3 CAM: MaxBoxAcc per IoU
  (``--box_v2_metric False``), MaxBoxAccV2 per IoU (``True``), PxAP (OpenImages format), the
  counts per CAM threshold, PxAP's histograms, and the sha256 of every score map it saved;
- Panxjia/SPA_CVPR2021 @ 32bf2d5 ``exper/val_spa.py`` (ten-crop classification, maps plain and
  + SCG with ``scripts/val_spa.sh``'s settings and thresholds) on a checkpoint in
  ``exper/train_cam_spa.py``'s format: per threshold the Top-1 / Top-5 / GT-known Loc errors and
  the five-way analysis, and, recorded around its localization functions, every top-5 and
  GT-known box, the sha256 of every map at the original size and the ten-crop probabilities.

Here the same checkpoints are rebuilt from the seeds in the references' formats, imported with
``wsolbench checkpoint import``, and scored: ``wsolbench infer`` then ``wsolbench evaluate`` for
wsolevaluation; for the spa protocol ``wsolbench bench --checkpoint spa=PATH`` on a suite with
the reference run's settings (no training; every protocol, plain and + SCG, ten-crop), its
per-image records read back from the leaderboard's ``per_image.npz``. The maps and ten-crop
probabilities the bench scores are checked bit for bit through the same ``predict`` and
post-processors.

Bit equality of maps presumes that this machine's float32 network (one thread) gives the bits of
the machine that ran the references (x86-64, torch 2.14): where the logits differ in the last
bits (another CPU or torch) the tests skip, saying so; a larger difference fails.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from parity_weights import seeded_tensor

import wsolbench
import wsolbench.methods.postprocess  # noqa: F401  (registers identity and scg)
from wsolbench.cli import main
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine.checkpoint import load_model
from wsolbench.engine.infer import predict
from wsolbench.evaluation.classic_loc import OUTCOMES, union_boxes_at
from wsolbench.evaluation.protocols import registered_protocols
from wsolbench.registry import create_postprocessor
from wsolbench.report import per_image
from wsolbench.scoring import original_sizes

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

DATA = Path(__file__).parent / "data" / "e2e"
REFERENCE = json.loads((DATA / "reference_values.json").read_text())
WSOL = REFERENCE["wsolevaluation"]["runs"]
SPA = REFERENCE["spa"]
ARCHITECTURES = ("vgg16", "resnet50", "inception_v3")
# wsolevaluation's class count per dataset (main.py _NUM_CLASSES_MAPPING): the box split is read
# as ILSVRC, the mask split as OpenImages.
SPLITS = {"boxes": ("metadata/boxes", 1000), "masks": ("metadata/masks", 100)}
# The SPA run: val_spa.py --input_size 96 --crop_size 80, scripts/val_spa.sh's thresholds and
# CUB SCG settings, 10 classes.
SPA_THRESHOLDS = (0.1, 0.25, 0.3, 0.35)
SPA_SCG = {"fo_th": 0.1, "so_th": 0.5, "so_weight": 2.0, "fg_th": 0.1, "bg_th": 0.05}
SPA_OUTCOMES = ("right", "cls", "mins", "part", "more", "other")  # val_spa.py's printout order
# The same run as a suite: an imported checkpoint scored by `bench` under every protocol, one
# image (its ten crops) a batch as val_spa.py; the reference's "cam" maps are post-processor none.
SPA_SUITE = """
name = "e2e-spa"
[dataset]
kind = "metadata"
image_root = {images}
metadata_root = {metadata}
image_size = 80
resize_size = 96
num_classes = 10
[train]
backbone = "vgg16"
pretrained = false
[methods.spa]
[postprocessors.none]
[postprocessors.scg]
{scg}
[evaluation]
box_thresholds = {thresholds}
ten_crop = true
batch_size = 1
protocols = {protocols}
"""
SPA_KINDS = {"none": "cam", "scg": "scg"}


def test_reference_values_record_their_sources():
    wsol, spa = REFERENCE["wsolevaluation"]["source"], SPA["source"]
    assert wsol["repository"] == "clovaai/wsolevaluation" and wsol["commit"].startswith("96f4b88")
    assert spa["repository"] == "Panxjia/SPA_CVPR2021" and spa["commit"].startswith("32bf2d5")
    for source in (wsol, spa):
        assert source["file"] and source["command"] and source["checkpoint"] and source["shims"]
    assert len(WSOL) == 9 and SPA["num_images"] == 6


def runs(rle: list) -> list:
    return [value for value, repeat in rle for _ in range(repeat)]


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def require_same_network(ours: np.ndarray, expected_rows: list, sha256: str | None = None) -> None:
    """Skip (saying why) when only the network's last bits differ from the reference run's.

    ``expected_rows``: the reference's values (``float.hex``), per image its first ones or all;
    ``sha256``: of all the reference's float32 values, when it recorded one."""
    ours = np.asarray(ours, np.float32).reshape(len(expected_rows), -1)
    if sha256 is not None:
        exact = digest(ours) == sha256
    else:
        exact = [[float(v).hex() for v in row] for row in ours.tolist()] == expected_rows
    if exact:
        return
    expected = np.array([[float.fromhex(v) for v in row] for row in expected_rows])
    got = ours[:, : expected.shape[1]]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)  # else: a real difference
    pytest.skip(
        "this machine's float32 network gives other last bits than the machine that ran the "
        "reference code (another CPU or torch): bit-level end-to-end equality is not defined"
    )


# -- wsolevaluation: checkpoint import, infer, evaluate -----------------------------------------
def wsolevaluation_checkpoint(architecture: str, num_classes: int, path: Path) -> Path:
    """What wsolevaluation's Trainer saves (main.py _torch_save_model): architecture, epoch,
    state_dict (its names, no DataParallel prefix), optimizer; the seeded weights."""
    model = wsolbench.create_method("cam", backbone=architecture, num_classes=num_classes)
    state = {
        ref: seeded_tensor(ref, own).to(own.dtype) if own.is_floating_point() else own
        for ref, own in zip(model.reference_names().values(), model.state_dict().values())
    }
    optimizer = {"state": {}, "param_groups": [{"lr": 0.00227913316, "params": [0]}]}
    payload = {"architecture": architecture, "epoch": 0, "state_dict": state}
    torch.save({**payload, "optimizer": optimizer}, path)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each (architecture, split) model: the reference checkpoint, imported by the CLI."""
    folder = tmp_path_factory.mktemp("e2e-wsolevaluation")
    out = {}
    for architecture in ARCHITECTURES:
        for kind, (_, classes) in SPLITS.items():
            reference = wsolevaluation_checkpoint(
                architecture, classes, folder / f"{architecture}-{kind}.pth.tar"
            )
            checkpoint = folder / f"{architecture}-{kind}.pt"
            command = ["checkpoint", "import", str(reference), "--method", "cam"]
            command += ["--backbone", architecture, "--num-classes", str(classes)]
            assert main([*command, "--out", str(checkpoint)]) == 0
            out[architecture, kind] = checkpoint
    return out


def infer_and_evaluate(checkpoint: Path, kind: str, out: Path) -> tuple[Path, dict]:
    """`wsolbench infer` then `wsolbench evaluate`, as the README runs them; the reference's
    batch (6) so that the network sees the same batch."""
    metadata = str(DATA / SPLITS[kind][0])
    maps = out / f"maps-{kind}"
    command = ["infer", "--checkpoint", str(checkpoint), "--metadata-root", metadata]
    command += ["--image-root", str(DATA), "--out", str(maps), "--image-size", "224"]
    command += ["--batch-size", "6", "--workers", "0", "--device", "cpu", "--no-progress"]
    assert main(command) == 0
    results = out / f"{kind}.json"
    command = ["evaluate", "--metadata-root", metadata, "--scoremap-root", str(maps)]
    command += ["--output", str(results), "--device", "cpu"]  # the default curve interval
    if kind == "masks":
        command += ["--mask-root", str(DATA)]
    assert main(command) == 0
    return maps, json.loads(results.read_text())


def check_logits(checkpoint: Path, kind: str, reference: dict) -> None:
    model = load_model(checkpoint)
    dataset = EvalDataset(read_split(DATA / SPLITS[kind][0]), DATA, 224)
    with torch.no_grad():
        logits = model(torch.stack([dataset[i]["image"] for i in range(len(dataset))]))["logits"]
    require_same_network(logits.numpy(), reference["logits_first_10"], reference["logits_sha256"])


def check_scoremaps(maps: Path, reference: dict) -> None:
    """Every map `infer` wrote is the one wsolevaluation's CAMComputer saved, bit for bit."""
    assert len(reference["scoremaps"]) == 6
    for image_id, (dtype, shape, sha256) in reference["scoremaps"].items():
        written = np.load(maps / f"{image_id}.npy")
        assert (str(written.dtype), list(written.shape)) == (dtype, shape), image_id
        assert digest(written) == sha256, image_id


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_wsolevaluation_boxes_equal_the_reference(architecture, imported, tmp_path):
    v1, v2 = WSOL[f"{architecture}/MaxBoxAcc"], WSOL[f"{architecture}/MaxBoxAccV2"]
    check_logits(imported[architecture, "boxes"], "boxes", v2)
    maps, results = infer_and_evaluate(imported[architecture, "boxes"], "boxes", tmp_path)
    check_scoremaps(maps, v2)
    ious = ("30", "50", "70")
    assert [results["MaxBoxAcc_per_iou"][d] for d in ious] == v1["result"]
    assert results["MaxBoxAcc"] == v1["result"][1]  # main.py: the IoU-50 entry
    assert results["MaxBoxAccV2_per_iou"] == v2["result"]
    assert results["MaxBoxAccV2"] == float(np.average(v2["result"]))  # main.py evaluate()
    assert results["box_num_images"] == v1["count"] == v2["count"] == 6
    for iou in ious:  # the correct-image count at every one of the 1000 CAM thresholds
        assert results["box_correct_counts_v1"][iou] == runs(v1["num_correct_rle"][iou])
        assert results["box_correct_counts_v2"][iou] == runs(v2["num_correct_rle"][iou])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_wsolevaluation_pxap_equals_the_reference(architecture, imported, tmp_path):
    reference = WSOL[f"{architecture}/PxAP"]
    check_logits(imported[architecture, "masks"], "masks", reference)
    maps, results = infer_and_evaluate(imported[architecture, "masks"], "masks", tmp_path)
    check_scoremaps(maps, reference)
    assert results["PxAP"] == reference["result"][0]
    # The whole curve: its histograms' cumulative counts, as evaluation.py computes them.
    tp = np.cumsum(runs(reference["gt_true_score_hist_rle"])[::-1]).astype(np.float64)
    fp = np.cumsum(runs(reference["gt_false_score_hist_rle"])[::-1]).astype(np.float64)
    assert results["pxap_recall"] == (tp / tp[-1]).tolist()
    with np.errstate(invalid="ignore"):
        assert results["pxap_precision"] == np.nan_to_num(tp / (tp + fp)).tolist()


# -- spa: checkpoint import, ten-crop classification, plain and + SCG ----------------------------
def spa_checkpoint(path: Path) -> Path:
    """What exper/train_cam_spa.py saves: DataParallel keys under state_dict, with epoch, arch,
    global_counter and the optimizer; vgg_spa.py's unused conv5_add block included."""
    model = wsolbench.create_method("spa", backbone="vgg16", num_classes=10)
    state = {
        f"module.{ref}": seeded_tensor(ref, own).to(own.dtype)
        for ref, own in zip(model.reference_names().values(), model.state_dict().values())
    }
    for key, shape in (("conv5_add.0.weight", (512, 512, 3, 3)), ("conv5_add.0.bias", (512,))):
        state[f"module.{key}"] = seeded_tensor(key, torch.empty(shape)).float()
    optimizer = {"state": {}, "param_groups": [{"lr": 0.001, "params": [0]}]}
    payload = {"epoch": 100, "arch": "vgg_spa", "global_counter": 0, "state_dict": state}
    torch.save({**payload, "optimizer": optimizer}, path)
    return path


def score_spa(checkpoint: Path, folder: Path) -> dict:
    """The spa protocol's per-image records of the imported checkpoint as a user gets them:
    ``wsolbench bench --checkpoint spa=PATH`` on the reference run's settings (nothing
    trained), read back from the leaderboard; per post-processor (the reference's name)."""
    metadata = folder / "metadata"
    for split in ("train", "val", "test"):  # the six images in every split (nothing trains)
        shutil.copytree(DATA / "metadata" / "boxes", metadata / split)
    suite = folder / "e2e-spa.toml"
    suite.write_text(
        SPA_SUITE.format(
            images=json.dumps(str(DATA)),
            metadata=json.dumps(str(metadata)),
            scg="\n".join(f"{key} = {value}" for key, value in SPA_SCG.items()),
            thresholds=list(SPA_THRESHOLDS),
            protocols=json.dumps(list(registered_protocols())),
        )
    )
    command = ["bench", "--suite", suite, "--checkpoint", f"spa={checkpoint}", "--device", "cpu"]
    command += ["--runs-dir", folder / "runs", "--out", folder / "lb", "--no-progress"]
    assert main([str(a) for a in command]) == 0
    records, _ = per_image.load(folder / "lb" / "e2e-spa" / per_image.FILE_NAME)
    assert {record.key["method"] for record in records} == {"spa"}
    return {SPA_KINDS[record.key["postprocessor"]]: record.arrays for record in records}


def spa_maps(checkpoint: Path) -> dict:
    """Per image what the bench scores: the ten-crop probabilities and top-5 classes
    (``predict``), each post-processor's maps at the original size. val_spa.py's batch: one
    image (its ten crops) at a time."""
    model = load_model(checkpoint)
    dataset = EvalDataset(
        read_split(DATA / "metadata" / "boxes"), DATA, 80, ten_crop=True, resize_size=96
    )
    postprocessors = {
        "cam": create_postprocessor("identity"),
        "scg": create_postprocessor("scg", **SPA_SCG),
    }
    images = {}
    for batch in predict(model, dataset, batch_size=1, ten_crop=True, topk=5):
        classes = torch.cat([batch["cams_gt"][:, None], batch["cams_topk"]], dim=1)
        name = Path(batch["image_id"][0]).name
        images[name] = {"topk": batch["topk"][0].tolist(), "label": int(batch["label"][0])}
        images[name]["probabilities"] = batch["probs"][0].numpy()
        for kind, pp in postprocessors.items():
            images[name][kind] = pp(classes, batch["taps"], original_sizes(batch))[0].numpy()
    return images


@pytest.fixture(scope="module")
def spa_scores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-spa")
    reference = spa_checkpoint(folder / "cub_epoch_100.pth.tar")
    checkpoint = folder / "spa.pt"
    command = ["checkpoint", "import", str(reference), "--method", "spa", "--backbone", "vgg16"]
    assert main([*command, "--num-classes", "10", "--out", str(checkpoint)]) == 0
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the one_thread fixture does not reach a module's fixtures
    try:
        images = spa_maps(checkpoint)
        names = sorted(images)
        recorded = SPA["recorded"]["images"]
        assert names == sorted(recorded)
        require_same_network(
            np.stack([images[name]["probabilities"] for name in names]),
            [recorded[name]["probabilities"] for name in names],
        )
        records = score_spa(checkpoint, folder / "user")
    finally:
        torch.set_num_threads(previous)
    return records, images


def test_spa_ten_crop_probabilities_equal_the_reference(spa_scores):
    """The ten-crop mean of the softmax, in SPA's order, bit for bit (checked by the fixture,
    which skips every spa test when only the network's last bits differ), and the top-5."""
    _, images = spa_scores
    for name, ours in images.items():
        recorded = SPA["recorded"]["images"][name]
        probabilities = [float(p).hex() for p in ours["probabilities"].tolist()]
        assert probabilities == recorded["probabilities"], name
        top5 = recorded["thresholds"]["0.1"]["cam_top5_boxes"]
        assert ours["topk"] == [box[0] for box in top5], name


def test_spa_counts_equal_the_reference(spa_scores):
    records, _ = spa_scores
    count = SPA["num_images"]
    values = SPA["values"]
    for kind, arrays in records.items():
        # Classification (ten-crop): the same for both maps.
        assert count - int(arrays["classic.top1_cls"].sum()) == values["cls"]["top1_wrong"]
        assert count - int(arrays["classic.top5_cls"].sum()) == values["cls"]["top5_wrong"]
        for t, threshold in enumerate(SPA_THRESHOLDS):
            expected = values[f"{threshold}"][kind]
            outcome = arrays["classic.outcome"][:, t]
            outcomes = {name: int((outcome == i).sum()) for i, name in enumerate(OUTCOMES)}
            got = dict(zip(SPA_OUTCOMES, outcomes.values()))
            assert got == expected["outcomes"], (kind, threshold)
            assert count - outcomes["correct"] == expected["top1_loc_wrong"], (kind, threshold)
            top5 = int(arrays["classic.top5_loc"][:, t].sum())
            assert count - top5 == expected["top5_loc_wrong"], (kind, threshold)
            known = int(arrays["classic.gt_known_loc"][:, t].sum())
            assert count - known == expected["gt_known_loc_wrong"], (kind, threshold)


def test_spa_boxes_and_maps_equal_the_reference_bit_for_bit(spa_scores):
    """Every map at the original size (the EXIF-rotated image's as cv2.imread turns it), plain
    and + SCG, has the SPA code's sha256; every top-5 and GT-known box at every threshold is
    its box."""
    _, images = spa_scores
    for name, ours in images.items():
        recorded = SPA["recorded"]["images"][name]
        for kind in ("cam", "scg"):
            maps = ours[kind]  # GT class, then the top-5
            assert list(maps.shape[1:]) == recorded["map_shape"], name
            assert [digest(m) for m in maps[1:]] == recorded[f"{kind}_maps"], (name, kind)
            assert digest(maps[0]) == recorded[f"{kind}_gt_known_map"], (name, kind)
            boxes = union_boxes_at(torch.from_numpy(maps), SPA_THRESHOLDS).numpy()
            for t, threshold in enumerate(SPA_THRESHOLDS):
                at = recorded["thresholds"][f"{threshold:g}"]
                top5 = [[c, *b] for c, b in zip(ours["topk"], boxes[t, 1:].tolist())]
                assert top5 == at[f"{kind}_top5_boxes"], (name, kind, threshold)
                assert [ours["label"], *boxes[t, 0].tolist()] == at[f"{kind}_gt_known_box"]
