"""Published reference numbers (``leaderboards/reported/*.csv``), kept apart from measured ones.

The CSVs use the results' long format plus ``source`` (paper and table) and ``reported``
(always true). Their provenance is documented in ``leaderboards/reported/SOURCES.md``; the
folder ships with the package as ``wsolbench.reported`` (pyproject.toml's ``package-dir``), so an
installed wsolbench finds it without the source checkout. ``split_sizes.json`` beside them gives
the number of images of each split the published numbers were measured on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import util
from pathlib import Path

import pandas as pd

from wsolbench.errors import WsolbenchError
from wsolbench.report.results import read_results
from wsolbench.report.tables import METHOD_ORDER, Table, build_tables

REPORTED_COLUMNS = ("source", "reported")
PACKAGE = "wsolbench.reported"
SPLIT_SIZES = "split_sizes.json"
SPLIT_IMAGES = "split_images"  # column: images of the split a published number was measured on
# A measured split with fewer than this share of the published split's images gets a warning.
SMALL_SPLIT = 0.5


def default_reported_dir() -> Path:
    """The published numbers shipped with the package (``leaderboards/reported`` in a source
    checkout, installed as the ``wsolbench.reported`` package data)."""
    spec = util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise WsolbenchError(f"the published numbers ({PACKAGE}) are not installed: reinstall")
    return Path(locations[0])


def read_reported(directory: str | Path | None = None) -> pd.DataFrame:
    """Every published number in ``directory`` (default: the ones shipped with the package),
    with the size of its split in ``split_images`` (NaN where ``split_sizes.json`` has none)."""
    directory = Path(directory) if directory is not None else default_reported_dir()
    paths = sorted(directory.glob("*.csv"))
    if not paths:
        raise WsolbenchError(
            "no published-number CSV files found (pass --reported-dir)", path=directory
        )
    frame = read_results(paths)
    for column in REPORTED_COLUMNS:
        if column not in frame.columns:
            raise WsolbenchError(f"published numbers lack the {column!r} column", path=directory)
    flags = frame["reported"].astype(str).str.lower()
    if not flags.isin(["true", "1"]).all():
        raise WsolbenchError("every published row must have reported = true", path=directory)
    frame["reported"] = True
    sizes = read_split_sizes(directory / SPLIT_SIZES)
    frame[SPLIT_IMAGES] = [
        sizes.get((str(d), str(s)), float("nan")) for d, s in zip(frame["dataset"], frame["split"])
    ]
    return frame


def read_split_sizes(path: Path) -> dict[tuple[str, str], int]:
    """(dataset, split) -> images, from a ``split_sizes.json`` (empty when there is none)."""
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["splits"]
        sizes = {(str(e["dataset"]), str(e["split"])): int(e["images"]) for e in entries}
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise WsolbenchError(f"cannot read the published split sizes: {error}", path=path) from None
    if any(images <= 0 for images in sizes.values()):
        raise WsolbenchError("a published split size is not a positive count", path=path)
    return sizes


@dataclass
class Published:
    """The published numbers that concern a results table: only its datasets' rows, and
    one-line warnings (no published number for its datasets, a much smaller split)."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def published_for(
    results: pd.DataFrame,
    reported: pd.DataFrame,
    split_sizes: Mapping[tuple[str, str], int] | None = None,
) -> Published:
    """The rows of ``reported`` for the datasets of ``results``; ``split_sizes`` ((dataset,
    split) -> images measured, see ``measured_split_sizes``) adds a warning for every measured
    split much smaller than the published one."""
    datasets = list(dict.fromkeys(results["dataset"].astype(str))) if not results.empty else []
    frame = reported[reported["dataset"].astype(str).isin(datasets)]
    warnings = []
    if frame.empty:
        published = ", ".join(sorted(reported["dataset"].astype(str).unique()))
        warnings.append(
            f"no published numbers for {', '.join(datasets) or 'these results'} "
            f"(published: {published})"
        )
    if SPLIT_IMAGES in frame.columns:
        known = frame.dropna(subset=[SPLIT_IMAGES])
        for (dataset, split), group in known.groupby(["dataset", "split"], sort=False):
            measured = (split_sizes or {}).get((str(dataset), str(split)))
            published = int(group[SPLIT_IMAGES].iloc[0])
            if measured is not None and measured < SMALL_SPLIT * published:
                warnings.append(
                    f"{dataset} {split}: {measured:,} image(s) measured vs {published:,} "
                    "published; differences to the published numbers may be sampling noise"
                )
    return Published(frame, warnings)


def measured_split_sizes(records: Iterable) -> dict[tuple[str, str], int]:
    """(dataset, split) -> images scored, from per-image records (``report.per_image``)."""
    sizes: dict[tuple[str, str], int] = {}
    for record in records:
        key = (str(record.key.get("dataset")), str(record.key.get("split")))
        sizes[key] = max(sizes.get(key, 0), int(record.count))
    return sizes


def reported_tables(reported: pd.DataFrame) -> list[Table]:
    """The leaderboard tables of the published numbers, one set per source, titled as reported.

    Rows of methods wsolbench does not implement (e.g. I2C, DANet) get tables of their own, so
    no published table puts them beside the methods that can be measured here.
    """
    tables: list[Table] = []
    implemented = reported["method"].isin(METHOD_ORDER)
    for own, marker in ((True, ""), (False, "; methods not implemented in wsolbench")):
        part = reported[implemented == own]
        for source, group in part.groupby("source", sort=False):
            tables += build_tables(
                group,
                suffix=f" (reported, {source}{marker})",
                decimals=_printed_decimals(group["value"]),
            )
    return tables


def _printed_decimals(values: pd.Series) -> int:
    """The fewest decimals that show every published value exactly as printed (at most 2)."""
    for decimals in (0, 1):
        if (values.round(decimals) - values).abs().max() < 1e-9:
            return decimals
    return 2
