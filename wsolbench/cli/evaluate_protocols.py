"""`wsolbench evaluate --protocol NAME|all`: RAW class maps scored under the protocols' own rules.

MAPS holds ``<image_id>.npy`` per image: the GT class's raw map (2-D, any size and range) or
every class's (C, H, W). Every protocol prepares the maps by its own rules (``MapBatch.sources``;
the spa and peak protocols read the maps ``identity`` gives at the original size, as in a
bench); ``--predictions`` gives each image's top-5 classes (Top-1 / Top-5 Loc; the spa
protocol needs them). One protocol writes one flat object: its metrics under the report's names,
``<metric>_per_threshold`` for those that depend on a box threshold; ``all`` writes
``{"protocols": {NAME: {...}}}`` and prints the cross-protocol table with bootstrap intervals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table as RichTable

from wsolbench.errors import WsolbenchError
from wsolbench.io import write_json

BATCH = 64
ALL = "all"
NEEDS_PREDICTIONS = ("spa",)  # protocols that read the top-k classes for every number


def run_protocols(args: argparse.Namespace, split, use_masks: bool, console: Console) -> int:
    import torch

    from wsolbench.cli.evaluate import protocol_settings
    from wsolbench.data.predictions import read_predictions
    from wsolbench.evaluation import Evaluator
    from wsolbench.evaluation.protocols import create_protocols, registered_protocols
    from wsolbench.registry import PROTOCOLS

    names = list(registered_protocols()) if args.protocol == ALL else [args.protocol]
    PROTOCOLS.get(names[0])  # an unknown name: one line naming the known ones
    topk = None if args.predictions is None else read_predictions(args.predictions, split.image_ids)
    if topk is None:
        missing = [n for n in names if n in NEEDS_PREDICTIONS]
        if args.protocol != ALL and missing:
            raise WsolbenchError(f"the {missing[0]} protocol needs --predictions")
        names = [n for n in names if n not in NEEDS_PREDICTIONS]
    if split.boxes is not None and split.sizes is None:
        raise WsolbenchError("boxes need image_sizes.txt to be rescaled", args.metadata_root)
    protocols = create_protocols(protocol_settings(args), names=names)
    evaluator = Evaluator(protocols.values(), boxes=split.boxes is not None, masks=use_masks)
    evaluator.keep_per_image()
    at_original_size = any(name in ("spa", "peak") for name in protocols)
    for start in range(0, len(split), BATCH):
        indices = range(start, min(start + BATCH, len(split)))
        batch, paths = _batch(split, indices, args, use_masks, topk, at_original_size, torch)
        try:
            evaluator.update(batch)
        except WsolbenchError as error:  # name the map: a protocol refuses it (scm: constant)
            raise WsolbenchError(error.message, _culprit(batch, paths, protocols)) from None
    computed = evaluator.compute()
    out: dict = {}
    for name, protocol in protocols.items():
        own = {metric: computed[metric] for metric in evaluator.of(name)}
        values = protocol.results(own) if own else {}
        if not values:
            continue
        flat = dict(values)
        for metric, curve in protocol.per_threshold(own).items():
            flat[f"{metric}_per_threshold"] = curve
        out[name] = flat
    if not out:
        raise WsolbenchError(f"no protocol of {names} applies to this split", args.metadata_root)
    _print(out, protocols, console)
    if args.protocol == ALL:
        _print_cross_protocol(out, evaluator, protocols, args, split, console)
        document = {"protocols": out, "num_images": len(split)}
    else:
        document = {"protocol": names[0], **out[names[0]], "num_images": len(split)}
    if args.output is not None:
        write_json(args.output, document)
        console.print(f"results written to {args.output}")
    return 0


def _batch(split, indices, args, use_masks, topk, at_original_size, torch):
    """One MapBatch of raw maps with the split's native ground truth."""
    from wsolbench.data.datasets import read_masks
    from wsolbench.evaluation import GroundTruth, MapBatch
    from wsolbench.evaluation.scoremaps import load_raw_map, scoremap_path
    from wsolbench.registry import create_postprocessor

    sources, top1_sources, paths = [], [], []
    for i in indices:
        path = scoremap_path(args.scoremap_root, split.image_ids[i])
        raw = load_raw_map(path)
        if not np.isfinite(raw).all():
            raise WsolbenchError("score map has NaN or infinite values", path)
        label = int(split.labels[i])
        if raw.ndim == 3:
            if label >= len(raw):
                raise WsolbenchError(f"{len(raw)} class maps, none for class {label}", path)
            sources.append(raw[label])
            top1 = None if topk is None else int(topk[i, 0])
            top1_sources.append(raw[top1] if top1 is not None and top1 < len(raw) else None)
        else:
            sources.append(raw)
            top1_sources.append(None)
        paths.append(path)
    sizes = (
        [tuple(int(v) for v in split.sizes[i]) for i in indices]
        if split.sizes is not None
        else [(m.shape[1], m.shape[0]) for m in sources]
    )
    gt = GroundTruth(
        sizes=sizes, boxes=[split.boxes[i] for i in indices] if split.boxes is not None else None
    )
    if use_masks:
        pairs = [read_masks(split, i, args.mask_root) for i in indices]
        gt.masks, gt.ignore = [m for m, _ in pairs], [g for _, g in pairs]
    labels = np.asarray([int(split.labels[i]) for i in indices])
    batch_topk = None if topk is None else topk[list(indices)]
    maps = None
    if at_original_size:  # the spa / peak protocols' maps: identity's, at the original size
        identity = create_postprocessor("none")
        maps = []
        for k, source in enumerate(sources):
            width, height = sizes[k]
            gt_map = identity(
                torch.as_tensor(source, dtype=torch.float32)[None, None], None, [(height, width)]
            )[0][0]
            stack = [gt_map]
            if batch_topk is not None:  # only the GT class's box can count in spa's metrics
                stack += [
                    gt_map if c == labels[k] else torch.zeros_like(gt_map) for c in batch_topk[k]
                ]
            maps.append(torch.stack(stack))
    batch = MapBatch(
        gt=gt,
        maps=maps,
        sources=sources,
        labels=labels,
        topk=batch_topk,
        top1_sources=top1_sources,
    )
    return batch, paths


def _culprit(batch, paths, protocols):
    """The map a protocol refuses (scoring the batch's images one by one)."""
    from wsolbench.evaluation import Evaluator, GroundTruth, MapBatch

    for k, path in enumerate(paths):
        one = MapBatch(
            gt=GroundTruth(
                sizes=[batch.gt.sizes[k]],
                boxes=None if batch.gt.boxes is None else [batch.gt.boxes[k]],
                masks=None if batch.gt.masks is None else [batch.gt.masks[k]],
                ignore=None if batch.gt.ignore is None else [batch.gt.ignore[k]],
            ),
            maps=None if batch.maps is None else [batch.maps[k]],
            sources=[batch.sources[k]],
            labels=batch.labels[k : k + 1],
            topk=None if batch.topk is None else batch.topk[k : k + 1],
            top1_sources=[batch.top1_sources[k]],
        )
        try:
            Evaluator(
                protocols.values(), boxes=one.gt.boxes is not None, masks=one.gt.masks is not None
            ).update(one)
        except WsolbenchError:
            return path
    return None


def _print(out: dict, protocols, console: Console) -> None:
    for name, values in out.items():
        table = RichTable(title=f"{name} protocol")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for spec in protocols[name].specs():
            if spec.name in values:
                table.add_row(spec.label, f"{values[spec.name]:.{spec.decimals}f}")
        console.print(table)


def _print_cross_protocol(out, evaluator, protocols, args, split, console: Console) -> None:
    """The same maps under every protocol, with 95 % bootstrap intervals (report tables)."""
    from wsolbench.report.bootstrap import Bootstrap
    from wsolbench.report.per_image import Record
    from wsolbench.report.protocols import cross_protocol_tables
    from wsolbench.report.results import results_frame
    from wsolbench.report.tables import display_cell
    from wsolbench.report.terminal import print_tables

    setting = {
        "dataset": args.dataset or Path(args.metadata_root).parent.name or "dataset",
        "split": Path(args.metadata_root).name or "split",
        "backbone": "-",
        "method": Path(args.scoremap_root).name or "maps",
        "postprocessor": "none",
    }
    rows = [
        {**setting, "protocol": name, "metric": metric, "value": float(value)}
        for name, values in out.items()
        for metric, value in values.items()
        if not metric.endswith("_per_threshold")
    ]
    arrays = {"index": np.arange(len(split))}
    for accumulator, result in evaluator.compute().items():
        for field, value in result.get("per_image", {}).items():
            arrays[f"{accumulator}.{field}"] = value
    meta: dict = {}
    for name, protocol in protocols.items():
        meta.update(protocol.record_meta(evaluator.of(name), None))
    bootstrap = Bootstrap([Record(dict(setting, seed=0), arrays, meta)])
    tables = cross_protocol_tables(results_frame(rows), bootstrap)
    for table in tables:  # the terminal shows each number with its interval
        table.rows = [
            [display_cell(table, r, c) for c in range(len(row))] for r, row in enumerate(table.rows)
        ]
        table.intervals = {}
    if tables:
        console.rule("[bold]The same maps under every protocol")
        print_tables(tables, console)
