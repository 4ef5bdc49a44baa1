"""`wsolbench leaderboard`: re-render the leaderboard from one or more results files."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from wsolbench.cli import add_command


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "leaderboard",
        help="Render leaderboard tables, figures and an HTML report from results files.",
        description="Render leaderboard.md, report.html, figures/*.png and the merged "
        "results.csv / results.json from one or more results files (as written by "
        "`wsolbench bench`: one row per number). Curves for the figures are read from a "
        "curves.json beside each results file when there is one, and per-image statistics "
        "(bootstrap intervals, the failure browser) from a per_image.npz beside it.",
    )
    parser.add_argument(
        "results",
        nargs="+",
        type=Path,
        metavar="RESULTS",
        help="results files (.csv or .json, the long format: one row per number)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder (created if needed; files are replaced atomically)",
    )
    parser.add_argument(
        "--with-reported",
        action="store_true",
        help="add the published numbers (SPA CVPR 2021, wsolevaluation CVPR 2020) of the "
        "results' datasets in separate sections marked '(reported, <source>)', with a "
        "warning when a measured split is much smaller than the published one (default: off)",
    )
    parser.add_argument(
        "--reported-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of published-number CSVs (default: the ones installed with wsolbench, "
        "leaderboards/reported in a source checkout)",
    )
    parser.add_argument(
        "--title",
        default="wsolbench leaderboard",
        help="title of leaderboard.md and report.html (default: %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print every table (published ones included) in the terminal (default: the "
        "headline table and where the full report is)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print no table in the terminal (default: the headline table)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wsolbench.io import claim_folder, declare_inputs
    from wsolbench.report import (
        Bootstrap,
        load_per_image,
        print_leaderboard,
        read_curves,
        read_reported,
        read_results,
        render_leaderboard,
        write_results,
    )

    beside = [
        path.parent / name for path in args.results for name in ("curves.json", "per_image.npz")
    ]
    declare_inputs(*args.results, *beside, args.reported_dir)
    claim_folder(args.out, "leaderboard folder (--out)", "leaderboard")
    results = read_results(args.results)
    curves, curve_files = [], []
    for path in args.results:
        candidate = (path.parent / "curves.json").resolve()
        if candidate.is_file() and candidate not in curve_files:
            curve_files.append(candidate)
            curves += read_curves(candidate)
    curves = _unique_curves(curves)
    records, images, seen = [], [], set()
    for path in args.results:
        candidate = (path.parent / "per_image.npz").resolve()
        if candidate.is_file() and candidate not in seen:
            seen.add(candidate)
            found = load_per_image(candidate)
            records += found[0]
            images += found[1]
    bootstrap = Bootstrap(records) if records else None
    reported = read_reported(args.reported_dir) if args.with_reported else None
    console = Console()
    if not args.quiet:
        print_leaderboard(
            results,
            console,
            reported=reported,
            bootstrap=bootstrap,
            records=records,
            verbose=args.verbose,
        )
    csv_path, json_path = write_results(results, args.out)
    written = render_leaderboard(
        results,
        args.out,
        curves=curves or None,
        title=args.title,
        reported=reported,
        per_image=(records, images) if records else None,
        bootstrap=bootstrap,
    )
    if records:
        from wsolbench.report.per_image import FILE_NAME, save

        if (args.out / FILE_NAME).resolve() not in seen:  # never over its own input
            save(args.out / FILE_NAME, records, images)
    names = ", ".join(
        path.name for path in (written["markdown"], written["html"], csv_path, json_path)
    )
    console.print(
        f"wrote {names} and {len(written) - 2} figure(s) to {args.out} "
        f"(the full report: {written['html']})",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _unique_curves(curves: list[dict]) -> list[dict]:
    """Drop exact duplicates (two results files in one folder share one curves.json)."""
    seen, unique = set(), []
    for curve in curves:
        key = tuple(
            str(curve[k]) for k in ("dataset", "backbone", "method", "postprocessor", "curve")
        )
        if key not in seen:
            seen.add(key)
            unique.append(curve)
    return unique
