"""The results table: one row per number, read from and written to CSV / JSON.

Every report is rendered from this long table (see DESIGN.md). Curves for the figures live in
``curves.json`` beside ``results.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.protocols import MetricSpec, default_protocols
from wsolbench.io import atomic_path, write_json

KEY_COLUMNS = ["dataset", "split", "backbone", "method", "postprocessor", "protocol", "metric"]
PROVENANCE_COLUMNS = ["seed", "config_hash", "checkpoint_hash", "versions"]
COLUMNS = KEY_COLUMNS + ["value"] + PROVENANCE_COLUMNS

# The metrics each protocol produces (values in %, except PeakT in 0..255 and the box
# threshold), in report order: the registered protocols' own names, default settings.
METRIC_SPECS: dict[tuple[str, str], MetricSpec] = {
    (name, spec.name): spec
    for name, protocol in default_protocols().items()
    for spec in protocol.specs()
}
PROTOCOL_METRICS: dict[str, tuple[str, ...]] = {
    name: tuple(spec.name for spec in protocol.specs())
    for name, protocol in default_protocols().items()
}


def metric_specs() -> dict[tuple[str, str], MetricSpec]:
    """``METRIC_SPECS`` of the protocols registered now (one registered after this module was
    imported, e.g. a user's or a test's own, included)."""
    return {
        (name, spec.name): spec
        for name, protocol in default_protocols().items()
        for spec in protocol.specs()
    }


CURVE_KEYS = ("dataset", "backbone", "method", "postprocessor", "curve", "x", "y")

# What a number depends on; Pillow resizes the training images (12.3 and 13.0 differ).
_VERSIONED_PACKAGES = (
    "wsolbench",
    "torch",
    "torchvision",
    "numpy",
    "opencv-python-headless",
    "pillow",
)


def package_versions() -> str:
    """A compact JSON string of the versions that produced a number (provenance)."""
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return json.dumps(versions, separators=(",", ":"), sort_keys=True)


def make_rows(
    *,
    dataset: str,
    split: str,
    backbone: str,
    method: str,
    postprocessor: str,
    protocol: str,
    metrics: Mapping[str, float],
    seed: int = 0,
    config_hash: str = "",
    checkpoint_hash: str = "",
    versions: str | Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per metric of one (dataset, split, backbone, method, post-processor, protocol)."""
    if versions is None:
        versions = package_versions()
    elif not isinstance(versions, str):
        versions = json.dumps(dict(versions), separators=(",", ":"), sort_keys=True)
    rows = []
    for metric, value in metrics.items():
        rows.append(
            {
                "dataset": dataset,
                "split": split,
                "backbone": backbone,
                "method": method,
                "postprocessor": postprocessor,
                "protocol": protocol,
                "metric": metric,
                "value": float(value),
                "seed": int(seed),
                "config_hash": config_hash,
                "checkpoint_hash": checkpoint_hash,
                "versions": versions,
            }
        )
    return rows


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A results DataFrame with the standard columns first, from ``make_rows`` output."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    return _normalize(frame, "<rows>")


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as formulas, prefixed with an apostrophe (OWASP's
    rule); numbers are left alone (a negative number is a number, not a formula)."""
    frame = frame.copy()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v
            )
    return frame


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Every CSV wsolbench writes goes through here: formula-safe, atomic."""
    with atomic_path(path) as tmp:
        csv_safe(frame).to_csv(tmp, index=False)
    return Path(path)


def _csv_unsafe(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo ``csv_safe`` when reading a results.csv back (so a re-rendered report shows the
    label as it was)."""
    for column in KEY_COLUMNS:
        if column in frame.columns and not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(
                lambda v: (
                    v[1:]
                    if isinstance(v, str) and v[:1] == "'" and v[1:].startswith(FORMULA_STARTS)
                    else v
                )
            )
    return frame


def read_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read and concatenate results files (``.csv`` or ``.json``), validating their columns."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(path) for path in paths]
    if not paths:
        raise WsolbenchError("no results file given")
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise WsolbenchError(f"the same results file is given twice ({seen[resolved]})", path)
        seen[resolved] = path
    frames = [_read_one(path) for path in paths]
    _check_unique_rows(frames, paths)
    return pd.concat(frames, ignore_index=True)


def _check_unique_rows(frames: list[pd.DataFrame], paths: list[Path]) -> None:
    """One number per setting: a row repeated within or across files is an error (it would
    count twice in every mean), naming the file and, for a CSV, the line."""
    identity = [c for c in frames[0].columns if c not in ("value", *PROVENANCE_COLUMNS[1:])]
    seen: dict[tuple, Path] = {}
    for frame, path in zip(frames, paths):
        columns = [c for c in identity if c in frame.columns]
        keys = frame[columns].astype(str).itertuples(index=False, name=None)
        for row, key in enumerate(keys):
            if key in seen:
                where = {"line": row + 2} if path.suffix.lower() == ".csv" else {}
                setting = ", ".join(f"{c}={v}" for c, v in zip(columns, key))
                also = "" if seen[key] == path else f" (also in {seen[key]})"
                raise WsolbenchError(f"duplicate result row: {setting}{also}", path=path, **where)
            seen[key] = path


def write_results(results: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (formula-safe, see ``csv_safe``) and ``results.json`` (a list
    of records, verbatim) atomically."""
    out_dir = Path(out_dir)
    if results.empty:  # validated before anything is replaced: never an empty leaderboard
        raise WsolbenchError("no results to write: the leaderboard would be empty", out_dir)
    csv_path, json_path = out_dir / "results.csv", out_dir / "results.json"
    write_csv(results, csv_path)
    records = json.loads(results.to_json(orient="records"))
    write_json(json_path, records)
    return csv_path, json_path


def read_curves(path: str | Path) -> list[dict[str, Any]]:
    """Read ``curves.json``: a list of {dataset, backbone, method, postprocessor, curve, x, y}."""
    path = Path(path)
    try:
        curves = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise WsolbenchError("cannot read curves: nested too deeply", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WsolbenchError(f"cannot read curves: {error}", path=path) from None
    if not isinstance(curves, list):
        raise WsolbenchError("curves file must hold a JSON list", path=path)
    for index, curve in enumerate(curves):
        missing = [key for key in CURVE_KEYS if not isinstance(curve, dict) or key not in curve]
        if missing:
            raise WsolbenchError(f"curve #{index} lacks {', '.join(missing)}", path=path)
        if not all(_finite_list(curve[axis]) for axis in ("x", "y")):
            raise WsolbenchError(
                f"curve #{index}: x and y must be lists of finite numbers", path=path
            )
        if len(curve["x"]) != len(curve["y"]):
            raise WsolbenchError(f"curve #{index}: x and y differ in length", path=path)
    return curves


def _finite_list(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values
    )


def write_curves(curves: list[Mapping[str, Any]], out_dir: str | Path) -> Path:
    path = Path(out_dir) / "curves.json"
    write_json(path, [dict(curve) for curve in curves])
    return path


def _read_one(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(
                path,
                dtype={"config_hash": str, "checkpoint_hash": str, "versions": str},
                keep_default_na=False,
                na_values={"value": ["", "nan", "NaN"]},
            )
            frame = _csv_unsafe(frame)
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "results" in data:
                data = data["results"]
            if isinstance(data, dict) and "num_images" in data and "protocol" in data:
                raise WsolbenchError(
                    "this is the summary `wsolbench evaluate --output` writes, which has no "
                    "dataset, method or post-processor: add those columns to make it a results "
                    "table (one row per number), or use `wsolbench bench`'s results.csv",
                    path=path,
                )
            if not isinstance(data, list):
                raise WsolbenchError("results JSON must be a list of rows", path=path)
            frame = pd.DataFrame(data)
        else:
            raise WsolbenchError("results file must end in .csv or .json", path=path)
    except FileNotFoundError:
        raise WsolbenchError("results file not found", path=path) from None
    except WsolbenchError:
        raise
    except RecursionError:
        raise WsolbenchError("cannot parse results: nested too deeply", path=path) from None
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as error:
        detail = " ".join(str(error).split())[:200]
        raise WsolbenchError(f"cannot parse results: {detail}", path=path) from None
    if frame.empty:
        raise WsolbenchError(
            "the results file has no rows: nothing to report (an empty leaderboard would "
            "replace a full one)",
            path=path,
        )
    return _normalize(frame, path, csv=suffix == ".csv")


def _normalize(frame: pd.DataFrame, path: str | Path, csv: bool = False) -> pd.DataFrame:
    missing = [column for column in KEY_COLUMNS + ["value"] if column not in frame.columns]
    if missing:
        raise WsolbenchError(f"results lack column(s): {', '.join(missing)}", path=path)
    frame = frame.copy()
    for column in KEY_COLUMNS:
        frame[column] = frame[column].astype(str)
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        # CSV: a header line, then 1-based data lines; JSON: the record's index.
        where = {"line": row + 2} if csv else {}
        message = f"value {frame['value'].iloc[row]!r} is not a finite number"
        if not csv:
            message += f" (row {row})"
        raise WsolbenchError(message, path=path, **where)
    frame["value"] = values.astype(float)
    defaults = {"seed": 0, "config_hash": "", "checkpoint_hash": "", "versions": ""}
    for column, default in defaults.items():
        if column not in frame.columns:
            frame[column] = default
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").fillna(0).astype(int)
    for column in ("config_hash", "checkpoint_hash", "versions"):
        frame[column] = frame[column].fillna("").astype(str)
    extra = [column for column in frame.columns if column not in COLUMNS]
    return frame[COLUMNS + extra].reset_index(drop=True)
