"""A bench run folder, one owner: where a model's checkpoint, cached scores, per-image records
and overlay maps live, in which format, and how they are loaded and saved.

    <runs>/<suite>/<label>-<hash>/last.pt                   trained method (engine.train)
                                  scores-<key>.json         rows, curves, timings
                                  per_image-<key>.npz       the test split's per-image records
                                  overlays.npz              GT-class maps of a few test images

``<hash>`` is the short form of the run's configuration hash (a trained method's
``TrainConfig.config_hash``, a classifier's hash of its dataset and classifier settings);
``<key>`` that of everything that changes the scores (post-processors, evaluation settings,
explainers, formats), so a suite with other scoring settings recomputes its scores and keeps
the checkpoint. A second run with the same suite reads the scores instead of recomputing them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from wsolbench.errors import WsolbenchError
from wsolbench.identity import config_hash, short_hash
from wsolbench.io import write_json
from wsolbench.report import per_image as report_per_image

# Bump when the cached scores' content changes, so old caches are recomputed (7: rows record
# the weights hash as checkpoint_hash, no longer the checkpoint file's; metrics named by their
# MetricSpec: Top1Loc, GTKnownLoc, ...).
SCORES_FORMAT = 7
CHECKPOINT_NAME = "last.pt"
OVERLAYS_NAME = "overlays.npz"
_SCORES_KEYS = {"rows": list, "curves": list}


@dataclass
class Scores:
    """What scoring one model gives: result rows, curves and per-image records, with costs."""

    rows: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    records: list[report_per_image.Record] = field(default_factory=list)
    train_seconds: float | None = None  # None: nothing trained (a classifier as it is)
    score_seconds: float = 0.0
    device: str = "unknown device"


def scoring_key(suite) -> str:
    """The short hash of everything in a suite that changes a model's scores."""
    from wsolbench.explainers.suite import DEFAULT_EXPLAINERS
    from wsolbench.registry import DEFAULT_PROTOCOLS

    evaluation = dict(suite.evaluation)
    if tuple(evaluation["protocols"]) == DEFAULT_PROTOCOLS:  # the key as before protocols
        del evaluation["protocols"]
    scoring: dict[str, Any] = {
        "postprocessors": suite.postprocessors,
        "evaluation": evaluation,
        "format": SCORES_FORMAT,
        "per_image": report_per_image.FORMAT,
    }
    if suite.explainers != DEFAULT_EXPLAINERS:  # the default keeps the key it always had
        scoring["explainers"] = [vars(spec) for spec in suite.explainers]
    return short_hash(config_hash(scoring))


@dataclass(frozen=True)
class RunFolder:
    path: Path
    key: str  # scoring_key of the suite

    @classmethod
    def of(cls, runs_root: str | Path, suite, label: str, run_hash: str) -> RunFolder:
        """``<runs>/<suite>/<label>-<short hash>`` (suite names and labels are checked names)."""
        return cls(
            Path(runs_root) / suite.name / f"{label}-{short_hash(run_hash)}", scoring_key(suite)
        )

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def scores_file(self) -> Path:
        return self.path / f"scores-{self.key}.json"

    @property
    def per_image_file(self) -> Path:
        return self.path / f"per_image-{self.key}.npz"

    @property
    def overlays_file(self) -> Path:
        return self.path / OVERLAYS_NAME

    def load(self, console: Console | None = None, quiet: bool = False) -> Scores | None:
        """The cached scores, or None when absent (or scored before per-image records were
        kept); a corrupt cache is said and recomputed."""
        path = self.scores_file
        if not path.is_file() or not self.per_image_file.is_file():
            return None
        try:
            from wsolbench.report.results import results_frame

            scores = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(scores, dict) or any(
                not isinstance(scores.get(k), t) for k, t in _SCORES_KEYS.items()
            ):
                raise ValueError("not a scores object")
            results_frame(scores["rows"])  # every row well-formed
            records = report_per_image.load(self.per_image_file)[0]
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, WsolbenchError) as error:
            if console is not None and not quiet:
                console.print(
                    f"[yellow]{path}: corrupt cached scores ({str(error)[:80]}): recomputing[/]",
                    soft_wrap=True,
                )
            return None
        return Scores(
            rows=scores["rows"],
            curves=scores["curves"],
            records=records,
            train_seconds=scores.get("train_seconds"),
            score_seconds=float(scores.get("score_seconds", 0.0)),
            device=str(scores.get("device", "unknown device")),
        )

    def save(self, scores: Scores) -> Scores:
        """Write the scores and per-image records; returns them as a later ``load`` would."""
        report_per_image.save(self.per_image_file, scores.records, [])
        payload: dict[str, Any] = {"rows": scores.rows, "curves": scores.curves}
        if scores.train_seconds is not None:
            payload["train_seconds"] = scores.train_seconds
        payload.update(score_seconds=scores.score_seconds, device=scores.device)
        write_json(self.scores_file, payload)
        scores.records = report_per_image.as_loaded(scores.records)
        return scores
