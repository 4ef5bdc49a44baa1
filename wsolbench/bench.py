"""The main job: train every method of a suite, post-process, score under every protocol, report.

For each `[methods.<label>]` of the suite: train (cached by the run's configuration hash, resumed
from its last checkpoint after an interruption), then, for every explainer of the suite (the
model's own CAM by default), one inference pass over `val` (to choose the spa protocol's box
threshold, never on `test`) and one over `test`, where every post-processor of the suite turns
the class maps into score maps for every protocol. `[classifiers.<label>]` (torchvision
classifiers as they are) skip training. Scores are cached in the run folder (`runs.RunFolder`),
so a second run with the same suite only re-renders the report.

The whole run is resolved before the first expensive step (`plan`): outputs claimed, every
split read once and its images opened (header only), every checkpoint to resume read and
checked, every explainer's layers found on every model.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from wsolbench.data.datasets import EvalDataset, check_images, load_image
from wsolbench.data.metadata import Split, check_labels, read_split, validate_files
from wsolbench.engine import distributed
from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint, model_from_checkpoint
from wsolbench.engine.config import TrainConfig
from wsolbench.engine.device import run_device
from wsolbench.engine.evaluate import score_split
from wsolbench.engine.train import check_resumable, train
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation import create_protocols
from wsolbench.explainers.suite import DEFAULT_EXPLAINERS, ClassifierSpec
from wsolbench.identity import config_hash
from wsolbench.io import claim_folder
from wsolbench.overlays import OverlayCollector, write_overlay_maps
from wsolbench.registry import create_postprocessor
from wsolbench.report import per_image as report_per_image
from wsolbench.report import results as report_results
from wsolbench.runs import RunFolder, Scores
from wsolbench.scoring import Scorer
from wsolbench.suite import MethodSpec, Suite

SPLITS = ("train", "val", "test")


@dataclass
class BenchData:
    """The suite's dataset: where it is, and its splits, each read once."""

    name: str
    image_root: Path
    metadata_root: Path
    mask_root: Path | None
    splits: dict[str, Split] = field(default_factory=dict)
    num_classes: int = 0

    def split(self, name: str) -> Split:
        if name not in self.splits:
            self.splits[name] = read_split(self.metadata_root / name)
        return self.splits[name]


def prepare_data(suite: Suite, console: Console) -> BenchData:
    """Locate the suite's dataset; the synthetic one is generated on first use, into a folder
    that is new, empty or a synthetic benchmark wsolbench made (never over other files)."""
    ds = suite.dataset
    if ds["kind"] == "synthetic":
        from wsolbench.data.synthetic import check_recorded, generate

        root = Path(ds["root"])
        options = dict(ds["synthetic"], seed=ds["seed"])
        if not (root / "synthetic.json").is_file():
            if distributed.is_main():
                claim_folder(root, "synthetic benchmark folder (dataset.root)", "synthetic-dataset")
                console.print(
                    f"generating the synthetic benchmark in [bold]{root}[/] (seed {ds['seed']})"
                )
                generate(root, **options)
            distributed.barrier()
        check_recorded(root, options)
        return BenchData("synthetic", root / "images", root / "metadata", root / "masks")
    mask_root = Path(ds["mask_root"]) if ds["mask_root"] else None
    name = Path(ds["metadata_root"]).name or "dataset"
    if ds["metadata_style"]:  # the reference's splits and boxes (docs/protocols.md sec. 1)
        from wsolbench.data.converters import check_metadata_style

        check_metadata_style(ds["metadata_root"], ds["metadata_style"], "this suite")
    return BenchData(name, Path(ds["image_root"]), Path(ds["metadata_root"]), mask_root)


@dataclass
class Job:
    """One row group of the leaderboard: a trained method or a classifier as it is."""

    label: str
    folder: RunFolder
    spec: MethodSpec | ClassifierSpec
    config: TrainConfig | None = None  # None: a classifier (nothing trained)
    cached: Scores | None = None


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
    leaderboard_dir = Path(out_dir) / suite.name
    # Outputs first: a folder we cannot write fails now, not after hours of training.
    claim_folder(Path(runs_dir) / suite.name, "runs folder (--runs-dir)", "runs", within=runs_dir)
    claim_folder(leaderboard_dir, "leaderboard folder (--out)", "leaderboard", within=out_dir)
    data = prepare_data(suite, console)
    jobs = plan(suite, data, runs_dir, device, only, console)
    if not jobs:
        raise WsolbenchError(
            f"no method selected: suite {suite.name} would give an empty leaderboard"
        )
    scores: list[Scores] = []
    overlays = OverlayCollector(suite.postprocessors, data.image_root, data.split("test"))
    for job in jobs:
        if job.cached is not None:
            result = job.cached
        elif job.config is not None:
            # (scoring keeps torch's thread count: evaluation/box_metrics.torch_threads_kept)
            result = _train_and_score(suite, job, data, console, progress)
        else:
            result = _score_classifier(suite, job, data, device, console, progress)
        scores.append(result)
        if job.config is not None:
            overlays.add(job.label, job.folder.overlays_file)
    if not distributed.is_main():
        return pd.DataFrame([row for result in scores for row in result.rows])
    rows = [row for result in scores for row in result.rows]
    curves = [curve for result in scores for curve in result.curves]
    records = [record for result in scores for record in result.records]
    results = report_results.results_frame(rows)
    report_results.write_results(results, leaderboard_dir)
    report_results.write_curves(curves, leaderboard_dir)
    per_image = (records, [_image_set(data, records)])
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
        notes=_reproduction_note(suite, scores),
    )
    print_leaderboard(results, console, bootstrap=bootstrap)
    console.print(
        f"[green]leaderboard written to[/] [bold]{leaderboard_dir}[/] "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return results


# ----------------------------------------------------------------------------- up front


def plan(
    suite: Suite,
    data: BenchData,
    runs_dir: str | Path,
    device: str,
    only: list[str] | None,
    console: Console,
) -> list[Job]:
    """Resolve the whole run before any expensive step: every job's configuration, run folder
    and cached scores; the splits (read once, labels checked) and, where work remains, every
    image (header) and mask; every checkpoint to resume; every explainer on every model."""
    _check_splits(suite, data)
    jobs: list[Job] = []
    for spec in suite.methods:
        config = _train_config(suite, spec, data, runs_dir, device)
        folder = RunFolder.of(runs_dir, suite, spec.label, config.config_hash())
        config.out_dir = str(folder.path)
        job = Job(spec.label, folder, spec, config, folder.load(console, not distributed.is_main()))
        if job.cached is None and only is not None and spec.label not in only:
            continue  # not selected and never scored: absent, as before this run
        jobs.append(job)
    for classifier in suite.classifiers:  # the zero-training rows
        run_hash = config_hash({"dataset": suite.dataset, "classifier": vars(classifier)})
        folder = RunFolder.of(runs_dir, suite, classifier.label, run_hash)
        job = Job(classifier.label, folder, classifier, None, folder.load(console, True))
        if job.cached is None and only is not None and classifier.label not in only:
            continue
        jobs.append(job)
    pending = [job for job in jobs if job.cached is None]
    training = [job for job in pending if job.config is not None]
    for job in training:
        _check_model(suite, job, data)
    _check_pretrained(suite, training)
    for job in pending:
        if job.config is None:
            _check_classifier(suite, job.spec, data)
    # The images every remaining step reads (the report draws test images in any case).
    for name in (("train",) if training else ()) + (("val",) if pending else ()) + ("test",):
        check_images(data.split(name), data.image_root)
        if pending and name != "train" and data.split(name).masks is not None and data.mask_root:
            validate_files(data.split(name), None, data.mask_root)
    return jobs


def _check_splits(suite: Suite, data: BenchData) -> None:
    """Read every split's metadata once and check its labels before anything is trained."""
    data.num_classes = check_labels(
        data.split("train"),
        suite.dataset["num_classes"] or None,
        require_every_class=True,
        what="dataset.num_classes",
    )
    for name in ("val", "test"):
        check_labels(data.split(name), data.num_classes, what="the train split's classes")


def _train_config(
    suite: Suite, spec: MethodSpec, data: BenchData, runs_dir, device: str
) -> TrainConfig:
    run = dict(
        image_root=str(data.image_root),
        metadata_root=str(data.metadata_root),
        dataset=data.name,
        device=device,
        resume=True,
    )
    return suite.train_config(spec, **run)


def _check_model(suite: Suite, job: Job, data: BenchData) -> None:
    """A method's model, built on the meta device, takes every explainer of the suite; a run
    to resume has a checkpoint that resumes (its fields read and type-checked)."""
    from wsolbench.registry import create_method

    config = job.config
    if job.folder.checkpoint.is_file():
        check_resumable(load_checkpoint(job.folder.checkpoint), config, job.folder.checkpoint)
    with torch.device("meta"):
        model = create_method(
            config.method,
            backbone=config.backbone,
            num_classes=data.num_classes,
            pretrained=False,
            weights=None,
            large_feature_map=config.large_feature_map,
            **config.hparams,
        )
    _check_explainers(suite, model, job.label)


def _check_pretrained(suite: Suite, jobs: list[Job]) -> None:
    """The ImageNet weights every training job starts from can be had now (the torch hub
    cache, or one download, as training would): offline, the error names bench's settings,
    before the first model starts."""
    from wsolbench.errors import MissingWeights
    from wsolbench.registry import create_backbone

    backbones = {
        job.config.backbone for job in jobs if job.config.pretrained and not job.config.weights
    }
    for backbone in sorted(backbones):
        try:
            create_backbone(backbone, pretrained=True)  # loaded once, then dropped
        except MissingWeights as error:
            raise error.in_terms_of(
                "--set train.weights=PATH",
                "--set train.pretrained=false",
                suite.source,
            ) from None


def _check_explainers(suite: Suite, model, label: str) -> None:
    for spec in suite.explainers:
        explainer = spec.create()
        if explainer.applies_to(model):
            try:
                explainer.check_model(model)
            except WsolbenchError as error:
                raise WsolbenchError(
                    f"explainers.{spec.label} on {label}: {error.message}", suite.source
                ) from None


def _check_classifier(suite: Suite, classifier: ClassifierSpec, data: BenchData) -> None:
    """A classifier's name, weights and layers, without building or downloading it."""
    from wsolbench.explainers import check_classifier

    check_classifier(
        classifier.model,
        classifier.weights or None,
        suite.dataset["num_classes"] or data.num_classes,
        classifier.tap_layers,
        [spec.create() for spec in suite.explainers],
        f"classifiers.{classifier.label}",
        suite.source,
    )


# ----------------------------------------------------------------------------- the work


def _describe(device: torch.device) -> str:
    world = distributed.world_size()
    if device.type == "cuda":
        name = f"{world} x {torch.cuda.get_device_name(device)}"
    else:
        name = f"{os.cpu_count()} CPU cores" + (f", {world} processes" if world > 1 else "")
    return name


def _reproduction_note(suite: Suite, scores: list[Scores]) -> str:
    source = suite.name if suite.source.startswith("<built-in") else suite.source
    command = " ".join(
        ["wsolbench bench --suite", source, *(f"--set {o}" for o in suite.overrides)]
    )
    train_seconds = sum(s.train_seconds or 0.0 for s in scores)
    score_seconds = sum(s.score_seconds for s in scores)
    devices = ", ".join(sorted({s.device for s in scores}))
    return (
        f"Reproduce with `{command}`. Training took {train_seconds / 60:.1f} min and inference with "
        f"scoring {score_seconds / 60:.1f} min on {devices}."
    )


def _image_set(data: BenchData, records) -> report_per_image.ImageSet:
    """The test split's labels, boxes and small pictures, for the report's failure browser."""
    split = data.split("test")
    count = len(split.image_ids)
    pictures = {}
    for index in sorted(report_per_image.browser_indices(count)):
        image = load_image(
            data.image_root,
            split.image_ids[index],
            split.metadata_dir / "image_ids.txt",
            index + 1,
        )
        pictures[index] = report_per_image.image_picture(np.asarray(image))
    sizes = split.sizes if split.sizes is not None else np.zeros((count, 2), np.int64)
    boxes = split.boxes if split.boxes is not None else [np.zeros((0, 4), np.int64)] * count
    dataset = records[0].key["dataset"] if records else data.name
    return report_per_image.ImageSet(
        dataset, list(split.image_ids), split.labels, boxes, sizes, pictures
    )


def _train_and_score(suite: Suite, job: Job, data: BenchData, console, progress) -> Scores:
    config = job.config
    config.progress = progress
    if distributed.is_main():
        console.rule(f"[bold]{job.label}[/] ({job.spec.method} on {config.backbone})")
    trained = train(config, train_split=data.split("train"))
    started = time.perf_counter()
    checkpoint = load_checkpoint(trained.checkpoint)
    model = model_from_checkpoint(checkpoint, trained.checkpoint, device=trained.device)
    pps = postprocessors(suite)
    common = dict(
        dataset=data.name,
        split="test",
        backbone=config.backbone,
        seed=config.seed,
        config_hash=trained.config_hash,
        checkpoint_hash=checkpoint_hash(trained.checkpoint),
        versions=report_results.package_versions(),
    )
    rows, curves, records = score_model(
        model, job.label, common, pps, suite, data, trained.device, progress
    )
    scores = Scores(
        rows,
        curves,
        records,
        train_seconds=sum(epoch["seconds"] for epoch in checkpoint.get("history", [])),
        score_seconds=time.perf_counter() - started,
        device=_describe(trained.device),
    )
    if distributed.is_main():
        test = _eval_dataset(data, "test", suite, ten_crop=False)
        count = suite.evaluation["overlay_images"]
        write_overlay_maps(model, test, pps, count, trained.device, job.folder.overlays_file)
        scores = job.folder.save(scores)
    distributed.barrier()
    return scores


def postprocessors(suite: Suite) -> dict[str, Any]:
    """The suite's post-processors, built (registered names; `none` is the plain map)."""
    return {
        name: create_postprocessor(name, **options)
        for name, options in suite.postprocessors.items()
    }


def score_model(
    model, label, common, pps, suite, data, device, progress
) -> tuple[list, list, list]:
    """Rows, curves and per-image records of one model for every explainer x post-processor
    of the suite; a suite with explainers also gets the cost per image of each explainer's
    maps and of each post-processing + scoring (protocol "cost")."""
    rows, curves, records = [], [], []
    protocols = create_protocols(suite.evaluation, names=suite.evaluation["protocols"])
    explained = suite.explainers != DEFAULT_EXPLAINERS  # the report's optional explainer axis
    for explainer_spec in suite.explainers:
        explainer = explainer_spec.create()
        if not explainer.applies_to(model):  # e.g. no CAM for a classifier with two fc layers
            continue
        explainer.check_model(model)
        val = score_data_split(
            model, data, "val", pps, protocols, suite, device, progress, explainer
        )
        choices = {name: scorer.choose() for name, scorer in val.items()}  # never on test
        timings: dict[str, float] = {}
        test = score_data_split(
            model,
            data,
            "test",
            pps,
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
            if explained:
                setting["explainer"] = explainer_spec.label
            rows.extend(scorer.rows(setting, choices[name]))
            records.append(report_per_image.record_from_scorer(scorer, setting, choices[name]))
            if explained:  # wall times: measured, not reproduced
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


def _score_classifier(suite, job: Job, data: BenchData, device, console, progress) -> Scores:
    """A torchvision classifier as it is (no training): its explainers' maps, scored."""
    from wsolbench.explainers import build_classifier

    classifier = job.spec
    if distributed.is_main():
        console.rule(
            f"[bold]{classifier.label}[/] ({classifier.model} as it is, weights: "
            f"{classifier.weights or 'random'})"
        )
    started = time.perf_counter()
    torch_device = run_device(device, "--device")
    num_classes = suite.dataset["num_classes"] or int(data.split("test").labels.max()) + 1
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
        "dataset": data.name,
        "split": "test",
        "backbone": classifier.model,
        "seed": 0,
        "config_hash": config_hash({"dataset": suite.dataset, "classifier": vars(classifier)}),
        "checkpoint_hash": checkpoint_hash(weights) if weights.is_file() else classifier.weights,
        "versions": report_results.package_versions(),
    }
    rows, curves, records = score_model(
        model,
        classifier.label,
        common,
        postprocessors(suite),
        suite,
        data,
        torch_device,
        progress,
    )
    scores = Scores(
        rows,
        curves,
        records,
        score_seconds=time.perf_counter() - started,
        device=_describe(torch_device),
    )
    if distributed.is_main():
        scores = job.folder.save(scores)
    distributed.barrier()
    return scores


def _eval_dataset(data: BenchData, split_name: str, suite: Suite, ten_crop: bool) -> EvalDataset:
    split = data.split(split_name)
    mask_root = data.mask_root if split.masks is not None and data.mask_root else None
    return EvalDataset(
        split,
        data.image_root,
        image_size=suite.dataset["image_size"],
        mask_root=mask_root,
        ten_crop=ten_crop,
        resize_size=suite.dataset["resize_size"],
    )


def score_data_split(
    model,
    data: BenchData,
    split_name: str,
    pps,
    protocols,
    suite: Suite,
    device,
    progress: bool,
    explainer,
    per_image: bool = False,
    timings: dict[str, float] | None = None,
) -> dict[str, Scorer]:
    """One inference pass (`engine.evaluate.score_split`); with ``per_image`` the scorers keep
    every image's outcome, and pictures for the report's failure browser."""
    evaluation = suite.evaluation
    dataset = _eval_dataset(data, split_name, suite, evaluation["ten_crop"])
    shown = report_per_image.browser_indices(len(dataset)) if per_image else None
    return score_split(
        model,
        dataset,
        pps,
        protocols,
        batch_size=evaluation["batch_size"],
        device=device,
        ten_crop=evaluation["ten_crop"],
        progress=progress and distributed.is_main(),
        thumbnails=shown.__contains__ if shown is not None else None,
        explainer=explainer,
        timings=timings,
    )
