"""The main job: train every method of a suite, post-process, score under every protocol, report.

For each `[methods.<label>]` of the suite: train (cached by the run's configuration hash, resumed
from its last checkpoint after an interruption), then, for every explainer of the suite (the
model's own CAM by default), one inference pass over `val` (to choose the spa protocol's box
threshold, never on `test`) and one over `test`, where every post-processor of the suite turns
the class maps into score maps for every protocol. `[classifiers.<label>]` (torchvision
classifiers as they are) and methods given a `checkpoint` (released weights, imported with
`wsolbench checkpoint import`) skip training. Scores are cached in the run folder
(`runs.RunFolder`), so a second run with the same suite only re-renders the report.

The whole run is resolved before the first expensive step (`plan`): outputs claimed, every
split read once and its images opened (header only), every checkpoint to resume or to score
read and checked (a given one against its entry), every explainer's layers found on every model.
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
from rich.markup import escape

from wsolbench.data.datasets import EvalDataset, check_images, load_image
from wsolbench.data.metadata import Split, check_labels, read_split, validate_files
from wsolbench.engine import distributed, numerics
from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint, model_from_checkpoint
from wsolbench.engine.config import TrainConfig
from wsolbench.engine.device import run_device
from wsolbench.engine.evaluate import score_split
from wsolbench.engine.progress import describe, stage
from wsolbench.engine.train import check_resumable, train
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation import create_protocols
from wsolbench.explainers.suite import DEFAULT_EXPLAINERS, ClassifierSpec
from wsolbench.identity import config_hash, weights_hash
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
    return locate_data(suite)


def locate_data(suite: Suite, root: Path | None = None) -> BenchData:
    """Where the suite's dataset is (nothing generated or written); ``root`` stands for a
    synthetic benchmark's ``dataset.root`` (a dry run's temporary copy)."""
    ds = suite.dataset
    if ds["kind"] == "synthetic":
        root = Path(ds["root"]) if root is None else root
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
    config: TrainConfig | None = None  # None: nothing trained (a classifier, a checkpoint)
    cached: Scores | None = None
    checkpoint: Path | None = None  # a method's given checkpoint, scored as it is
    run_hash: str = ""  # of an untrained method: its entry, dataset and weights' sha256
    weights: str = ""  # the given checkpoint's sha256


def run_bench(
    suite: Suite,
    runs_dir: str | Path = "runs",
    out_dir: str | Path = "leaderboards",
    device: str = "auto",
    console: Console | None = None,
    progress: bool = True,
    only: list[str] | None = None,
    verbose: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the suite and write its leaderboard; returns the results table.

    `only` runs just these labels; the suite's other methods keep their place in the
    leaderboard from their cached scores (a partial run never replaces it with less). The
    terminal gets the headline table and where the report is (`verbose`: every table)."""
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
    for number, job in enumerate(jobs, 1):
        with stage(f"model {number} of {len(jobs)} ({job.label})"):
            if job.cached is not None:
                if distributed.is_main():
                    line = escape(describe(f"cached: {job.folder.path}"))
                    console.print(line, soft_wrap=True, highlight=False)
                result = job.cached
            elif job.config is not None:
                # (training sets its own thread count: engine/numerics.pinned_threads)
                result = _train_and_score(suite, job, data, console, progress)
            elif job.checkpoint is not None:
                result = _score_checkpoint(suite, job, data, device, console, progress)
            else:
                result = _score_classifier(suite, job, data, device, console, progress)
        scores.append(result)
        if job.config is not None or job.checkpoint is not None:
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
        notes=_reproduction_note(suite),
    )
    print_leaderboard(results, console, bootstrap=bootstrap, verbose=verbose)
    seconds = time.perf_counter() - started
    written = escape(str(leaderboard_dir))
    console.print(f"[green]leaderboard written to[/] {written} in {seconds:.0f} s", soft_wrap=True)
    report = escape(str(leaderboard_dir / "report.html"))
    console.print(f"the full report: [bold]{report}[/]", soft_wrap=True, highlight=False)
    console.print(_cost_line(scores), highlight=False)
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
        if spec.checkpoint:
            job = _checkpoint_job(suite, spec, data, runs_dir, console)
        else:
            config = _train_config(suite, spec, data, runs_dir, device)
            folder = RunFolder.of(runs_dir, suite, spec.label, config.config_hash())
            config.out_dir = str(folder.path)
            cached = folder.load(console, not distributed.is_main())
            job = Job(spec.label, folder, spec, config, cached)
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
        if job.checkpoint is not None:  # its model is the entry's (_checkpoint_job checked it)
            model = _meta_model(suite, job.spec, data.num_classes)
            _check_explainers(suite, model, job.label)
        elif job.config is None:
            _check_classifier(suite, job.spec, data)
    # The images every remaining step reads (the report draws test images in any case).
    for name in (("train",) if training else ()) + (("val",) if pending else ()) + ("test",):
        check_images(data.split(name), data.image_root)
        if pending and name != "train" and data.split(name).masks is not None and data.mask_root:
            validate_files(data.split(name), None, data.mask_root)
    return jobs


def _check_splits(suite: Suite, data: BenchData) -> None:
    """Read every split's metadata once and check its labels before anything is trained (a
    suite whose every method is a given checkpoint trains on no class)."""
    untrained = bool(suite.methods) and all(spec.checkpoint for spec in suite.methods)
    data.num_classes = check_labels(
        data.split("train"),
        suite.dataset["num_classes"] or None,
        require_every_class=not untrained,
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
    config = job.config
    if job.folder.checkpoint.is_file():
        check_resumable(load_checkpoint(job.folder.checkpoint), config, job.folder.checkpoint)
    _check_explainers(suite, _meta_model(suite, job.spec, data.num_classes), job.label)


def _meta_model(suite: Suite, spec: MethodSpec, num_classes: int):
    """A method entry's model on the meta device (no memory, no weights)."""
    from wsolbench.registry import create_method

    with torch.device("meta"):
        return create_method(
            spec.method,
            backbone=suite.train["backbone"],
            num_classes=num_classes,
            pretrained=False,
            weights=None,
            large_feature_map=suite.train["large_feature_map"],
            **spec.hparams,
        )


def _checkpoint_job(suite: Suite, spec: MethodSpec, data: BenchData, runs_dir, console) -> Job:
    """A method entry with a given checkpoint: read and checked against the entry (method,
    backbone, classes, feature map, every tensor's name and shape: a disagreement is refused
    here, before any work), its run folder named by the entry, the dataset and the weights'
    sha256."""
    path = Path(spec.checkpoint)
    checkpoint = load_checkpoint(path)
    _check_checkpoint_entry(suite, spec, checkpoint, data.num_classes, path)
    weights = checkpoint_hash(path)
    entry = {
        "method": spec.method,
        "hparams": spec.hparams,
        "backbone": suite.train["backbone"],
        "large_feature_map": suite.train["large_feature_map"],
    }
    run_hash = config_hash({"dataset": suite.dataset, "entry": entry, "checkpoint": weights})
    folder = RunFolder.of(runs_dir, suite, spec.label, run_hash)
    cached = folder.load(console, not distributed.is_main())
    return Job(spec.label, folder, spec, None, cached, path, run_hash, weights)


def _check_checkpoint_entry(
    suite: Suite, spec: MethodSpec, checkpoint: dict, num_classes: int, path: Path
) -> None:
    """The checkpoint holds weights for the model the entry describes; else one line naming
    the key. The entry's hyperparameters build the model (its evaluation rule, e.g. BAS's
    top_k, is the suite's; training-only ones change nothing), so only its tensors must fit."""
    key = f"methods.{spec.label}.checkpoint"
    config = checkpoint.get("config") or {}
    given = {
        f"methods.{spec.label}.method": (spec.method, checkpoint["method"]),
        "train.backbone": (suite.train["backbone"], checkpoint["backbone"]),
        "dataset.num_classes": (num_classes, checkpoint["num_classes"]),
        "train.large_feature_map": (
            suite.train["large_feature_map"],
            bool(config.get("large_feature_map", False)),
        ),
    }
    for name, (want, got) in given.items():
        if want != got:
            raise WsolbenchError(
                f"{key}: the checkpoint's model has {name.rpartition('.')[2]} {got!r}, the "
                f"suite's {name} is {want!r} (import the weights with the entry's settings, "
                "or set the entry to the checkpoint's)",
                path,
            )
    own = {k: tuple(v.shape) for k, v in _meta_model(suite, spec, num_classes).state_dict().items()}
    held = {k: tuple(v.shape) for k, v in checkpoint["model"].items() if torch.is_tensor(v)}
    differ = sorted(k for k in set(own) | set(held) if own.get(k) != held.get(k))
    if differ:
        shown = ", ".join(
            f"{k}: {held.get(k, 'absent')} in the checkpoint, {own.get(k, 'absent')} in the model"
            for k in differ[:3]
        )
        raise WsolbenchError(
            f"{key}: the checkpoint's tensors do not fit methods.{spec.label}'s model "
            f"({len(differ)} differ: {shown}{' ...' if len(differ) > 3 else ''})",
            path,
        )


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


def _reproduction_note(suite: Suite) -> str:
    """The committed report's note: how to reproduce it. Wall times are this machine's, not the
    results', so they go to the terminal (``_cost_line``), and a rerun leaves the files alike."""
    source = suite.name if suite.source.startswith("<built-in") else suite.source
    command = " ".join(
        ["wsolbench bench --suite", source, *(f"--set {o}" for o in suite.overrides)]
    )
    return f"Reproduce with `{command}`."


def _cost_line(scores: list[Scores]) -> str:
    train_seconds = sum(s.train_seconds or 0.0 for s in scores)
    score_seconds = sum(s.score_seconds for s in scores)
    devices = ", ".join(sorted({s.device for s in scores}))
    return (
        f"training took {train_seconds / 60:.1f} min and inference with scoring "
        f"{score_seconds / 60:.1f} min on {devices}"
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
        console.rule(f"[bold]{escape(describe(f'{job.spec.method} on {config.backbone}'))}")
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
        checkpoint_hash=checkpoint_hash(checkpoint),  # of the weights, not the file
        versions=report_results.package_versions(),
    )
    with numerics.pinned_threads(trained.device) as pin:  # the run's own CPU float sums
        pin(config.threads)
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


def _score_checkpoint(suite, job: Job, data: BenchData, device, console, progress) -> Scores:
    """A method's given checkpoint, scored as it is (nothing trained): as a trained run is."""
    if distributed.is_main():
        console.rule(f"[bold]{job.label}[/] ({job.spec.method} from {job.checkpoint}, not trained)")
    started = time.perf_counter()
    torch_device = run_device(device, "--device")
    checkpoint = load_checkpoint(job.checkpoint)
    entry = {**checkpoint, "hparams": job.spec.hparams}  # the entry's model, these weights
    model = model_from_checkpoint(entry, job.checkpoint, device=torch_device)
    pps = postprocessors(suite)
    common = dict(
        dataset=data.name,
        split="test",
        backbone=checkpoint["backbone"],
        seed=0,
        config_hash=job.run_hash,
        checkpoint_hash=job.weights,
        versions=report_results.package_versions(),
    )
    rows, curves, records = score_model(
        model, job.label, common, pps, suite, data, torch_device, progress
    )
    scores = Scores(
        rows,
        curves,
        records,
        score_seconds=time.perf_counter() - started,
        device=_describe(torch_device),
    )
    if distributed.is_main():
        test = _eval_dataset(data, "test", suite, ten_crop=False)
        count = suite.evaluation["overlay_images"]
        write_overlay_maps(model, test, pps, count, torch_device, job.folder.overlays_file)
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
        named = f" ({explainer_spec.label})" if explained else ""
        val = score_data_split(
            model,
            data,
            "val",
            pps,
            protocols,
            suite,
            device,
            progress,
            explainer,
            description=f"infer val{named}",
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
            description=f"infer test{named}",
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
        what = f"{classifier.model} as it is, weights: {classifier.weights or 'random'}"
        console.rule(f"[bold]{escape(describe(what))}")
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
    common = {
        "dataset": data.name,
        "split": "test",
        "backbone": classifier.model,
        "seed": 0,
        "config_hash": config_hash({"dataset": suite.dataset, "classifier": vars(classifier)}),
        # the weights as built (a local file or torchvision's); "" for a random initialization
        "checkpoint_hash": weights_hash(model.state_dict()) if classifier.weights else "",
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
    description: str | None = None,
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
        description=description,
    )
