"""The main job: train every method of a suite, post-process, score under every protocol, report.

For each `[methods.<label>]` of the suite: train (cached by the run's configuration hash, resumed
from its last checkpoint after an interruption), then, for every explainer of the suite (the
model's own CAM by default), one inference pass over `val` (to choose the spa protocol's box
threshold, never on `test`) and one over `test`, where every post-processor of the suite turns
the class maps into score maps for every protocol. `[classifiers.<label>]` (torchvision
classifiers as they are) skip training. Scores are cached beside the checkpoint, so a second run
with the same suite only re-renders the report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from wsolbench.data.datasets import EvalDataset, load_image
from wsolbench.data.metadata import read_split
from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint, model_from_checkpoint
from wsolbench.engine.config import TrainConfig
from wsolbench.engine.evaluate import score_split
from wsolbench.engine.infer import predict
from wsolbench.engine.train import train
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation import create_protocols
from wsolbench.explainers.suite import DEFAULT_EXPLAINERS
from wsolbench.io import check_writable_dir, write_json
from wsolbench.registry import DEFAULT_PROTOCOLS, create_postprocessor
from wsolbench.report import per_image as report_per_image
from wsolbench.report import results as report_results
from wsolbench.scoring import Scorer, original_sizes
from wsolbench.suite import MethodSpec, Suite, config_hash

SCORES_FORMAT = 6  # bump when the cached scores' content changes, so old caches are recomputed


@dataclass
class DataPaths:
    name: str
    image_root: Path
    metadata_root: Path
    mask_root: Path | None


def prepare_data(suite: Suite, console: Console) -> DataPaths:
    """Locate the suite's dataset; the synthetic one is generated on first use."""
    ds = suite.dataset
    if ds["kind"] == "synthetic":
        root = Path(ds["root"])
        options = dict(ds["synthetic"], seed=ds["seed"])
        if not (root / "synthetic.json").is_file():
            from wsolbench.data.synthetic import generate

            if distributed.is_main():
                console.print(
                    f"generating the synthetic benchmark in [bold]{root}[/] (seed {ds['seed']})"
                )
                generate(root, **options)
            distributed.barrier()
        try:
            recorded = json.loads((root / "synthetic.json").read_text(encoding="utf-8"))
            assert isinstance(recorded, dict)
        except (OSError, UnicodeDecodeError, ValueError, AssertionError):
            raise WsolbenchError(
                "not a synthetic benchmark description: delete the folder to regenerate it",
                root / "synthetic.json",
            ) from None
        differing = sorted(k for k, v in options.items() if recorded.get(k) != v)
        if differing:
            raise WsolbenchError(
                f"{root} holds a synthetic benchmark generated with other {', '.join(differing)} "
                "than the suite asks for: use another dataset.root or delete it",
                root / "synthetic.json",
            )
        return DataPaths("synthetic", root / "images", root / "metadata", root / "masks")
    mask_root = Path(ds["mask_root"]) if ds["mask_root"] else None
    name = Path(ds["metadata_root"]).name or "dataset"
    if ds["metadata_style"]:  # the reference's splits and boxes (docs/protocols.md sec. 1)
        from wsolbench.data.converters import check_metadata_style

        check_metadata_style(ds["metadata_root"], ds["metadata_style"], "this suite")
    return DataPaths(name, Path(ds["image_root"]), Path(ds["metadata_root"]), mask_root)


def run_bench(
    suite: Suite,
    runs_dir: str | Path = "runs",
    out_dir: str | Path = "leaderboards",
    device: str = "auto",
    console: Console | None = None,
    progress: bool = True,
    only: list[str] | None = None,
) -> pd.DataFrame:
    """Run (or resume) the suite and write its leaderboard; returns the results table.

    `only` runs just these labels; the suite's other methods keep their place in the
    leaderboard from their cached scores (a partial run never replaces it with less)."""
    console = console or Console()
    started = time.perf_counter()
    if not (suite.methods or suite.classifiers) or only is not None and not only:
        raise WsolbenchError(
            f"no method selected: suite {suite.name} would give an empty leaderboard"
        )
    distributed.init_from_env()  # under torchrun: join the group before any rank touches files
    # Outputs first: a folder we cannot write fails now, not after hours of training.
    check_writable_dir(Path(runs_dir), "runs folder (--runs-dir)")
    check_writable_dir(Path(out_dir), "leaderboards folder (--out)")
    paths = prepare_data(suite, console)
    _check_splits(suite, paths)
    rows, curves, overlays = [], [], _OverlayCollector(suite, paths)
    records: list[report_per_image.Record] = []
    seconds, devices = {"train": 0.0, "score": 0.0}, set()
    for spec in suite.methods:
        config = _train_config(suite, spec, paths, runs_dir, device, progress)
        run_dir = Path(config.out_dir)
        scores = _load_scores(run_dir, suite, console)
        if scores is not None and not _per_image_file(run_dir, suite).is_file():
            scores = None  # scored before per-image statistics were kept
        if scores is None and only is not None and spec.label not in only:
            continue  # not selected and never scored: absent, as before this run
        if scores is None:
            # (scoring keeps torch's thread count: evaluation/box_metrics.torch_threads_kept)
            scores = _train_and_score(suite, spec, config, paths, console, progress)
        rows.extend(scores["rows"])
        curves.extend(scores["curves"])
        seconds["train"] += scores.get("train_seconds", 0.0)
        seconds["score"] += scores.get("score_seconds", 0.0)
        devices.add(scores.get("device", "unknown device"))
        overlays.add(spec.label, run_dir)
        if distributed.is_main():
            records += report_per_image.load(_per_image_file(run_dir, suite))[0]
    for classifier in suite.classifiers:  # the zero-training rows
        cached = _load_scores(_classifier_run_dir(suite, classifier, runs_dir), suite, console)
        if cached is None and only is not None and classifier.label not in only:
            continue
        scores = _score_classifier(suite, classifier, paths, runs_dir, device, console, progress)
        rows.extend(scores["rows"])
        curves.extend(scores["curves"])
        seconds["score"] += scores.get("score_seconds", 0.0)
        devices.add(scores.get("device", "unknown device"))
        if distributed.is_main():
            records += report_per_image.load(
                _per_image_file(_classifier_run_dir(suite, classifier, runs_dir), suite)
            )[0]
    if not distributed.is_main():
        return pd.DataFrame(rows)
    results = report_results.results_frame(rows)
    leaderboard_dir = Path(out_dir) / suite.name
    report_results.write_results(results, leaderboard_dir)
    report_results.write_curves(curves, leaderboard_dir)
    per_image = (records, [_image_set(paths, records)])
    report_per_image.save(leaderboard_dir / report_per_image.FILE_NAME, *per_image)
    from wsolbench.report import Bootstrap, print_leaderboard, render_leaderboard

    bootstrap = Bootstrap(records) if records else None
    render_leaderboard(
        results,
        leaderboard_dir,
        curves=curves,
        overlays=overlays.build(),
        per_image=per_image,
        bootstrap=bootstrap,
        title=suite.description or suite.name,
        notes=_reproduction_note(suite, seconds, devices),
    )
    print_leaderboard(results, console, bootstrap=bootstrap)
    console.print(
        f"[green]leaderboard written to[/] [bold]{leaderboard_dir}[/] "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return results


def _describe(device: torch.device) -> str:
    world = distributed.world_size()
    if device.type == "cuda":
        name = f"{world} x {torch.cuda.get_device_name(device)}"
    else:
        name = f"{os.cpu_count()} CPU cores" + (f", {world} processes" if world > 1 else "")
    return name


def _reproduction_note(suite: Suite, seconds: dict[str, float], devices: set[str]) -> str:
    source = suite.name if suite.source.startswith("<built-in") else suite.source
    command = " ".join(
        ["wsolbench bench --suite", source, *(f"--set {o}" for o in suite.overrides)]
    )
    return (
        f"Reproduce with `{command}`. Training took {seconds['train'] / 60:.1f} min and inference with "
        f"scoring {seconds['score'] / 60:.1f} min on {', '.join(sorted(devices))}."
    )


def _scores_file(run_dir: Path, suite: Suite) -> Path:
    evaluation = dict(suite.evaluation)
    if tuple(evaluation["protocols"]) == DEFAULT_PROTOCOLS:  # the cache key as before the key
        del evaluation["protocols"]
    scoring = {
        "postprocessors": suite.postprocessors,
        "evaluation": evaluation,
        "format": SCORES_FORMAT,
        "per_image": report_per_image.FORMAT,
    }
    if (
        suite.explainers != DEFAULT_EXPLAINERS
    ):  # default: the cache key (and caches) as before explainers
        scoring["explainers"] = [vars(spec) for spec in suite.explainers]
    return run_dir / f"scores-{config_hash(scoring)}.json"


def _per_image_file(run_dir: Path, suite: Suite) -> Path:
    """The test split's per-image statistics, beside (and named like) the cached scores."""
    scores = _scores_file(run_dir, suite)
    return scores.with_name(scores.stem.replace("scores-", "per_image-") + ".npz")


def _image_set(paths: DataPaths, records) -> report_per_image.ImageSet:
    """The test split's labels, boxes and small pictures, for the report's failure browser."""
    split = read_split(paths.metadata_root / "test")
    count = len(split.image_ids)
    pictures = {}
    for index in sorted(report_per_image.browser_indices(count)):
        image = load_image(
            paths.image_root,
            split.image_ids[index],
            split.metadata_dir / "image_ids.txt",
            index + 1,
        )
        pictures[index] = report_per_image.image_picture(np.asarray(image))
    sizes = split.sizes if split.sizes is not None else np.zeros((count, 2), np.int64)
    boxes = split.boxes if split.boxes is not None else [np.zeros((0, 4), np.int64)] * count
    dataset = records[0].key["dataset"] if records else paths.name
    return report_per_image.ImageSet(
        dataset, list(split.image_ids), split.labels, boxes, sizes, pictures
    )


_SCORES_KEYS = {"rows": list, "curves": list}


def _load_scores(run_dir: Path, suite: Suite, console: Console) -> dict | None:
    """Cached scores, or None when absent; a corrupt cache is said and recomputed."""
    path = _scores_file(run_dir, suite)
    if not path.is_file():
        return None
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(scores, dict) or any(
            not isinstance(scores.get(k), t) for k, t in _SCORES_KEYS.items()
        ):
            raise ValueError("not a scores object")
        report_results.results_frame(scores["rows"])  # every row well-formed
        return scores
    except (OSError, UnicodeDecodeError, ValueError, WsolbenchError) as error:
        if distributed.is_main():
            console.print(
                f"[yellow]{path}: corrupt cached scores ({str(error)[:80]}): recomputing[/]",
                soft_wrap=True,
            )
        return None


def _check_splits(suite: Suite, paths: DataPaths) -> None:
    """Read every split's metadata and check its labels before anything is trained."""
    from wsolbench.data.metadata import check_labels

    train_split = read_split(paths.metadata_root / "train")
    num_classes = check_labels(
        train_split,
        suite.dataset["num_classes"] or None,
        require_every_class=True,
        what="dataset.num_classes",
    )
    for name in ("val", "test"):
        check_labels(
            read_split(paths.metadata_root / name), num_classes, what="the train split's classes"
        )


def _train_config(
    suite: Suite, spec: MethodSpec, paths: DataPaths, runs_dir, device: str, progress: bool
) -> TrainConfig:
    """The method's TrainConfig; its run folder is <runs>/<suite>/<label>-<config hash>."""
    run = dict(
        image_root=str(paths.image_root),
        metadata_root=str(paths.metadata_root),
        dataset=paths.name,
        device=device,
        resume=True,
        progress=progress,
    )
    config = suite.train_config(spec, **run)
    config.out_dir = str(Path(runs_dir) / suite.name / f"{spec.label}-{config.config_hash()[:12]}")
    return config


def _train_and_score(suite, spec, config: TrainConfig, paths, console, progress) -> dict:
    if distributed.is_main():
        console.rule(f"[bold]{spec.label}[/] ({spec.method} on {config.backbone})")
    trained = train(config)
    checkpoint_path, torch_device, run_dir = (
        trained.checkpoint,
        trained.device,
        Path(config.out_dir),
    )
    started = time.perf_counter()
    checkpoint = load_checkpoint(checkpoint_path)
    model = model_from_checkpoint(checkpoint, checkpoint_path, device=torch_device)
    postprocessors = _postprocessors(suite)
    common = dict(
        dataset=paths.name,
        split="test",
        backbone=config.backbone,
        seed=config.seed,
        config_hash=trained.config_hash,
        checkpoint_hash=checkpoint_hash(checkpoint_path),
        versions=report_results.package_versions(),
    )
    rows, curves, records = _score_model(
        model, spec.label, common, postprocessors, suite, paths, torch_device, progress
    )
    scores = {
        "rows": rows,
        "curves": curves,
        "train_seconds": sum(epoch["seconds"] for epoch in checkpoint.get("history", [])),
        "score_seconds": time.perf_counter() - started,
        "device": _describe(torch_device),
    }
    if distributed.is_main():
        _write_overlay_maps(model, paths, postprocessors, suite, torch_device, run_dir)
        report_per_image.save(_per_image_file(run_dir, suite), records, [])
        write_json(_scores_file(run_dir, suite), scores)
    distributed.barrier()
    return scores


def _postprocessors(suite: Suite) -> dict[str, Any]:
    return {
        name: create_postprocessor("identity" if name == "none" else name, **options)
        for name, options in suite.postprocessors.items()
    }


def _score_model(
    model, label, common, postprocessors, suite, paths, device, progress
) -> tuple[list, list, list]:
    """Rows, curves and per-image records of one model for every explainer x post-processor of the suite; a suite
    with explainers also gets the cost per image of each explainer's maps and of each
    post-processing + scoring (protocol "cost")."""
    rows, curves, records = [], [], []
    protocols = create_protocols(suite.evaluation, names=suite.evaluation["protocols"])
    for explainer_spec in suite.explainers:
        explainer = explainer_spec.create()
        if not explainer.applies_to(model):  # e.g. no CAM for a classifier with two fc layers
            continue
        explainer.check_model(model)
        val = _score_split(
            model, paths, "val", postprocessors, protocols, suite, device, progress, explainer
        )
        choices = {name: scorer.choose() for name, scorer in val.items()}  # never on test
        timings: dict[str, float] = {}
        test = _score_split(
            model,
            paths,
            "test",
            postprocessors,
            protocols,
            suite,
            device,
            progress,
            explainer,
            per_image=True,
            timings=timings,
        )
        for name, scorer in test.items():
            setting = dict(common, method=label, postprocessor=name)
            if suite.explainers != DEFAULT_EXPLAINERS:  # the report's optional explainer axis
                setting["explainer"] = explainer_spec.label
            rows.extend(scorer.rows(setting, choices[name]))
            records.append(report_per_image.record_from_scorer(scorer, setting, choices[name]))
            if suite.explainers != DEFAULT_EXPLAINERS:  # wall times: measured, not reproduced
                for metric, value in (
                    ("explain_ms", explainer.ms_per_image()),
                    ("score_ms", 1000.0 * timings[name] / max(timings["images"], 1)),
                ):
                    rows.append({**setting, "protocol": "cost", "metric": metric, "value": value})
            curves.extend(
                scorer.curves(
                    {k: setting[k] for k in ("dataset", "backbone", "method", "postprocessor")}
                )
            )
    return rows, curves, records


def _score_classifier(suite, classifier, paths, runs_dir, device, console, progress) -> dict:
    """A torchvision classifier as it is (no training): its explainers' maps, scored."""
    from wsolbench.engine.train import resolve_device
    from wsolbench.explainers import build_classifier

    run_dir = _classifier_run_dir(suite, classifier, runs_dir)
    run_hash = run_dir.name.rsplit("-", 1)[1]
    scores = _load_scores(run_dir, suite, console)
    if scores is not None and _per_image_file(run_dir, suite).is_file():
        return scores
    if distributed.is_main():
        console.rule(
            f"[bold]{classifier.label}[/] ({classifier.model} as it is, weights: {classifier.weights or 'random'})"
        )
    started = time.perf_counter()
    torch_device = distributed.init_from_env() or resolve_device(device)
    num_classes = (
        suite.dataset["num_classes"]
        or int(read_split(paths.metadata_root / "test").labels.max()) + 1
    )
    model = build_classifier(
        classifier.model,
        classifier.weights or None,
        num_classes,
        suite.dataset["image_size"],
        classifier.tap_layers,
        torch_device,
    )
    weights = Path(classifier.weights)
    common = {
        "dataset": paths.name,
        "split": "test",
        "backbone": classifier.model,
        "seed": 0,
        "config_hash": run_hash,
        "checkpoint_hash": checkpoint_hash(weights) if weights.is_file() else classifier.weights,
        "versions": report_results.package_versions(),
    }
    rows, curves, records = _score_model(
        model,
        classifier.label,
        common,
        _postprocessors(suite),
        suite,
        paths,
        torch_device,
        progress,
    )
    scores = {
        "rows": rows,
        "curves": curves,
        "score_seconds": time.perf_counter() - started,
        "device": _describe(torch_device),
    }
    if distributed.is_main():
        report_per_image.save(_per_image_file(run_dir, suite), records, [])
        write_json(_scores_file(run_dir, suite), scores)
    distributed.barrier()
    return scores


def _classifier_run_dir(suite: Suite, classifier, runs_dir) -> Path:
    run_hash = config_hash({"dataset": suite.dataset, "classifier": vars(classifier)})
    return Path(runs_dir) / suite.name / f"{classifier.label}-{run_hash}"


def _eval_dataset(paths: DataPaths, split_name: str, suite: Suite, ten_crop: bool) -> EvalDataset:
    split = read_split(paths.metadata_root / split_name)
    mask_root = paths.mask_root if split.masks is not None and paths.mask_root else None
    return EvalDataset(
        split,
        paths.image_root,
        image_size=suite.dataset["image_size"],
        mask_root=mask_root,
        ten_crop=ten_crop,
        resize_size=suite.dataset["resize_size"],
    )


def _score_split(
    model,
    paths,
    split_name,
    postprocessors,
    protocols,
    suite,
    device,
    progress,
    explainer,
    per_image=False,
    timings: dict[str, float] | None = None,
) -> dict[str, Scorer]:
    """One inference pass (`engine.evaluate.score_split`); with ``per_image`` the scorers keep
    every image's outcome, and pictures for the report's failure browser."""
    evaluation = suite.evaluation
    dataset = _eval_dataset(paths, split_name, suite, evaluation["ten_crop"])
    shown = report_per_image.browser_indices(len(dataset)) if per_image else None
    return score_split(
        model,
        dataset,
        postprocessors,
        protocols,
        batch_size=evaluation["batch_size"],
        device=device,
        ten_crop=evaluation["ten_crop"],
        progress=progress and distributed.is_main(),
        thumbnails=shown.__contains__ if shown is not None else None,
        explainer=explainer,
        timings=timings,
    )


def _write_overlay_maps(model, paths, postprocessors, suite, device, run_dir) -> None:
    """GT-class maps of the first test images, for the report's overlays (CAM vs SCG)."""
    count = suite.evaluation["overlay_images"]
    if count <= 0:
        return
    dataset = _eval_dataset(paths, "test", suite, ten_crop=False)
    indices = _overlay_indices(len(dataset), count)
    subset = torch.utils.data.Subset(dataset, indices)
    maps: dict[str, list[np.ndarray]] = {name: [] for name in postprocessors}
    for batch in predict(model, subset, batch_size=len(indices), device=device, ten_crop=False):
        sizes = original_sizes(batch)
        for name, pp in postprocessors.items():
            produced = pp(batch["cams_gt"], batch["taps"], sizes)
            maps[name].extend(m.cpu().numpy().astype(np.float16) for m in produced)
    arrays = {f"{name}_{i}": m for name, ms in maps.items() for i, m in enumerate(ms)}
    from wsolbench.io import atomic_path

    with atomic_path(run_dir / "overlays.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, indices=np.array(indices), **arrays)


def _overlay_map(array: np.ndarray) -> np.ndarray:
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"an overlay map is {array.dtype} {array.shape}, not a 2-D float map")
    return array.astype(np.float32)


def _overlay_indices(length: int, count: int) -> list[int]:
    """Evenly spread over the split (so several classes appear), fixed for a split."""
    count = min(count, length)
    return sorted({int(i) for i in np.linspace(0, length - 1, count).round()})


class _OverlayCollector:
    """Gathers each run's overlay maps into the report's overlay grid."""

    def __init__(self, suite: Suite, paths: DataPaths):
        self.suite, self.paths = suite, paths
        self.rows: dict[str, list[np.ndarray]] = {}
        self.indices: list[int] | None = None

    def add(self, label: str, run_dir: Path) -> None:
        path = run_dir / "overlays.npz"
        if not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                indices = [int(i) for i in data["indices"].tolist()]
                rows = {}
                for name in self.suite.postprocessors:
                    keys = sorted(
                        (k for k in data.files if k.startswith(f"{name}_")),
                        key=lambda k: int(k.rsplit("_", 1)[1]),
                    )
                    suffix = "" if name == "none" else f" + {name.upper()}"
                    rows[f"{label}{suffix}"] = [_overlay_map(data[k]) for k in keys]
        except Exception as error:  # zip, npy or key errors: all mean a corrupt cache file
            raise WsolbenchError(
                f"corrupt overlay cache ({type(error).__name__}: {str(error)[:80]}); "
                "delete it and the scores-*.json beside it to recompute both",
                path,
            ) from None
        self.indices = indices
        self.rows.update(rows)

    def build(self) -> dict[str, Any] | None:
        if self.indices is not None and self.rows:
            split_length = len(read_split(self.paths.metadata_root / "test"))
            if any(not 0 <= i < split_length for i in self.indices):
                raise WsolbenchError(
                    "overlay cache refers to images the test split does not have; "
                    "delete the runs' overlays.npz and scores-*.json to recompute"
                )
        if not self.rows or self.indices is None:
            return None
        split = read_split(self.paths.metadata_root / "test")
        images, boxes = [], []
        for index in self.indices:
            image = load_image(
                self.paths.image_root,
                split.image_ids[index],
                split.metadata_dir / "image_ids.txt",
                index + 1,
            )
            images.append(np.asarray(image))
            boxes.append(
                split.boxes[index] if split.boxes is not None else np.zeros((0, 4), np.int64)
            )
        return {"images": images, "rows": self.rows, "boxes": boxes}
