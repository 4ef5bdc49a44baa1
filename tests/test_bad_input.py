"""Bad inputs across every command, as a hostile user would try them (docs/bad-input.md).

Each case runs the command in-process and asserts: exit code 2, one line on stderr naming
the file, key or flag, no traceback, and not a byte written or replaced in the workspace.
The workspace (copies of the shared tiny dataset and run of tests/conftest.py, and score maps
inferred from that run) is built once per module; a case that needs a broken input makes it
before the snapshot.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from engine_helpers import snapshot

from wsolbench.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"


@dataclass
class Workspace:
    root: Path
    data: Path  # synthetic layout: images/, masks/, metadata/{train,val,test}
    run: Path  # a finished run (last.pt): the shared tiny run's
    maps: Path  # the test split's score maps

    @property
    def checkpoint(self) -> Path:
        return self.run / "last.pt"

    def meta(self, split: str = "test") -> Path:
        return self.data / "metadata" / split

    def case(self, name: str) -> Path:
        folder = self.root / "cases" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_data, tiny_run) -> Workspace:
    root = tmp_path_factory.mktemp("bad-input")
    data = Path(shutil.copytree(tiny_data, root / "data"))
    tiny_run.copy_to(root / "run")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    maps = root / "maps"
    assert (
        main(
            [
                "infer",
                "--checkpoint",
                str(root / "run" / "last.pt"),
                "--metadata-root",
                str(data / "metadata" / "test"),
                "--image-root",
                str(data / "images"),
                "--out",
                str(maps),
                "--map-size",
                "16",
                "--workers",
                "0",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    torch.set_num_threads(previous)
    return Workspace(root, data, root / "run", maps)


# ----------------------------------------------------------------------------- input makers


SUITE = """
name = "tiny"
[dataset]
kind = "synthetic"
root = "{root}"
image_size = 32
resize_size = 36
synthetic = {{ num_classes = 3, image_size = 32, train_per_class = 16, val_per_class = 2, test_per_class = 3 }}
[train]
backbone = "tinyvgg"
pretrained = false
epochs = 1
batch_size = 4
lr = 0.01
lr_milestones = []
workers = 0
[methods.cam]
[methods.has]
grid_size = 4
[postprocessors.none]
[postprocessors.scg]
fo_th = 0.1
[evaluation]
map_size = 32
batch_size = 8
cam_curve_interval = 0.01
iou_thresholds = [30, 50, 70]
box_thresholds = [0.2]
"""


def suite(ws: Workspace, name: str, old: str = "", new: str = "", raw: bytes | None = None) -> str:
    """A suite file for case `name`: the tiny suite with `old` replaced by `new`."""
    text = SUITE.format(root=ws.data)
    if old:
        assert old in text, old
        text = text.replace(old, new)
    path = ws.case(name) / "suite.toml"
    path.write_bytes(raw if raw is not None else text.encode())
    return str(path)


def bench(
    ws: Workspace, name: str, *extra: str, runs: Path | None = None, out: Path | None = None, **edit
) -> list[str]:
    return [
        "bench",
        "--suite",
        suite(ws, name, **edit),
        "--runs-dir",
        str(runs or ws.case(name) / "runs"),
        "--out",
        str(out or ws.case(name) / "lb"),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def train(
    ws: Workspace,
    name: str,
    *extra: str,
    data: Path | None = None,
    images: Path | None = None,
    out: Path | None = None,
    where: bool = True,
) -> list[str]:
    """`train` on the workspace's data (or `images` / `data` metadata), then `extra` (later flags
    win). The flags are those of the workspace's run (engine_helpers.tiny_config), but one epoch:
    resuming that run with them is allowed, with one flag more is not."""
    roots = [
        "--image-root",
        str(images or ws.data / "images"),
        "--metadata-root",
        str(data or ws.data / "metadata"),
    ]
    return [
        "train",
        *(roots if where else []),
        "--image-size",
        "32",
        "--resize-size",
        "36",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "0.02",
        "--lr-step",
        "10",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(out or ws.case(name) / "out"),
        *extra,
    ]


def infer(
    ws: Workspace,
    name: str,
    *extra: str,
    checkpoint: Path | None = None,
    meta: Path | None = None,
    images: Path | None = None,
    out: Path | None = None,
) -> list[str]:
    return [
        "infer",
        "--checkpoint",
        str(checkpoint or ws.checkpoint),
        "--metadata-root",
        str(meta or ws.meta()),
        "--image-root",
        str(images or ws.data / "images"),
        "--out",
        str(out or ws.case(name) / "maps"),
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def evaluate(
    ws: Workspace, *extra: str, maps: Path | None = None, meta: Path | None = None
) -> list[str]:
    return [
        "evaluate",
        "--metadata-root",
        str(meta or ws.meta()),
        "--scoremap-root",
        str(maps or ws.maps),
        "--device",
        "cpu",
        *extra,
    ]


def metadata_copy(
    ws: Workspace,
    name: str,
    split: str = "train",
    edit: Callable[[Path], None] | None = None,
    layout: bool = False,
) -> Path:
    """A copy of one split's metadata (or, with `layout`, of metadata/ with every split), edited."""
    target = ws.case(name) / ("metadata" if layout else split)
    shutil.copytree(ws.data / "metadata" / ("" if layout else split), target)
    if edit is not None:
        edit(target / split if layout else target)
    return target


def set_label(value: int, line: int = 1) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        lines = (folder / "class_labels.txt").read_text().splitlines()
        image_id = lines[line - 1].split(",")[0]
        lines[line - 1] = f"{image_id},{value}"
        (folder / "class_labels.txt").write_text("\n".join(lines) + "\n")

    return edit


def first_map(ws: Workspace, name: str, array=None, raw: bytes | None = None) -> Path:
    """A copy of the score maps whose first map is `array` (saved) or `raw` bytes."""
    maps = ws.case(name) / "maps"
    shutil.copytree(ws.maps, maps)
    path = sorted(maps.rglob("*.npy"))[0]
    if raw is not None:
        path.write_bytes(raw)
    else:
        np.save(path, array)
    return maps


def first_image(ws: Workspace, name: str, raw: bytes) -> Path:
    """An image root where the first test and train images are replaced by `raw` bytes."""
    images = ws.case(name) / "images"
    shutil.copytree(ws.data / "images", images)
    for split in ("test", "train"):
        first = (ws.data / "metadata" / split / "image_ids.txt").read_text().splitlines()[0]
        (images / first).write_bytes(raw)
    return images


def checkpoint_with(ws: Workspace, name: str, **fields) -> Path:
    payload = torch.load(ws.checkpoint, weights_only=True)
    payload.update(fields)
    path = ws.case(name) / "bad.pt"
    torch.save(payload, path)
    return path


def a_file(ws: Workspace, name: str) -> Path:
    path = ws.case(name) / "a-file"
    path.write_text("x")
    return path


def masks_copy(ws: Workspace, name: str, raw: bytes | None = None, shape=None) -> Path:
    masks = ws.case(name) / "masks"
    shutil.copytree(ws.data / "masks", masks)
    first = (
        (ws.data / "metadata" / "test" / "mask_localization.txt")
        .read_text()
        .splitlines()[0]
        .split(",")[1]
    )
    if raw is not None:
        (masks / first).write_bytes(raw)
    else:
        cv2.imwrite(str(masks / first), np.zeros(shape, np.uint8))
    return masks


def cub(
    ws: Workspace, name: str, labels="1", flags="1", box="2 2 10 10", path="a/1.png"
) -> list[str]:
    """A two-image CUB_200_2011 folder whose first image has the given native values."""
    root = ws.case(name) / "CUB"
    (root / "images" / "a").mkdir(parents=True)
    for image in ("a/1.png", "a/2.png"):
        cv2.imwrite(str(root / "images" / image), np.zeros((20, 30, 3), np.uint8))
    (root / "images.txt").write_text(f"1 {path}\n2 a/2.png\n")
    (root / "image_class_labels.txt").write_text(f"1 {labels}\n2 1\n")
    (root / "train_test_split.txt").write_text(f"1 {flags}\n2 0\n")
    (root / "bounding_boxes.txt").write_text(f"1 {box}\n2 1 1 5 5\n")
    return [
        "data",
        "convert",
        "cub",
        "--root",
        str(root),
        "--style",
        "spa",
        "--out",
        str(ws.case(name) / "out"),
        "--val-per-class",
        "1",
    ]


def results_csv(ws: Workspace, name: str, value: str) -> str:
    path = ws.case(name) / "results.csv"
    path.write_text(
        "dataset,split,backbone,method,postprocessor,protocol,metric,value\n"
        f"d,test,b,m,none,spa,Top1Loc,{value}\n"
    )
    return str(path)


PNG_GARBAGE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def truncated_png(ws: Workspace) -> bytes:
    first = (ws.data / "metadata" / "test" / "image_ids.txt").read_text().splitlines()[0]
    data = (ws.data / "images" / first).read_bytes()
    return data[: len(data) // 2]


def rgb_mask_bigger(ws):  # a mask whose size differs from its image's
    return masks_copy(ws, "mask-wrong-size", shape=(7, 5))


# ----------------------------------------------------------------------------- the table
# (case id, argv maker, what the message must name). The ids are listed in docs/bad-input.md.

CASES: list[tuple[str, Callable[[Workspace], list[str]], str]] = [
    # bench: the suite, its overrides and the command line
    (
        "bench-suite-name-climbs",
        lambda ws: bench(ws, "s1", old='name = "tiny"', new='name = "../../x"'),
        "name = '../../x'",
    ),
    (
        "bench-suite-name-absolute",
        lambda ws: bench(ws, "s2", old='name = "tiny"', new='name = "/tmp/x"'),
        "name = '/tmp/x'",
    ),
    (
        "bench-label-climbs",
        lambda ws: bench(ws, "s3", old="[methods.cam]", new='[methods."../evil"]\nmethod = "cam"'),
        "the label of [methods.../evil]",
    ),
    ("bench-methods-empty", lambda ws: bench(ws, "s4", "--methods", ","), "--methods"),
    ("bench-methods-unknown", lambda ws: bench(ws, "s5", "--methods", "cam,nope"), "--methods"),
    (
        "bench-map-size-zero",
        lambda ws: bench(ws, "s6", old="map_size = 32", new="map_size = 0"),
        "evaluation.map_size",
    ),
    (
        "bench-eval-batch-zero",
        lambda ws: bench(ws, "s7", old="batch_size = 8", new="batch_size = 0"),
        "evaluation.batch_size",
    ),
    ("bench-lr-negative", lambda ws: bench(ws, "s8", old="lr = 0.01", new="lr = -1"), "train.lr"),
    (
        "bench-hparam-not-a-number",
        lambda ws: bench(ws, "s9", old="grid_size = 4", new='grid_size = "big"'),
        "methods.has.grid_size",
    ),
    (
        "bench-hparam-out-of-range",
        lambda ws: bench(ws, "s10", old="grid_size = 4", new="drop_rate = 2.0"),
        "methods.has",
    ),
    (
        "bench-hparam-unknown",
        lambda ws: bench(ws, "s11", old="grid_size = 4", new="alpha = 1"),
        "unknown hyperparameter 'alpha'",
    ),
    ("bench-suite-not-utf8", lambda ws: bench(ws, "s12", raw=b'name = "t\xff"\n'), "not UTF-8"),
    (
        "bench-milestones-not-ints",
        lambda ws: bench(ws, "s13", old="lr_milestones = []", new='lr_milestones = ["a"]'),
        "train.lr_milestones",
    ),
    (
        "bench-pp-option-type",
        lambda ws: bench(ws, "s14", old="fo_th = 0.1", new='fo_th = "high"'),
        "postprocessors.scg.fo_th",
    ),
    (
        "bench-pp-option-value",
        lambda ws: bench(ws, "s15", old="fo_th = 0.1", new='mode = "sideways"'),
        "postprocessors.scg",
    ),
    (
        "bench-pp-option-unknown",
        lambda ws: bench(ws, "s16", old="fo_th = 0.1", new="colour = 1"),
        "unknown option 'colour'",
    ),
    (
        "bench-pp-unknown",
        lambda ws: bench(ws, "s17", old="[postprocessors.none]", new="[postprocessors.blur]"),
        "postprocessors.blur",
    ),
    (
        "bench-set-epochs-zero",
        lambda ws: bench(ws, "s18", "--set", "train.epochs=0"),
        "--set train.epochs=0",
    ),
    (
        "bench-set-lr-word",
        lambda ws: bench(ws, "s19", "--set", "train.lr=fast"),
        "--set train.lr=fast",
    ),
    ("bench-set-malformed", lambda ws: bench(ws, "s20", "--set", "epochs=3"), "--set epochs=3"),
    (
        "bench-curve-interval-tiny",
        lambda ws: bench(
            ws, "s21", old="cam_curve_interval = 0.01", new="cam_curve_interval = 1e-7"
        ),
        "evaluation.cam_curve_interval",
    ),
    (
        "bench-iou-150",
        lambda ws: bench(
            ws, "s22", old="iou_thresholds = [30, 50, 70]", new="iou_thresholds = [150]"
        ),
        "evaluation.iou_thresholds",
    ),
    (
        "bench-box-thresholds-empty",
        lambda ws: bench(ws, "s23", old="box_thresholds = [0.2]", new="box_thresholds = []"),
        "evaluation.box_thresholds",
    ),
    ("bench-device-bogus", lambda ws: bench(ws, "s24", "--device", "quantum"), "--device"),
    ("bench-runs-dir-is-a-file", lambda ws: bench(ws, "s25", runs=a_file(ws, "s25")), "--runs-dir"),
    ("bench-out-is-a-file", lambda ws: bench(ws, "s26", out=a_file(ws, "s26")), "--out"),
    (
        "bench-epochs-bool",
        lambda ws: bench(ws, "s27", old="epochs = 1", new="epochs = true"),
        "train.epochs",
    ),
    ("bench-seed-float", lambda ws: bench(ws, "s28", "--set", "train.seed=1.5"), "train.seed"),
    (
        "bench-workers-negative",
        lambda ws: bench(ws, "s29", old="workers = 0", new="workers = -1"),
        "train.workers",
    ),
    (
        "bench-recipe-unknown",
        lambda ws: bench(ws, "s30", "--set", "train.recipe=fast"),
        "train.recipe",
    ),
    (
        "bench-synthetic-classes",
        lambda ws: bench(ws, "s31", old="num_classes = 3,", new="num_classes = 1000,"),
        "dataset.synthetic.num_classes",
    ),
    (
        "bench-num-classes-negative",
        lambda ws: bench(ws, "s32", "--set", "dataset.num_classes=-1"),
        "dataset.num_classes",
    ),
    (
        "bench-unknown-method",
        lambda ws: bench(ws, "s33", old="[methods.cam]", new="[methods.camm]"),
        "unknown method 'camm'",
    ),
    (
        "bench-unknown-train-key",
        lambda ws: bench(ws, "s34", old="epochs = 1", new="epoch = 1"),
        "train.epoch",
    ),
    ("bench-invalid-toml", lambda ws: bench(ws, "s35", raw=b"name = [\n"), "invalid TOML"),
    (
        "bench-backbone-unknown",
        lambda ws: bench(ws, "s36", "--set", "train.backbone=resnet9000"),
        "train.backbone",
    ),
    (
        "bench-method-not-on-backbone",
        lambda ws: bench(ws, "s36b", "--set", "train.backbone=deit_small"),
        "no network on backbone 'deit_small' (methods that run on it: scm, tscam)",
    ),
    (
        "bench-decay-contradicts-recipe",
        lambda ws: bench(ws, "s37", "--set", "train.lr_decay=multistep"),
        "train.lr_decay",
    ),
    (
        "bench-resize-smaller",
        lambda ws: bench(ws, "s38", "--set", "dataset.resize_size=16"),
        "dataset.resize_size",
    ),
    (
        "bench-suite-missing",
        lambda ws: ["bench", "--suite", str(ws.case("s39") / "nope.toml")],
        "nope.toml",
    ),
    # train
    ("train-lr-negative", lambda ws: train(ws, "t1", "--lr", "-1"), "--lr"),
    ("train-epochs-zero", lambda ws: train(ws, "t2", "--epochs", "0"), "--epochs"),
    ("train-batch-size-word", lambda ws: train(ws, "t3", "--batch-size", "abc"), "--batch-size"),
    (
        "train-hparam-not-a-number",
        lambda ws: train(ws, "t4", "--method", "has", "--hparam", "grid_size=big"),
        "--hparam.grid_size",
    ),
    (
        "train-hparam-out-of-range",
        lambda ws: train(ws, "t5", "--method", "has", "--hparam", "drop_rate=2"),
        "--hparam",
    ),
    ("train-hparam-no-equals", lambda ws: train(ws, "t6", "--hparam", "grid_size"), "--hparam"),
    ("train-device-bogus", lambda ws: train(ws, "t7", "--device", "quantum"), "--device"),
    (
        "train-milestones-words",
        lambda ws: train(ws, "t8", "--lr-milestones", "a,b"),
        "--lr-milestones",
    ),
    (
        "train-decay-contradicts-recipe",
        lambda ws: train(ws, "t9", "--lr-decay", "multistep"),
        "--lr-decay",
    ),
    ("train-resize-smaller", lambda ws: train(ws, "t10", "--resize-size", "16"), "--resize-size"),
    ("train-num-classes-zero", lambda ws: train(ws, "t11", "--num-classes", "0"), "--num-classes"),
    ("train-no-data", lambda ws: train(ws, "t12", where=False), "--data"),
    ("train-finished-run-kept", lambda ws: train(ws, "t13", out=ws.run), "last.pt"),
    (
        "train-resume-and-overwrite",
        lambda ws: train(ws, "t14", "--resume", "--overwrite"),
        "--overwrite",
    ),
    (
        "train-label-negative",
        lambda ws: train(
            ws, "t15", data=metadata_copy(ws, "t15", "train", set_label(-1), layout=True)
        ),
        "class_labels.txt:1",
    ),
    (
        "train-label-huge",
        lambda ws: train(
            ws, "t16", data=metadata_copy(ws, "t16", "train", set_label(10**12), layout=True)
        ),
        "class_labels.txt",
    ),
    (
        "train-label-beyond-num-classes",
        lambda ws: train(
            ws,
            "t17",
            "--num-classes",
            "2",
            data=metadata_copy(ws, "t17", "train", set_label(5), layout=True),
        ),
        "class_labels.txt",
    ),
    (
        "train-out-under-a-file",
        lambda ws: train(ws, "t18", out=a_file(ws, "t18") / "sub"),
        "a-file",
    ),
    ("train-method-unknown", lambda ws: train(ws, "t19", "--method", "gradcam9"), "--method"),
    ("train-workers-negative", lambda ws: train(ws, "t20", "--workers", "-1"), "--workers"),
    (
        "train-bad-image-in-worker",
        lambda ws: train(ws, "t21", "--workers", "1", images=_truncated_images(ws, "t21")),
        "image_ids.txt:1",
    ),
    (
        "train-image-unreadable-up-front",
        lambda ws: train(ws, "t25", images=first_image(ws, "t25", PNG_GARBAGE)),
        "train/image_ids.txt:1",
    ),
    (
        "train-resume-other-workers",
        lambda ws: train(ws, "t22", "--resume", "--workers", "1", out=ws.run),
        "other settings (workers)",
    ),
    (
        "train-resume-other-device",
        lambda ws: train(
            ws,
            "t25",
            "--resume",
            out=_run_with(
                ws,
                "t25",
                execution={
                    "device": "cuda",
                    "dtype": "bfloat16",
                    "channels_last": True,
                    "world_size": 1,
                },
            ),
        ),
        "device cuda -> cpu",
    ),
    ("train-nesterov-word", lambda ws: train(ws, "t23", "--nesterov", "maybe"), "--nesterov"),
    ("train-recipe-unknown", lambda ws: train(ws, "t24", "--recipe", "fast"), "--recipe"),
    # infer
    ("infer-map-size-zero", lambda ws: infer(ws, "i1", "--map-size", "0"), "--map-size"),
    ("infer-batch-size-zero", lambda ws: infer(ws, "i2", "--batch-size", "0"), "--batch-size"),
    (
        "infer-pp-option-type",
        lambda ws: infer(ws, "i3", "--postprocessor", "scg", "--pp-option", "fo_th=high"),
        "--pp-option.fo_th",
    ),
    (
        "infer-pp-option-value",
        lambda ws: infer(ws, "i4", "--postprocessor", "scg", "--pp-option", "mode=sideways"),
        "--pp-option",
    ),
    (
        "infer-pp-option-no-equals",
        lambda ws: infer(ws, "i5", "--pp-option", "fo_th"),
        "--pp-option",
    ),
    (
        "infer-postprocessor-unknown",
        lambda ws: infer(ws, "i6", "--postprocessor", "blur"),
        "--postprocessor",
    ),
    ("infer-device-bogus", lambda ws: infer(ws, "i7", "--device", "quantum"), "--device"),
    ("infer-checkpoint-pickled", lambda ws: infer(ws, "i8", checkpoint=_pickled(ws)), "pickled.pt"),
    (
        "infer-checkpoint-field-type",
        lambda ws: infer(ws, "i9", checkpoint=checkpoint_with(ws, "i9", num_classes="ten")),
        "bad.pt",
    ),
    (
        "infer-checkpoint-bad-hparams",
        lambda ws: infer(
            ws, "i10", checkpoint=checkpoint_with(ws, "i10", hparams={"grid_size": 3})
        ),
        "bad.pt",
    ),
    (
        "infer-checkpoint-config-field",
        lambda ws: infer(
            ws, "i17", checkpoint=checkpoint_with(ws, "i17", config={"image_size": "big"})
        ),
        "bad.pt",
    ),
    (
        "infer-checkpoint-missing",
        lambda ws: infer(ws, "i11", checkpoint=ws.case("i11") / "none.pt"),
        "none.pt",
    ),
    ("infer-out-is-a-file", lambda ws: infer(ws, "i12", out=a_file(ws, "i12")), "--out"),
    (
        "infer-label-beyond-model",
        lambda ws: infer(ws, "i13", meta=metadata_copy(ws, "i13", "test", set_label(7))),
        "class_labels.txt",
    ),
    (
        "infer-truncated-image-in-worker",
        lambda ws: infer(
            ws, "i14", "--workers", "1", images=first_image(ws, "i14", truncated_png(ws))
        ),
        "image_ids.txt:1",
    ),
    ("infer-workers-word", lambda ws: infer(ws, "i15", "--workers", "many"), "--workers"),
    (
        "infer-out-symlink-escapes",
        lambda ws: infer(ws, "i16", out=_symlinked_out(ws, "i16")),
        "symlink leaving it",
    ),
    # evaluate
    ("evaluate-iou-150", lambda ws: evaluate(ws, "--iou-thresholds", "150"), "--iou-thresholds"),
    (
        "evaluate-curve-interval-tiny",
        lambda ws: evaluate(ws, "--cam-curve-interval", "1e-7"),
        "--cam-curve-interval",
    ),
    (
        "evaluate-curve-interval-word",
        lambda ws: evaluate(ws, "--cam-curve-interval", "fine"),
        "--cam-curve-interval",
    ),
    (
        "evaluate-output-is-a-folder",
        lambda ws: evaluate(ws, "--output", str(ws.case("e4"))),
        "--output",
    ),
    (
        "evaluate-output-under-a-file",
        lambda ws: evaluate(ws, "--output", str(a_file(ws, "e5") / "r.json")),
        "a-file",
    ),
    (
        "evaluate-map-truncated",
        lambda ws: evaluate(
            ws,
            maps=first_map(
                ws,
                "e6",
                raw=b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (16, 16), }"
                + b" " * 50
                + b"\n"
                + b"\x00" * 10,
            ),
        ),
        ".npy",
    ),
    (
        "evaluate-map-npz",
        lambda ws: evaluate(ws, maps=first_map(ws, "e7", raw=_npz_bytes())),
        ".npy",
    ),
    (
        "evaluate-map-3d",
        lambda ws: evaluate(ws, maps=first_map(ws, "e8", np.zeros((2, 16, 16), np.float32))),
        ".npy",
    ),
    (
        "evaluate-map-complex",
        lambda ws: evaluate(ws, maps=first_map(ws, "e9", np.zeros((16, 16), np.complex64))),
        ".npy",
    ),
    (
        "evaluate-map-nan",
        lambda ws: evaluate(ws, maps=first_map(ws, "e10", np.full((16, 16), np.nan, np.float32))),
        ".npy",
    ),
    (
        "evaluate-map-huge-header",
        lambda ws: evaluate(ws, maps=first_map(ws, "e11", raw=_header_only((10**6, 10**6)))),
        ".npy",
    ),
    (
        "evaluate-map-pickle",
        lambda ws: evaluate(ws, maps=first_map(ws, "e12", np.array([{"x": 1}], dtype=object))),
        ".npy",
    ),
    (
        "evaluate-strict-other-split",
        lambda ws: evaluate(ws, "--strict", maps=_with_val_maps(ws, "e13")),
        ".npy",
    ),
    ("evaluate-map-missing", lambda ws: evaluate(ws, maps=_without_first(ws, "e14")), ".npy"),
    (
        "evaluate-mask-unreadable",
        lambda ws: evaluate(ws, "--mask-root", str(masks_copy(ws, "e15", raw=PNG_GARBAGE))),
        ".png",
    ),
    ("evaluate-workers-zero", lambda ws: evaluate(ws, "--workers", "0"), "--workers"),
    (
        "evaluate-metadata-missing",
        lambda ws: evaluate(ws, meta=ws.case("e17") / "nothing"),
        "nothing",
    ),
    # data
    (
        "data-validate-label-negative",
        lambda ws: [
            "data",
            "validate",
            "--metadata-root",
            str(metadata_copy(ws, "d1", "test", set_label(-1, 2))),
        ],
        "class_labels.txt:2",
    ),
    (
        "data-validate-label-range",
        lambda ws: [
            "data",
            "validate",
            "--num-classes",
            "2",
            "--metadata-root",
            str(metadata_copy(ws, "d2", "test", set_label(5))),
        ],
        "class_labels.txt",
    ),
    (
        "data-validate-mask-unreadable",
        lambda ws: [
            "data",
            "validate",
            "--metadata-root",
            str(ws.meta()),
            "--mask-root",
            str(masks_copy(ws, "d3", raw=PNG_GARBAGE)),
        ],
        "mask_localization.txt:1",
    ),
    (
        "data-validate-mask-wrong-size",
        lambda ws: [
            "data",
            "validate",
            "--metadata-root",
            str(ws.meta()),
            "--mask-root",
            str(rgb_mask_bigger(ws)),
        ],
        "mask_localization.txt:1",
    ),
    ("data-cub-class-zero", lambda ws: cub(ws, "d5", labels="0"), "image_class_labels.txt:1"),
    ("data-cub-split-flag", lambda ws: cub(ws, "d6", flags="2"), "train_test_split.txt:1"),
    ("data-cub-box-outside", lambda ws: cub(ws, "d7", box="35 2 20 10"), "bounding_boxes.txt:1"),
    ("data-cub-path-climbs", lambda ws: cub(ws, "d8", path="../x.png"), "images.txt:1"),
    ("data-cub-val-zero", lambda ws: [*cub(ws, "d9")[:-1], "0"], "--val-per-class"),
    (
        "data-synth-one-class",
        lambda ws: ["data", "synth", "--out", str(ws.case("d10") / "s"), "--num-classes", "1"],
        "--num-classes",
    ),
    (
        "data-ilsvrc-synsets-missing",
        lambda ws: [
            "data",
            "convert",
            "ilsvrc",
            "--annotations",
            str(_voc(ws, "d11")),
            "--out",
            str(ws.case("d11") / "out"),
            "--synsets",
            str(ws.case("d11") / "none.txt"),
        ],
        "none.txt",
    ),
    (
        "data-ilsvrc-prefix-climbs",
        lambda ws: [
            "data",
            "convert",
            "ilsvrc",
            "--annotations",
            str(_voc(ws, "d12")),
            "--out",
            str(ws.case("d12") / "out"),
            "--image-prefix",
            "../",
        ],
        "prefix",
    ),
    (
        "data-ilsvrc-box-outside",
        lambda ws: [
            "data",
            "convert",
            "ilsvrc",
            "--annotations",
            str(_voc(ws, "d13", box=(5, 5, 90, 10))),
            "--out",
            str(ws.case("d13") / "out"),
        ],
        "1.xml",
    ),
    (
        "data-cub-out-is-a-file",
        lambda ws: [*cub(ws, "d15")[:-3], str(a_file(ws, "d15")), "--val-per-class", "1"],
        "--out",
    ),
    (
        "data-openimages-second-split-bad",
        lambda ws: [
            "data",
            "convert",
            "openimages",
            "--metadata-root",
            str(metadata_copy(ws, "d14", "test", set_label(-1), layout=True)),
            "--out",
            str(ws.case("d14") / "out"),
        ],
        "class_labels.txt:1",
    ),
    # leaderboard, scg
    (
        "leaderboard-value-not-a-number",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "l1", "=cmd|' /C calc'!A0"),
            "--out",
            str(ws.case("l1") / "lb"),
            "--quiet",
        ],
        "results.csv:2",
    ),
    (
        "leaderboard-out-is-a-file",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "l2", "1.0"),
            "--out",
            str(a_file(ws, "l2")),
            "--quiet",
        ],
        "a-file",
    ),
    (
        "leaderboard-results-missing",
        lambda ws: [
            "leaderboard",
            str(ws.case("l3") / "none.csv"),
            "--out",
            str(ws.case("l3") / "lb"),
        ],
        "none.csv",
    ),
    (
        "scg-num-images-zero",
        lambda ws: [
            "scg",
            "figures",
            "--checkpoint",
            str(ws.checkpoint),
            "--data",
            str(ws.data),
            "--out",
            str(ws.case("g1") / "f"),
            "--num-images",
            "0",
        ],
        "--num-images",
    ),
    (
        "scg-points-outside",
        lambda ws: [
            "scg",
            "figures",
            "--checkpoint",
            str(ws.checkpoint),
            "--data",
            str(ws.data),
            "--out",
            str(ws.case("g2") / "f"),
            "--points",
            "2,2",
        ],
        "--points",
    ),
    (
        "cli-unknown-flag",
        lambda ws: [
            "evaluate",
            "--metadata-root",
            str(ws.meta()),
            "--scoremap-root",
            str(ws.maps),
            "--colour",
        ],
        "--colour",
    ),
    # safe by construction: the writer, the name rule, the schema, datasets as inputs, up front
    (
        "bench-classifier-label-climbs",
        lambda ws: bench(
            ws, "n1", old="[methods.cam]", new='[classifiers."../evil"]\n[methods.cam]'
        ),
        "the label of [classifiers.../evil]",
    ),
    (
        "bench-explainer-label-climbs",
        lambda ws: bench(ws, "n2", old="[methods.cam]", new='[explainers."/tmp/x"]\n[methods.cam]'),
        "the label of [explainers./tmp/x]",
    ),
    (
        "bench-runs-suite-symlinked",
        lambda ws: bench(ws, "n3", runs=_symlinked_child(ws, "n3", "tiny")),
        "outside",
    ),
    (
        "bench-root-without-kind",
        lambda ws: bench(
            ws,
            "n4",
            old=f'kind = "synthetic"\nroot = "{ws.data}"',
            new=f'root = "{_their_folder(ws, "n4")}"',
        ),
        "dataset.kind is required",
    ),
    (
        "bench-synthetic-json-nested",
        lambda ws: bench(
            ws, "n5", old=f'root = "{ws.data}"', new=f'root = "{_nested_synthetic(ws, "n5")}"'
        ),
        "synthetic.json",
    ),
    (
        "bench-spg-thresholds-empty",
        lambda ws: bench(
            ws, "n6", old="[methods.has]", new="[methods.spg]\nthresholds = []\n[methods.has]"
        ),
        "methods.spg.thresholds",
    ),
    (
        "bench-has-grid-zero",
        lambda ws: bench(ws, "n7", old="grid_size = 4", new="grid_size = 0"),
        "methods.has.grid_size",
    ),
    (
        "bench-explainer-layer-unknown",
        lambda ws: bench(
            ws,
            "n8",
            old="[methods.cam]",
            new='[explainers.cam]\n[explainers.g]\nexplainer = "gradcam"\n'
            'target_layers = ["backbone.nope"]\n[methods.cam]',
        ),
        "no layer 'backbone.nope'",
    ),
    (
        "bench-test-image-missing",
        lambda ws: bench(
            ws, "n9", old='kind = "synthetic"', new=_metadata_kind(ws, "n9", "missing")
        ),
        "test/image_ids.txt:1",
    ),
    (
        "bench-image-size-mismatch",
        lambda ws: bench(
            ws, "n10", old='kind = "synthetic"', new=_metadata_kind(ws, "n10", "resized")
        ),
        "image_sizes.txt says",
    ),
    (
        "bench-mask-root-missing",
        lambda ws: bench(
            ws, "n11", old='kind = "synthetic"', new=_metadata_kind(ws, "n11", "no-masks")
        ),
        "mask_localization.txt",
    ),
    (
        "bench-set-nested",
        lambda ws: bench(ws, "n12", "--set", "train.lr=" + "[" * 5000),
        "nested too deeply",
    ),
    (
        "bench-label-twice",
        lambda ws: bench(ws, "n13", old="[methods.cam]", new="[classifiers.cam]\n[methods.cam]"),
        "'cam' labels both",
    ),
    (
        "train-image-size-huge",
        lambda ws: train(ws, "n14", "--image-size", "60000", "--resize-size", "60000"),
        "--image-size",
    ),
    (
        "train-out-holds-their-config",
        lambda ws: train(ws, "n15", out=_their_folder(ws, "n15", "config.json")),
        "did not write",
    ),
    (
        "train-resume-optimizer-malformed",
        lambda ws: train(ws, "n16", "--resume", out=_run_with(ws, "n16", optimizer={"state": 1})),
        "'optimizer'",
    ),
    (
        "train-resume-rng-malformed",
        lambda ws: train(ws, "n17", "--resume", out=_run_with(ws, "n17", rng={"python": 1})),
        "'rng'",
    ),
    (
        "train-resume-scheduler-malformed",
        lambda ws: train(
            ws, "n18", "--resume", out=_run_with(ws, "n18", scheduler={"last_epoch": "x"})
        ),
        "'scheduler'",
    ),
    (
        "infer-checkpoint-nan-weights",
        lambda ws: infer(ws, "n19", checkpoint=_nan_checkpoint(ws, "n19")),
        "holds NaN or inf",
    ),
    (
        "infer-out-is-the-image-root",
        lambda ws: infer(ws, "n20", out=ws.data / "images"),
        "--out",
    ),
    ("evaluate-output-fifo", lambda ws: evaluate(ws, "--output", _fifo(ws, "n21")), "special file"),
    ("evaluate-output-dev-null", lambda ws: evaluate(ws, "--output", "/dev/null"), "special file"),
    (
        "evaluate-output-image-ids",
        lambda ws: evaluate(ws, "--output", str(ws.meta() / "image_ids.txt")),
        "not a file wsolbench wrote",
    ),
    (
        "evaluate-output-symlink",
        lambda ws: evaluate(ws, "--output", _symlink_to(ws, "n23", ws.meta() / "class_labels.txt")),
        "symlink",
    ),
    (
        "evaluate-image-id-too-long",
        lambda ws: evaluate(ws, meta=_long_id(ws, "n24")),
        "image_ids.txt:1",
    ),
    (
        "data-validate-image-id-too-long",
        lambda ws: [
            "data",
            "validate",
            "--metadata-root",
            str(_long_id(ws, "n25")),
            "--image-root",
            str(ws.data / "images"),
        ],
        "longer than 240 bytes",
    ),
    (
        "data-synth-over-a-dataset",
        lambda ws: [
            "data",
            "synth",
            "--out",
            str(metadata_copy(ws, "n26", layout=True)),
            "--num-classes",
            "2",
        ],
        "did not write",
    ),
    (
        "data-ilsvrc-invalid-over-valid",
        lambda ws: [
            "data",
            "convert",
            "ilsvrc",
            "--annotations",
            str(_voc(ws, "n27", twice=True)),
            "--out",
            str(_valid_split(ws, "n27")),
        ],
        "duplicate image id",
    ),
    (
        "leaderboard-header-only",
        lambda ws: [
            "leaderboard",
            _results_text(ws, "n28", ""),
            "--out",
            str(ws.case("n28") / "lb"),
        ],
        "has no rows",
    ),
    (
        "leaderboard-same-file-twice",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "n29", "1.0"),
            results_csv(ws, "n29", "1.0"),
            "--out",
            str(ws.case("n29") / "lb"),
        ],
        "given twice",
    ),
    (
        "leaderboard-duplicate-rows",
        lambda ws: [
            "leaderboard",
            _results_text(ws, "n30", ROW + ROW),
            "--out",
            str(ws.case("n30") / "lb"),
        ],
        "duplicate result row",
    ),
    (
        "leaderboard-value-inf",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "n31", "inf"),
            "--out",
            str(ws.case("n31") / "lb"),
        ],
        "not a finite number",
    ),
    (
        "leaderboard-value-nan",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "n32", "nan"),
            "--out",
            str(ws.case("n32") / "lb"),
        ],
        "not a finite number",
    ),
    (
        "leaderboard-json-nested",
        lambda ws: [
            "leaderboard",
            _written(ws, "n33", "results.json", "[" * 100_000),
            "--out",
            str(ws.case("n33") / "lb"),
        ],
        "nested too deeply",
    ),
    (
        "leaderboard-curves-nested",
        lambda ws: [
            "leaderboard",
            _with_curves(ws, "n34", "[" * 100_000),
            "--out",
            str(ws.case("n34") / "lb"),
        ],
        "curves.json",
    ),
    (
        "leaderboard-evaluate-summary",
        lambda ws: [
            "leaderboard",
            _written(
                ws,
                "n35",
                "r.json",
                '{"protocol": "wsolevaluation", "MaxBoxAccV2": 50.0, "num_images": 6}',
            ),
            "--out",
            str(ws.case("n35") / "lb"),
        ],
        "evaluate --output",
    ),
    (
        "leaderboard-out-holds-their-files",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "n36", "1.0"),
            "--out",
            str(_their_folder(ws, "n36")),
        ],
        "did not write",
    ),
    (
        "leaderboard-figures-symlinked",
        lambda ws: [
            "leaderboard",
            results_csv(ws, "n37", "1.0"),
            "--out",
            str(_symlinked_child(ws, "n37", "figures", marker="leaderboard")),
        ],
        "symlink leaving it",
    ),
    (
        "checkpoint-import-out-is-their-file",
        lambda ws: [
            "checkpoint",
            "import",
            str(ws.checkpoint),
            "--method",
            "cam",
            "--backbone",
            "tinyvgg",
            "--num-classes",
            "3",
            "--out",
            str(a_file(ws, "n38")),
        ],
        "not a file wsolbench wrote",
    ),
    (
        "scg-out-holds-their-files",
        lambda ws: [
            "scg",
            "figures",
            "--checkpoint",
            str(ws.checkpoint),
            "--data",
            str(ws.data),
            "--out",
            str(_their_folder(ws, "n39")),
            "--device",
            "cpu",
        ],
        "did not write",
    ),
]

ROW = "d,test,b,m,none,spa,Top1Loc,1.0\n"
HEADER = "dataset,split,backbone,method,postprocessor,protocol,metric,value\n"


def _written(ws: Workspace, name: str, file_name: str, text: str) -> str:
    path = ws.case(name) / file_name
    path.write_text(text)
    return str(path)


def _results_text(ws: Workspace, name: str, rows: str) -> str:
    return _written(ws, name, "results.csv", HEADER + rows)


def _with_curves(ws: Workspace, name: str, curves: str) -> str:
    _written(ws, name, "curves.json", curves)
    return _results_text(ws, name, ROW)


def _their_folder(ws: Workspace, name: str, file_name: str = "notes.txt") -> Path:
    """A folder holding a file of the user's (no wsolbench marker)."""
    folder = ws.case(name) / "theirs"
    folder.mkdir()
    (folder / file_name).write_text("mine\n")
    return folder


def _symlinked_child(ws: Workspace, name: str, child: str, marker: str | None = None) -> Path:
    """A folder whose subfolder `child` is a symlink to a folder beside it."""
    folder, elsewhere = ws.case(name) / "out", ws.case(name) / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    if marker:
        (folder / ".wsolbench").write_text(f'{{"kind": "{marker}"}}')
    (folder / child).symlink_to(elsewhere, target_is_directory=True)
    return folder


def _nested_synthetic(ws: Workspace, name: str) -> Path:
    root = ws.case(name) / "synthetic"
    root.mkdir()
    (root / "synthetic.json").write_text("[" * 100_000)
    return root


def _metadata_kind(ws: Workspace, name: str, fault: str) -> str:
    """[dataset] lines of a metadata-kind dataset on a copy of the images with `fault`."""
    images = ws.case(name) / "images"
    shutil.copytree(ws.data / "images", images)
    first = (ws.data / "metadata" / "test" / "image_ids.txt").read_text().splitlines()[0]
    masks = ws.data / "masks"
    if fault == "missing":
        (images / first).unlink()
    elif fault == "resized":
        cv2.imwrite(str(images / first), np.zeros((5, 7, 3), np.uint8))
    elif fault == "no-masks":
        masks = ws.case(name) / "no-masks"
    return (
        f'kind = "metadata"\nimage_root = "{images}"\n'
        f'metadata_root = "{ws.data / "metadata"}"\nmask_root = "{masks}"'
    )


def _nan_checkpoint(ws: Workspace, name: str) -> Path:
    payload = torch.load(ws.checkpoint, weights_only=True)
    key = next(iter(payload["model"]))
    payload["model"][key] = payload["model"][key].clone().fill_(float("nan"))
    path = ws.case(name) / "nan.pt"
    torch.save(payload, path)
    return path


def _fifo(ws: Workspace, name: str) -> str:
    import os

    path = ws.case(name) / "results.json"
    os.mkfifo(path)
    return str(path)


def _symlink_to(ws: Workspace, name: str, target: Path) -> str:
    link = ws.case(name) / "r.json"
    link.symlink_to(target)
    return str(link)


def _long_id(ws: Workspace, name: str) -> Path:
    """A copy of the test split whose first image id is longer than a file name may be."""

    def lengthen(folder: Path) -> None:
        for file_name in (
            "image_ids.txt",
            "class_labels.txt",
            "image_sizes.txt",
            "localization.txt",
            "mask_localization.txt",
        ):
            path = folder / file_name
            if path.is_file():
                lines = path.read_text().splitlines()
                first = lines[0].split(",")[0]
                longer = first.replace(".png", "x" * 300 + ".png")
                path.write_text("\n".join(line.replace(first, longer) for line in lines) + "\n")

    return metadata_copy(ws, name, "test", lengthen)


def _valid_split(ws: Workspace, name: str) -> Path:
    """A valid split folder that `data convert` wrote (its marker says so)."""
    out = ws.case(name) / "split"
    shutil.copytree(ws.data / "metadata" / "test", out)
    (out / ".wsolbench").write_text('{"kind": "metadata"}')
    return out


def _pickled(ws: Workspace) -> Path:
    path = ws.case("i8") / "pickled.pt"
    torch.save({"format": "wsolbench-checkpoint", "model": Path("x")}, path)
    return path


def _run_with(ws: Workspace, name: str, **fields) -> Path:
    """A copy of the finished run whose checkpoint has `fields` replaced."""
    run = ws.case(name) / "run"
    run.mkdir()
    shutil.copy(ws.run / "config.json", run / "config.json")
    payload = torch.load(ws.checkpoint, weights_only=True)
    payload.update(fields)
    torch.save(payload, run / "last.pt")
    return run


def _truncated_images(ws: Workspace, name: str) -> Path:
    """An image root whose first test and train images are cut in half: their headers read
    (the up-front check passes), their pixels do not (a loader worker finds it)."""
    images = ws.case(name) / "images"
    shutil.copytree(ws.data / "images", images)
    for split in ("test", "train"):
        first = (ws.data / "metadata" / split / "image_ids.txt").read_text().splitlines()[0]
        data = (images / first).read_bytes()
        (images / first).write_bytes(data[: len(data) // 2])
    return images


def _symlinked_out(ws: Workspace, name: str) -> Path:
    """An --out of score maps (its marker says so) whose `test` subfolder (where the maps go)
    is a symlink to another folder."""
    out, elsewhere = ws.case(name) / "out", ws.case(name) / "elsewhere"
    out.mkdir()
    (out / ".wsolbench").write_text('{"kind": "scoremaps"}')
    elsewhere.mkdir()
    (out / "test").symlink_to(elsewhere, target_is_directory=True)
    return out


def _npz_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros((16, 16)))
    return buffer.getvalue()


def _header_only(shape) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue() + b"\x00" * 64


def _with_val_maps(ws: Workspace, name: str) -> Path:
    maps = ws.case(name) / "maps"
    shutil.copytree(ws.maps, maps)
    for image_id in (ws.data / "metadata" / "val" / "image_ids.txt").read_text().splitlines():
        (maps / f"{image_id}.npy").parent.mkdir(parents=True, exist_ok=True)
        np.save(maps / f"{image_id}.npy", np.zeros((16, 16), np.float32))
    return maps


def _without_first(ws: Workspace, name: str) -> Path:
    maps = ws.case(name) / "maps"
    shutil.copytree(ws.maps, maps)
    sorted(maps.rglob("*.npy"))[0].unlink()
    return maps


def _voc(ws: Workspace, name: str, box=(5, 5, 20, 10), twice: bool = False) -> Path:
    """ILSVRC validation XMLs: one image (`twice`: two XML files naming the same image)."""
    folder = ws.case(name) / "xml"
    folder.mkdir()
    x0, y0, x1, y1 = box
    for file_name in ("1.xml", "2.xml") if twice else ("1.xml",):
        (folder / file_name).write_text(
            f"<annotation><filename>1</filename><size><width>40</width><height>30</height></size>"
            f"<object><name>n01</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
            f"<ymax>{y1}</ymax></bndbox></object></annotation>"
        )
    return folder


def test_the_table_is_large_and_documented():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    assert SLOW_CASES <= set(ids)
    documented = set(re.findall(r"`([a-z0-9-]+)`", DOC.read_text()))
    assert sorted(set(ids) - documented) == []
    commands = {case_id.split("-")[0] for case_id in ids}
    assert {"bench", "train", "infer", "evaluate", "data", "leaderboard", "scg"} <= commands


# Cases that start loader worker processes (seconds each on a loaded machine): `slow`.
SLOW_CASES = {"train-bad-image-in-worker", "infer-truncated-image-in-worker"}


@pytest.mark.parametrize(
    "case_id, make, names",
    [
        pytest.param(*case, id=case[0], marks=pytest.mark.slow if case[0] in SLOW_CASES else ())
        for case in CASES
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(ws, capsys, case_id, make, names):
    argv = make(ws)
    capsys.readouterr()
    before = snapshot(ws.root)
    code = main(argv)
    captured = capsys.readouterr()
    message = captured.err.strip()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error:") and names in message, message
    assert "Caught" not in message  # a loader worker's error reads as the original line
    assert snapshot(ws.root) == before, "something was written or replaced"


# ----------------------------------------------------------------------------- beyond the table


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    import errno

    from wsolbench import io
    from wsolbench.errors import WsolbenchError

    path = tmp_path / "results.json"
    io.write_text(path, "old")

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "replace", disk_full)
    with pytest.raises(WsolbenchError, match="No space left on device") as error:
        io.write_text(path, "new")
    assert str(path) in str(error.value)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_decompression_bomb_is_refused_naming_the_image(ws, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 32 px images are "bombs" now
    assert main(infer(ws, "bomb", out=tmp_path / "maps")) == 2
    message = capsys.readouterr().err.strip()
    assert (
        "image_ids.txt:1" in message
        and "decompression bomb" in message.lower()
        and len(message.splitlines()) == 1
    )
    assert not (tmp_path / "maps").exists()


def test_corrupt_caches_are_recomputed_or_named(ws, tmp_path):
    import json

    from rich.console import Console

    from wsolbench.errors import WsolbenchError
    from wsolbench.overlays import OverlayCollector
    from wsolbench.report import per_image
    from wsolbench.runs import RunFolder
    from wsolbench.suite import load_suite

    tiny = load_suite(suite(ws, "caches"))
    folder = RunFolder.of(tmp_path / "runs", tiny, "cam", "0" * 64)
    per_image.save(folder.per_image_file, [], [])
    console = Console(record=True, width=300)
    for corrupt in (
        "{not json",
        json.dumps({"rows": [{"metric": "x"}], "curves": []}),
        "[]",
        "\xff",
        "[" * 100_000,
    ):
        folder.scores_file.write_text(corrupt, encoding="latin-1")
        assert folder.load(console) is None
    assert console.export_text().count("corrupt cached scores") == 5
    folder.overlays_file.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(WsolbenchError, match="overlays.npz"):
        OverlayCollector(tiny.postprocessors, None).add("cam", folder.overlays_file)


def test_formula_cells_are_neutralized_in_csv_and_read_back(tmp_path):
    from wsolbench.report.results import (
        make_rows,
        read_results,
        results_frame,
        write_results,
    )

    label = "=cmd|' /C calc'!A0"
    rows = make_rows(
        dataset="d",
        split="test",
        backbone="b",
        method=label,
        postprocessor="@sum",
        protocol="spa",
        metrics={"Top1Loc": -1.5},
        versions="{}",
    )
    csv_path, _ = write_results(results_frame(rows), tmp_path)
    text = csv_path.read_text()
    assert "'=cmd|" in text and "'@sum" in text and ",-1.5," in text  # numbers stay numbers
    assert not re.search(r"(^|,)[=+@]", text, re.MULTILINE)
    back = read_results(csv_path)
    assert (
        back["method"][0] == label
        and back["postprocessor"][0] == "@sum"
        and back["value"][0] == -1.5
    )


def test_evaluate_is_a_drop_in_for_a_root_holding_every_split(ws, tmp_path, capsys):
    """wsolevaluation writes the maps of every split into one folder: evaluating test there
    gives the numbers of the test maps alone, and says how many other maps it left alone."""
    import json

    mixed = _with_val_maps(ws, "drop-in")
    alone, beside = tmp_path / "alone.json", tmp_path / "beside.json"
    assert main(evaluate(ws, "--output", str(alone))) == 0
    capsys.readouterr()
    assert main(evaluate(ws, "--output", str(beside), maps=mixed)) == 0
    val_maps = len((ws.data / "metadata" / "val" / "image_ids.txt").read_text().split())
    assert f"ignored {val_maps} other .npy file(s)" in capsys.readouterr().out
    assert json.loads(alone.read_text()) == json.loads(beside.read_text())


@pytest.mark.slow  # three trainings with a loader worker, one in a subprocess
def test_sigkill_then_resume_is_bit_identical_with_loader_workers(ws, tmp_path):
    """`train` killed with SIGKILL in the middle of its second epoch (by its own loader worker,
    so the moment is exact), then resumed, reaches the weights of an uninterrupted run;
    resuming with another worker count is refused (the table's train-resume-other-workers)."""
    import subprocess
    import sys

    torch.set_num_threads(1)  # as in the killed process: CPU float sums depend on the thread count
    args = [
        "--data",
        str(ws.data),
        "--image-size",
        "32",
        "--resize-size",
        "36",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    killed, flag = tmp_path / "killed", tmp_path / "first-epoch-done"
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_IN_EPOCH_TWO,
            str(flag),
            "train",
            *args,
            "--out",
            str(killed),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == -9, process.stderr[-2000:]
    assert torch.load(killed / "last.pt", weights_only=True)["epoch"] == 1
    assert main(["train", *args, "--out", str(killed), "--resume"]) == 0
    assert main(["train", *args, "--out", str(tmp_path / "straight")]) == 0
    a = torch.load(killed / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


# Runs `wsolbench train`; after the first epoch's checkpoint, the loader worker SIGKILLs the
# trainer (its parent) as soon as it loads an image of the second epoch.
_KILLED_IN_EPOCH_TWO = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from wsolbench.cli import main
from wsolbench.data import datasets
from wsolbench.engine import train as engine

flag = Path(sys.argv[1])
load = datasets.TrainDataset.__getitem__

def getitem(self, index):
    if flag.exists():
        os.kill(os.getppid(), signal.SIGKILL)
    return load(self, index)

datasets.TrainDataset.__getitem__ = getitem
train = engine.train
engine.train = lambda config, on_epoch_end=None: train(config, on_epoch_end=lambda epoch, stats: flag.touch())
sys.exit(main(sys.argv[2:]))
"""
