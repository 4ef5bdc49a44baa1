"""Published reference numbers (leaderboards/reported) and `leaderboard --with-reported`."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from test_report import make_results  # noqa: E402  (tests/ is on sys.path under pytest)

from wsolbench.cli import main
from wsolbench.errors import WsolbenchError
from wsolbench.report import read_reported, read_results, reported_tables, write_results
from wsolbench.report.reported import (
    SPLIT_IMAGES,
    SPLIT_SIZES,
    default_reported_dir,
    published_for,
    read_split_sizes,
)
from wsolbench.report.results import PROTOCOL_METRICS


@pytest.fixture(scope="module")
def reported() -> pd.DataFrame:
    return read_reported()


def test_reported_files_are_valid_and_documented(reported):
    assert (default_reported_dir() / "SOURCES.md").is_file()
    sources = (default_reported_dir() / "SOURCES.md").read_text()
    assert reported["reported"].all()
    assert (reported["source"].str.len() > 0).all()
    for source in reported["source"].unique():
        assert f"`{source}`" in sources  # every source is explained in SOURCES.md
    for path in default_reported_dir().glob("*.csv"):
        assert f"`{path.name}`" in sources
    for protocol, metric in zip(reported["protocol"], reported["metric"]):
        assert metric in PROTOCOL_METRICS[protocol]
    peak_t = reported["metric"] == "PeakT"
    assert reported.loc[~peak_t, "value"].between(0, 100).all()
    assert reported.loc[peak_t, "value"].between(0, 255).all()
    # One number per setting and source (two tables may print the same setting differently).
    keys = [
        "dataset",
        "split",
        "backbone",
        "method",
        "postprocessor",
        "protocol",
        "metric",
        "source",
    ]
    assert not reported.duplicated(keys).any()


def _value(reported, dataset, backbone, method):
    match = reported[
        (reported["dataset"] == dataset)
        & (reported["backbone"] == backbone)
        & (reported["method"] == method)
        & reported["source"].str.startswith("Choe et al.")
    ]
    assert len(match) == 1
    return float(match["value"].iloc[0])


def test_wsolevaluation_numbers_as_printed(reported):
    # Spot checks against the printed table (README main_table.png of clovaai/wsolevaluation).
    assert _value(reported, "CUB", "vgg16", "cam") == 63.7
    assert _value(reported, "ILSVRC", "resnet50", "cam") == 63.7
    assert _value(reported, "OpenImages", "inception_v3", "cam") == 63.2
    assert _value(reported, "CUB", "inception_v3", "fsl-baseline") == 86.6
    openimages = reported[
        (reported["dataset"] == "OpenImages") & (reported["protocol"] == "wsolevaluation")
    ]
    assert set(openimages["metric"]) == {"PxAP"}


def test_dawsol_numbers_as_printed(reported):
    """DA-WSOL's README Performance tables, under its own protocol."""
    rows = reported[reported["protocol"] == "dawsol"]
    assert len(rows) == 3 * 3 + 3 * 5 + 2 * 2
    value = rows.set_index(["dataset", "backbone", "method", "metric"])["value"]
    assert value[("ILSVRC", "resnet50", "da-wsol-two-stage", "Top1Loc")] == 55.84
    assert value[("CUB", "inception_v3", "da-wsol-two-stage", "pIoU")] == 51.81
    assert value[("OpenImages", "resnet50", "da-wsol", "PxAP")] == 65.42


def test_differences_to_cam_are_added_exactly(reported):
    derived = reported[reported["note"].str.startswith("CAM ")]
    assert len(derived) == 5 * 3 * 3
    for row in derived.itertuples():
        cam, difference = map(float, re.match(r"CAM (\S+) (\S+)", row.note).groups())
        assert row.value == pytest.approx(round(cam + difference, 1))
        assert _value(reported, row.dataset, row.backbone, "cam") == cam


def test_reported_tables_are_marked_and_keep_printed_precision(reported):
    tables = reported_tables(reported)
    assert tables and all("(reported, " in table.title for table in tables)
    cells = [cell for table in tables for row in table.rows for cell in row[table.labels :]]
    assert "63.7" in cells and "63.70" not in cells


def _measured_section(markdown: str) -> str:
    measured = markdown.split("## Measured results", 1)[1]
    return measured.split("## Published numbers", 1)[0].split("## Figures", 1)[0]


def _on_cub(results: pd.DataFrame) -> pd.DataFrame:
    return results.assign(dataset=results["dataset"].replace({"synth": "CUB"}))


def test_cli_with_reported_adds_marked_rows_and_leaves_measured_alone(tmp_path):
    results_path, _ = write_results(_on_cub(make_results()), tmp_path / "run")
    plain, with_reported = tmp_path / "plain", tmp_path / "with"
    assert main(["leaderboard", str(results_path), "--out", str(plain), "--quiet"]) == 0
    assert (
        main(
            [
                "leaderboard",
                str(results_path),
                "--out",
                str(with_reported),
                "--quiet",
                "--with-reported",
            ]
        )
        == 0
    )
    plain_md = (plain / "leaderboard.md").read_text()
    reported_md = (with_reported / "leaderboard.md").read_text()
    assert "## Published numbers" not in plain_md
    assert "## Published numbers (reported, not measured here)" in reported_md
    assert "(reported, Choe et al. CVPR 2020" in reported_md
    assert _measured_section(reported_md) == _measured_section(plain_md)
    # Only the measured datasets' published tables: CUB, not ILSVRC or OpenImages.
    published = reported_md.split("## Published numbers", 1)[1]
    assert "| CUB |" in published or "Dataset: CUB" in published
    assert "ILSVRC" not in published and "OpenImages" not in published
    # The measured results file holds only measured rows.
    merged = read_results(with_reported / "results.csv")
    assert "source" not in merged.columns and len(merged) == len(make_results())
    html = (with_reported / "report.html").read_text()
    assert 'class="reported"' in html and "(reported, Choe et al. CVPR 2020" in html


def test_only_the_results_datasets_published_tables(reported):
    chosen = published_for(_on_cub(make_results()), reported)
    assert set(chosen.frame["dataset"]) == {"CUB"} and chosen.warnings == []
    sources = {t.title for t in reported_tables(chosen.frame)}
    assert any("Pan et al. CVPR 2021, main Table 2" in title for title in sources)
    assert not any("main Table 3" in title or "main Table 5" in title for title in sources)
    nothing = published_for(make_results(), reported)  # synthetic datasets: none published
    assert nothing.frame.empty
    assert nothing.warnings == [
        "no published numbers for synth, boxes-only "
        "(published: CUB, ILSVRC, ILSVRC-LID, OpenImages)"
    ]


def test_a_much_smaller_split_is_one_warning_line(reported):
    results = _on_cub(make_results())
    small = published_for(results, reported, {("CUB", "test"): 6})
    assert small.warnings == [
        "CUB test: 6 image(s) measured vs 5,794 published; "
        "differences to the published numbers may be sampling noise"
    ]
    assert published_for(results, reported, {("CUB", "test"): 5794}).warnings == []
    assert published_for(results, reported, {("CUB", "val"): 6}).warnings == []  # other split


def test_the_warning_reaches_the_report_and_the_terminal(tiny_bench, tmp_path, reported):
    from rich.console import Console

    from wsolbench.report import per_image, print_leaderboard, render_leaderboard
    from wsolbench.report.per_image import Record

    records, images = per_image.load(tiny_bench.board / "per_image.npz")
    records = [Record(dict(r.key, dataset="CUB"), r.arrays, r.meta) for r in records]
    results = tiny_bench.results.assign(dataset="CUB")
    count = records[0].count
    warning = f"CUB test: {count:,} image(s) measured vs 5,794 published"
    render_leaderboard(results, tmp_path, reported=reported, per_image=(records, []))
    assert (tmp_path / "leaderboard.md").read_text().count(warning) == 1
    assert (tmp_path / "report.html").read_text().count(warning) == 1
    console = Console(record=True, width=400)
    print_leaderboard(results, console, reported=reported, records=records)
    lines = [line for line in console.export_text().splitlines() if warning in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ")


def test_split_sizes_are_documented(reported):
    sizes = read_split_sizes(default_reported_dir() / SPLIT_SIZES)
    assert sizes[("CUB", "test")] == 5794 and sizes[("ILSVRC", "test")] == 50000
    assert sizes[("OpenImages", "test")] == 5000 and sizes[("ILSVRC-LID", "test")] == 23151
    # Every published split has its size.
    assert reported[SPLIT_IMAGES].notna().all()
    assert f"`{SPLIT_SIZES}`" in (default_reported_dir() / "SOURCES.md").read_text()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "cannot read the published split sizes"),
        ('{"splits": [{"dataset": "CUB"}]}', "cannot read the published split sizes"),
        ('{"splits": [{"dataset": "CUB", "split": "test", "images": 0}]}', "positive count"),
    ],
)
def test_bad_split_sizes_are_one_error(tmp_path, content, message):
    path = tmp_path / SPLIT_SIZES
    path.write_text(content)
    with pytest.raises(WsolbenchError, match=message):
        read_split_sizes(path)


def test_reported_dir_without_reported_flag_is_refused(tmp_path):
    frame = make_results().head(3)
    frame = frame.assign(source="Somebody 2020, Table 1")
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(WsolbenchError, match="'reported' column"):
        read_reported(tmp_path)
    with pytest.raises(WsolbenchError, match="no published-number CSV"):
        read_reported(tmp_path / "empty")


def test_baselines_published_numbers(reported):
    """BAS, TS-CAM and SCM as their READMEs print them (Top-1 / Top-5 / GT-known Loc), each under
    its own family's protocol, with that protocol's metric names."""
    from wsolbench.evaluation.protocols import registered_protocols

    def row(method, dataset, backbone, metrics, protocol):
        match = reported[
            (reported["method"] == method)
            & (reported["dataset"] == dataset)
            & (reported["backbone"] == backbone)
            & (reported["protocol"] == protocol)
        ]
        return [float(match.loc[match["metric"] == m, "value"].iloc[0]) for m in metrics]

    loc = ("Top1Loc", "Top5Loc", "GTKnownLoc")
    assert row("bas", "CUB", "vgg16", loc, "bas") == [71.33, 85.33, 91.07]
    assert row("bas", "CUB", "resnet50", loc, "bas") == [77.25, 90.08, 95.13]
    assert row("bas", "ILSVRC", "vgg16", loc, "bas") == [52.96, 65.41, 69.64]
    assert row("bas", "ILSVRC", "resnet50", loc, "bas") == [57.18, 68.44, 71.77]
    assert row("bas", "ILSVRC", "mobilenet_v1", loc, "bas") == [52.97, 66.59, 72.00]
    assert row("tscam", "CUB", "deit_small", loc, "tscam") == [71.3, 83.8, 87.7]
    assert row("tscam", "ILSVRC", "deit_small", loc, "tscam") == [53.4, 64.3, 67.6]
    # SCM chose each box threshold on the test set and read GT-known from the top-1 class's
    # map: the scm protocol's own rule, so its own names.
    assert row("scm", "CUB", "deit_small", loc, "scm") == [76.4, 91.6, 96.6]
    assert row("scm", "ILSVRC", "deit_small", loc, "scm") == [56.1, 66.4, 68.8]
    assert row("tscam", "CUB", "deit_small", ("Top1Cls",), "spa") == [80.3]
    # Every published (protocol, metric) is one the protocol reports, so it sits beside the
    # same protocol's measured number.
    names = {name: {s.name for s in p.specs()} for name, p in registered_protocols().items()}
    for protocol, metric in reported[["protocol", "metric"]].drop_duplicates().itertuples(False):
        assert metric in names[protocol], (protocol, metric)


def test_every_registered_method_is_implemented_in_the_reports():
    """A registered method's published rows sit beside its measured ones, not in the tables of
    methods wsolbench does not implement."""
    from wsolbench.registry import list_methods
    from wsolbench.report.tables import METHOD_ORDER

    assert set(list_methods()) <= set(METHOD_ORDER)
