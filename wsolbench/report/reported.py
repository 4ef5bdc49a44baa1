"""Published reference numbers (``leaderboards/reported/*.csv``), kept apart from measured ones.

The CSVs use the results' long format plus ``source`` (paper and table) and ``reported``
(always true). Their provenance is documented in ``leaderboards/reported/SOURCES.md``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wsolbench.errors import WsolbenchError
from wsolbench.report.results import read_results
from wsolbench.report.tables import METHOD_ORDER, Table, build_tables

REPORTED_COLUMNS = ("source", "reported")


def default_reported_dir() -> Path:
    """``leaderboards/reported`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "leaderboards" / "reported"


def read_reported(directory: str | Path | None = None) -> pd.DataFrame:
    """Every published number in ``directory`` (default: the repository's reported folder)."""
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
    return frame


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
