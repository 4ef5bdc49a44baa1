"""The SPA paper's published numbers (leaderboards/reported/spa_cvpr2021_tables.csv) and the
"Reproduced vs reported" comparison.

The expected values below were copied by hand from the project's transcription of the paper,
``shared/reference/spa_cvpr2021_published.csv`` (table, dataset, split, backbone, method,
variant, metric, value as printed), and checked against it when this test was written; the test
does not read that file (users' clones do not have it).
"""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from wsolbench.cli import main
from wsolbench.report import (
    comparison_tables,
    make_rows,
    print_leaderboard,
    read_reported,
    reported_tables,
    results_frame,
    write_results,
)

PAPER = "Pan et al. CVPR 2021, "

# (source table, dataset, backbone, method, post-processor, protocol, metric, value printed,
#  printed as an error?)  <- shared/reference/spa_cvpr2021_published.csv
PRINTED = [
    (
        "main Table 1 + supplementary Table 1",
        "ILSVRC",
        "vgg16",
        "spa",
        "scg",
        "spa",
        "Top1Loc",
        "50.44",
        True,
    ),
    ("main Table 1", "ILSVRC", "inception_v3", "spa", "scg", "spa", "Top1Loc", "47.27", True),
    (
        "supplementary Table 1",
        "ILSVRC",
        "inception_v3",
        "spa",
        "scg",
        "spa",
        "Top1Loc",
        "47.29",
        True,
    ),
    (
        "main Table 1 + supplementary Table 1",
        "ILSVRC",
        "googlenet",
        "acol",
        "none",
        "spa",
        "Top5Loc",
        "42.58",
        True,
    ),
    (
        "main Table 2 + supplementary Table 2",
        "CUB",
        "vgg16",
        "spa",
        "scg",
        "spa",
        "GTKnownLoc",
        "22.71",
        True,
    ),
    (
        "main Table 2 + supplementary Table 2",
        "CUB",
        "inception_v3",
        "danet",
        "none",
        "spa",
        "Top1Loc",
        "50.55",
        True,
    ),
    (
        "main Table 3",
        "ILSVRC-LID",
        "inception_v3",
        "cutmix",
        "scg",
        "peak",
        "PeakIoU",
        "56.96",
        False,
    ),
    ("main Table 3", "ILSVRC-LID", "inception_v3", "cutmix", "scg", "peak", "PeakT", "83", False),
    (
        "main Table 3",
        "ILSVRC-LID",
        "inception_v3",
        "cutmix",
        "scg",
        "spa",
        "GTKnownLoc",
        "68.23",
        False,
    ),
    ("main Table 3", "ILSVRC-LID", "inception_v3", "acol", "scg", "peak", "PeakT", "132", False),
    ("main Table 3", "ILSVRC-LID", "inception_v3", "has", "sem", "peak", "PeakIoU", "51.59", False),
    (
        "main Table 4 + supplementary Table 3",
        "ILSVRC",
        "inception_v3",
        "spa-noram",
        "none",
        "spa",
        "err_mins",
        "10.36",
        False,
    ),
    (
        "main Table 4 + supplementary Table 3",
        "CUB",
        "vgg16",
        "spa",
        "scg",
        "spa",
        "err_part",
        "9.25",
        False,
    ),
    ("main Table 5", "ILSVRC", "vgg16", "spa", "none", "spa", "Top1Loc", "52.33", True),
    ("main Table 6", "CUB", "vgg16", "spa", "none", "spa", "Top1Loc", "49.34", True),
    (
        "main Table 6",
        "CUB",
        "inception_v3",
        "spa-noram",
        "scg",
        "spa",
        "GTKnownLoc",
        "30.77",
        True,
    ),
]


@pytest.fixture(scope="module")
def spa() -> pd.DataFrame:
    reported = read_reported()
    return reported[reported["source"].str.startswith(PAPER)].reset_index(drop=True)


def _stored(spa, table, dataset, backbone, method, postprocessor, protocol, metric):
    match = spa[
        (spa["source"] == PAPER + table)
        & (spa["dataset"] == dataset)
        & (spa["split"] == "test")
        & (spa["backbone"] == backbone)
        & (spa["method"] == method)
        & (spa["postprocessor"] == postprocessor)
        & (spa["protocol"] == protocol)
        & (spa["metric"] == metric)
    ]
    assert len(match) == 1, (table, dataset, backbone, method, postprocessor, metric)
    return match.iloc[0]


@pytest.mark.parametrize("row", PRINTED, ids=lambda row: f"{row[0]}-{row[3]}-{row[6]}")
def test_spa_numbers_match_the_paper(spa, row):
    table, dataset, backbone, method, postprocessor, protocol, metric, printed, error = row
    stored = _stored(spa, table, dataset, backbone, method, postprocessor, protocol, metric)
    expected = 100 - float(printed) if error else float(printed)
    assert stored["value"] == pytest.approx(expected, abs=1e-9)
    assert (printed in stored["note"]) == error  # the note keeps a printed error


def test_every_spa_table_is_present(spa):
    assert len(spa) == 252  # 251 transcribed numbers + the Top-1 printed twice differently
    tables = {source.removeprefix(PAPER) for source in spa["source"]}
    for number in range(1, 7):
        assert any(f"main Table {number}" in table for table in tables), number
    assert set(spa["method"]) >= {"cam", "has", "acol", "spg", "adl", "cutmix", "spa", "spa-noram"}
    assert set(spa.loc[spa["dataset"] == "ILSVRC-LID", "postprocessor"]) == {"none", "scg", "sem"}


def test_published_tables_keep_unimplemented_methods_apart(spa):
    tables = reported_tables(spa)
    titles = [table.title for table in tables]
    for number in range(1, 7):
        assert any(f"main Table {number}" in title for title in titles), number
    apart = [table for table in tables if "methods not implemented in wsolbench" in table.title]
    own = [table for table in tables if table not in apart]
    assert apart and own
    method_cells = {row[table.columns.index("Method")] for table in apart for row in table.rows}
    assert method_cells == {"backprop", "i2c", "danet", "meil", "gc-net"}
    for table in own:
        if "Method" in table.columns:
            assert not method_cells & {row[table.columns.index("Method")] for row in table.rows}
    peak = next(t for t in own if t.key == "peak" and "main Table 3" in t.title)
    cutmix = next(row for row in peak.rows if row[0] == "cutmix")
    scg = [
        i for i, column in enumerate(peak.columns) if column == "+ SCG"
    ]  # Peak-IoU, Peak-T, GT-known
    assert [cutmix[i] for i in scg] == ["56.96", "83.00", "68.23"]


def _measured() -> pd.DataFrame:
    rows = make_rows(
        dataset="CUB",
        split="test",
        backbone="vgg16",
        method="spa",
        postprocessor="scg",
        protocol="spa",
        versions="",
        metrics={"Top1Loc": 61.0, "GTKnownLoc": 76.5, "err_part": 10.0},
    )
    rows += make_rows(
        dataset="ILSVRC-LID",
        split="test",
        backbone="inception_v3",
        method="cutmix",
        postprocessor="scg",
        protocol="peak",
        versions="",
        metrics={"PeakIoU": 55.5, "PeakT": 90},
    )
    rows += make_rows(
        dataset="CUB",
        split="test",
        backbone="vgg16",
        method="cam",
        postprocessor="scg",
        protocol="spa",
        versions="",
        metrics={"Top1Loc": 50.0},
    )
    return results_frame(rows)


def test_comparison_pairs_measured_and_published_rows(spa):
    (table,) = comparison_tables(_measured(), spa)
    assert table.columns == [
        "Dataset",
        "Backbone",
        "Method",
        "Post-processor",
        "Metric",
        "Measured",
        "Reported",
        "Δ",
        "Source",
    ]
    rows = {(row[0], row[2], row[4], row[8].removeprefix(PAPER)): row[5:8] for row in table.rows}
    # Errors where the paper prints errors: 100 - 61 = 39 against 39.73.
    assert rows[("CUB", "spa", "Top-1 Loc err", "main Table 2 + supplementary Table 2")] == [
        "39.00",
        "39.73",
        "-0.73",
    ]
    assert rows[("CUB", "spa", "Top-1 Loc err", "main Table 6")] == ["39.00", "39.73", "-0.73"]
    assert rows[("CUB", "spa", "GT-known Loc err", "main Table 6")] == ["23.50", "22.71", "+0.79"]
    assert rows[
        ("CUB", "spa", "Part error (% images)", "main Table 4 + supplementary Table 3")
    ] == ["10.00", "9.25", "+0.75"]
    assert rows[("ILSVRC-LID", "cutmix", "Peak-IoU", "main Table 3")] == ["55.50", "56.96", "-1.46"]
    assert rows[("ILSVRC-LID", "cutmix", "Peak-T", "main Table 3")] == ["90", "83", "+7"]
    # cam + scg on CUB was never published: no comparison row.
    assert not any(key[1] == "cam" for key in rows)
    assert len(table.rows) == 7


def test_comparison_shows_the_published_threshold_rule_beside_ours(spa):
    """SPA's numbers chose the box threshold on the test set: the same rule's value stands
    beside ours (val), as an error where the paper prints errors; other metrics show none."""
    measured = _measured()
    extra = make_rows(
        dataset="CUB",
        split="test",
        backbone="vgg16",
        method="spa",
        postprocessor="scg",
        protocol="spa",
        versions="",
        metrics={"Top1Loc_on_test": 62.5, "GTKnownLoc_on_test": 78.0},
    )
    (table,) = comparison_tables(pd.concat([measured, results_frame(extra)]), spa)
    assert table.columns[5:8] == ["Measured", "Thr. on test", "Reported"]
    rows = {(row[0], row[2], row[4], row[9].removeprefix(PAPER)): row[5:9] for row in table.rows}
    assert rows[("CUB", "spa", "Top-1 Loc err", "main Table 6")] == [
        "39.00",
        "37.50",  # 100 - 62.5
        "39.73",
        "-0.73",  # the difference stays val's
    ]
    assert rows[("CUB", "spa", "GT-known Loc err", "main Table 6")][1] == "22.00"
    assert rows[("ILSVRC-LID", "cutmix", "Peak-IoU", "main Table 3")][1] == "–"


def test_comparison_in_markdown_html_and_terminal(tmp_path, spa):
    results_path, _ = write_results(_measured(), tmp_path / "run")
    out = tmp_path / "board"
    assert (
        main(["leaderboard", str(results_path), "--out", str(out), "--quiet", "--with-reported"])
        == 0
    )
    markdown = (out / "leaderboard.md").read_text()
    measured, rest = markdown.split("## Reproduced vs reported", 1)
    assert "## Measured results" in measured and "## Published numbers" in rest
    assert "| ILSVRC-LID | inception_v3 | cutmix | scg | Peak-IoU | 55.50 | 56.96 | -1.46 |" in rest
    published = rest.split("## Published numbers", 1)[1]
    # The SPA tables with CUB or ILSVRC-LID numbers are rendered; Tables 1 and 5 are ILSVRC only.
    for number in (2, 3, 4, 6):
        assert f"(reported, Pan et al. CVPR 2021, main Table {number}" in published, number
    for number in (1, 5):
        assert f"(reported, Pan et al. CVPR 2021, main Table {number}" not in published, number
    assert "methods not implemented in wsolbench)" in published
    html = (out / "report.html").read_text()
    assert '<section class="comparison">\n<h2>Reproduced vs reported</h2>' in html
    assert (
        '<td class="label">Peak-T</td><td class="num" data-value="90">90</td>'
        '<td class="num" data-value="83">83</td>'
    ) in html
    plain = tmp_path / "plain"
    assert main(["leaderboard", str(results_path), "--out", str(plain), "--quiet"]) == 0
    assert "Reproduced vs reported" not in (plain / "leaderboard.md").read_text()
    console = Console(record=True, width=200)
    print_leaderboard(_measured(), console, reported=spa)
    text = console.export_text()
    assert "Reproduced vs reported" in text and "56.96" in text and "-1.46" in text
