"""Leaderboard rendering from a small, hand-made results table (tests/test_report.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from wsolbench.cli import main
from wsolbench.errors import WsolbenchError
from wsolbench.report import (
    make_rows,
    print_leaderboard,
    read_results,
    render_leaderboard,
    results_frame,
    write_curves,
    write_results,
)
from wsolbench.report.tables import build_tables

EVIL = "<script>alert(1)</script>"
METHODS = {"cam": 0.0, "spa-noram": 2.0, "spa": 4.0, EVIL: 6.0}


def _setting_rows(dataset, method, postprocessor, shift, masks=True, seed=0):
    common = dict(
        dataset=dataset,
        split="test",
        backbone="tinyvgg",
        method=method,
        postprocessor=postprocessor,
        seed=seed,
        versions={"numpy": "test"},
    )
    spa = dict(
        Top1Loc=40 + shift,
        Top5Loc=50 + shift,
        GTKnownLoc=60 + shift,
        Top1Cls=70 + shift,
        Top5Cls=90.0,
        err_cls=30 - shift,
        err_mins=5.0,
        err_part=10.0,
        err_more=10.0,
        err_ot=5.0,
        box_threshold=0.25,
    )
    wsol = {
        "MaxBoxAcc": 55 + shift,
        "MaxBoxAccV2": 50 + shift,
        "MaxBoxAccV2@30": 70 + shift,
        "MaxBoxAccV2@50": 50 + shift,
        "MaxBoxAccV2@70": 30 + shift,
    }
    if masks:
        wsol["PxAP"] = 45 + shift
    rows = make_rows(protocol="spa", metrics=spa, **common)
    rows += make_rows(protocol="wsolevaluation", metrics=wsol, **common)
    rows += make_rows(
        protocol="peak", metrics={"PeakIoU": 35 + shift, "PeakT": 100 + shift}, **common
    )
    return rows


def make_results(masks=True) -> pd.DataFrame:
    rows = []
    for method, shift in METHODS.items():
        for postprocessor, bonus in (("none", 0.0), ("scg", 1.0)):
            rows += _setting_rows("synth", method, postprocessor, shift + bonus, masks=masks)
    rows += _setting_rows("boxes-only", "cam", "none", 0.0, masks=False)
    return results_frame(rows)


def make_curves():
    curves = []
    for method in ("cam", "spa"):
        for postprocessor in ("none", "scg"):
            key = dict(
                dataset="synth", backbone="tinyvgg", method=method, postprocessor=postprocessor
            )
            thresholds = np.linspace(0, 1, 11).tolist()
            for iou in (30, 50, 70):
                curves.append(
                    dict(
                        key,
                        curve=f"box_acc_v2@{iou}",
                        x=thresholds,
                        y=[100 - iou * t for t in thresholds],
                    )
                )
            curves.append(
                dict(
                    key,
                    curve="peak_iou",
                    x=list(range(256)),
                    y=[50 * np.sin(np.pi * t / 255) for t in range(256)],
                )
            )
            curves.append(dict(key, curve="pxap_pr", x=[0.0, 0.5, 1.0], y=[1.0, 0.8, 0.3]))
    return curves


def make_overlays():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    maps = [rng.random((20, 24)) for _ in range(3)]
    return {
        "images": images,
        "rows": {"cam / none": maps, "cam / scg": maps[::-1]},
        "boxes": [np.array([[2, 3, 10, 12]]), None, np.array([[0, 0, 23, 19], [1, 1, 5, 5]])],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("board")
    results = make_results()
    written = render_leaderboard(
        results, out, curves=make_curves(), overlays=make_overlays(), title="Tiny board"
    )
    return out, results, written


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the Markdown table under the ``### heading`` that starts with heading."""
    section = markdown.split("### " + heading, 1)[1].split("###", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def _header(markdown: str, heading: str) -> list[str]:
    section = markdown.split("### " + heading, 1)[1]
    line = next(line for line in section.splitlines() if line.startswith("|"))
    return [cell.strip() for cell in line.split("|")[1:-1]]


def test_markdown_has_every_table_with_protocol_lines(rendered):
    out, _, written = rendered
    markdown = (out / "leaderboard.md").read_text()
    assert written["markdown"] == out / "leaderboard.md"
    for heading in (
        "Peak-IoU, Peak-T",
        "Localization error analysis",
        "Localization and classification error",
        "SCG x RAM ablation",
        "MaxBoxAcc, MaxBoxAccV2",
    ):
        assert "### " + heading in markdown
    assert markdown.count("_Protocol: ") == 6
    assert markdown.index("### Headline") < markdown.index("### Peak-IoU, Peak-T")


def _cell(header, row, metric, postprocessor="none"):
    """A metric's cell: the plain column, then + SCG, then the difference."""
    offset = {"none": 0, "scg": 1, "diff": 2}[postprocessor]
    return row[header.index(metric) + offset]


def test_loc_error_cells_are_100_minus_accuracy(rendered):
    markdown = (rendered[0] / "leaderboard.md").read_text()
    header = _header(markdown, "Localization and classification error")
    assert header[:2] == ["Dataset", "Method"]  # split and backbone are constant: in the caption
    rows = _table_rows(markdown, "Localization and classification error")
    cam = next(r for r in rows if r[0] == "synth" and r[1] == "cam")
    assert float(_cell(header, cam, "Top-1 Loc err", "scg")) == pytest.approx(100 - 41.0)
    assert float(_cell(header, cam, "GT-known Loc err", "scg")) == pytest.approx(100 - 61.0)
    assert float(_cell(header, cam, "Top-1 Loc err", "none")) == pytest.approx(100 - 40.0)
    assert _cell(header, cam, "Top-1 Loc err", "diff") == "-1.00"
    assert float(_cell(header, cam, "Top-5 Cls err", "scg").strip("*")) == pytest.approx(10.0)
    assert _cell(header, cam, "Box threshold", "scg") == "0.250"
    assert "_Split: test, Backbone: tinyvgg; best value per column in bold._" in markdown


def test_best_value_per_column_is_marked(rendered):
    markdown = (rendered[0] / "leaderboard.md").read_text()
    header = _header(markdown, "Peak-IoU, Peak-T")
    rows = _table_rows(markdown, "Peak-IoU, Peak-T")
    column = header.index("Peak-IoU")
    bold = [row[1] for row in rows if row[column].startswith("**")]
    bold = ["**" + name for name in bold]
    assert bold == ["**" + EVIL.replace("<", "&lt;")]  # the highest Peak-IoU (shift 6)
    errors_header = _header(markdown, "Localization error analysis")
    errors = _table_rows(markdown, "Localization error analysis")
    cls = errors_header.index("Cls")
    assert [row[1] for row in errors if row[cls].startswith("**")] == [
        EVIL.replace("<", "&lt;")
    ]  # lowest error is best


def test_peak_table_and_error_statistics(rendered):
    markdown = (rendered[0] / "leaderboard.md").read_text()
    header = _header(markdown, "Peak-IoU, Peak-T")
    assert header[2:5] == ["Peak-IoU", "+ SCG", "Δ"] and "GT-known Loc" in header
    spa = next(r for r in _table_rows(markdown, "Peak-IoU, Peak-T") if r[1] == "spa")
    assert float(_cell(header, spa, "Peak-IoU", "none")) == pytest.approx(39.0)
    assert _cell(header, spa, "Peak-T", "scg") == "105"
    errors = _table_rows(markdown, "Localization error analysis")
    header = _header(markdown, "Localization error analysis")
    assert [h for h in header if h not in ("+ SCG", "Δ")][2:] == [
        "Cls",
        "M-Ins",
        "Part",
        "More",
        "OT",
    ]
    column = header.index("M-Ins")
    assert all(float(row[column].strip("*")) == 5.0 for row in errors)


def test_ablation_rows_and_ram_difference(rendered):
    markdown = (rendered[0] / "leaderboard.md").read_text()
    header = _header(markdown, "SCG x RAM ablation")
    rows = _table_rows(markdown, "SCG x RAM ablation")
    assert [r[0] for r in rows] == ["✗", "✓", "Δ RAM"]
    # spa-noram/none: shift 2 -> Top-1 Loc err 100 - 42; spa/scg: shift 5 -> Peak-IoU 40.
    assert float(_cell(header, rows[0], "Top-1 Loc err")) == pytest.approx(58.0)
    assert float(_cell(header, rows[1], "Peak-IoU", "scg").strip("*")) == pytest.approx(40.0)
    assert _cell(header, rows[2], "Top-1 Loc err") == "-2.00"  # RAM minus no RAM, as an error


def test_terminal_tables_fit_80_columns_and_keep_every_method_name():
    console = Console(record=True, width=80)
    tables = print_leaderboard(make_results(), console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    names = {"cam", "spa-noram", "spa", EVIL}
    from wsolbench.report.terminal import rich_tables

    for table in tables:
        parts = rich_tables(table, 80)
        for part in parts:
            rendered = Console(record=True, width=80)
            rendered.print(part)
            body = rendered.export_text()
            shown = names if table.key != "ablation" else {"✗", "✓", "Δ RAM"}
            for name in shown:  # never truncated to "…"
                assert name in body, (table.title, name)
    wide = next(t for t in tables if t.key == "loc_error")
    assert len(rich_tables(wide, 80)) > 1  # the wide table was split, not squeezed


def test_missing_masks_skip_pxap_cleanly():
    without = build_tables(make_results(masks=False))
    wsol = next(t for t in without if t.key == "wsolevaluation")
    assert "PxAP" not in wsol.columns and "MaxBoxAccV2" in wsol.columns
    mixed = next(t for t in build_tables(make_results()) if t.key == "wsolevaluation")
    boxes_only = next(r for r in mixed.rows if r[0] == "boxes-only")
    assert boxes_only[mixed.columns.index("PxAP")] == "–"
    assert boxes_only[mixed.columns.index("MaxBoxAcc") + 1] == "–"  # no + SCG for it
    only_peak = results_frame(
        make_rows(
            dataset="d",
            split="test",
            backbone="b",
            method="cam",
            postprocessor="none",
            protocol="peak",
            metrics={"PeakIoU": 1.0, "PeakT": 2},
            versions="",
        )
    )
    assert [t.key for t in build_tables(only_peak)] == ["headline", "peak"]


def test_several_seeds_show_mean_and_std():
    rows = []
    for seed, value in ((0, 40.0), (1, 44.0)):
        rows += make_rows(
            dataset="d",
            split="test",
            backbone="b",
            method="cam",
            postprocessor="none",
            protocol="peak",
            seed=seed,
            versions="",
            metrics={"PeakIoU": value, "PeakT": 10},
        )
    table = next(t for t in build_tables(results_frame(rows)) if t.key == "peak")
    assert table.rows[0][table.columns.index("Peak-IoU")] == "42.00 ± 2.00"


def test_html_is_self_contained_and_escaped(rendered):
    html = (rendered[0] / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert 'src="http' not in html and 'href="http' not in html and "<link" not in html
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    figures = list((rendered[0] / "figures").glob("*.png"))
    assert html.count('src="data:image/png;base64,') == len(figures)
    markdown = (rendered[0] / "leaderboard.md").read_text()
    assert EVIL not in markdown


def test_figures_written_and_non_empty(rendered):
    out, _, written = rendered
    names = {path.name for path in (out / "figures").glob("*.png")}
    assert {
        "box_acc_v2_synth_tinyvgg.png",
        "peak_iou_synth_tinyvgg.png",
        "pxap_pr_synth_tinyvgg.png",
        "error_types_synth_tinyvgg.png",
        "overlays.png",
    } <= names
    for path in (out / "figures").glob("*.png"):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert all(p.exists() for k, p in written.items() if k.startswith("figure:"))


def test_results_csv_json_round_trip(tmp_path):
    results = make_results()
    csv_path, json_path = write_results(results, tmp_path)
    for path in (csv_path, json_path):
        back = read_results(path)
        pd.testing.assert_frame_equal(back, results, check_dtype=False)
    records = json.loads(json_path.read_text())
    assert records[0]["versions"] == '{"numpy":"test"}'


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        (
            "dataset,split,backbone,method,postprocessor,protocol,value\nd,t,b,m,p,spa,1\n",
            ".csv",
            "lack column(s): metric",
        ),
        ('{"not": "a list"', ".json", "cannot parse results"),
        (
            "dataset,split,backbone,method,postprocessor,protocol,metric,value\n"
            "d,t,b,m,p,spa,Top1Loc,1\nd,t,b,m,p,spa,Top5Loc,abc\n",
            ".csv",
            ":3: value 'abc'",
        ),
        ("a,b\n1,2\n", ".txt", "must end in .csv or .json"),
    ],
)
def test_read_results_errors_name_the_file(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(WsolbenchError) as caught:
        read_results(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_print_leaderboard_shows_rich_tables():
    console = Console(record=True, width=220)
    tables = print_leaderboard(make_results(), console)
    text = console.export_text()
    assert len(tables) == 6
    assert "SCG x RAM ablation" in text and "Peak-IoU" in text and EVIL in text


def test_cli_renders_from_results_files(tmp_path, capsys):
    run_dir = tmp_path / "run"
    write_results(make_results(), run_dir)
    write_curves(make_curves(), run_dir)
    out = tmp_path / "board"
    assert (
        main(
            ["leaderboard", str(run_dir / "results.csv"), "--out", str(out), "--title", "CLI board"]
        )
        == 0
    )
    assert (out / "leaderboard.md").read_text().startswith("# CLI board")
    figure = (out / "figures" / "box_acc_v2_synth_tinyvgg.png").read_bytes()
    assert figure[:8] == b"\x89PNG\r\n\x1a\n" and len(figure) > 1000  # a drawn figure
    pd.testing.assert_frame_equal(
        read_results(out / "results.csv"), make_results(), check_dtype=False
    )
    terminal = capsys.readouterr().out  # by default: the headline only
    assert "Headline" in terminal and "Localization error analysis" not in terminal
    again = ["leaderboard", str(run_dir / "results.csv"), "--out", str(out), "--verbose"]
    assert main(again) == 0
    assert "Localization error analysis" in capsys.readouterr().out


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "results.csv"
    bad.write_text("dataset,value\nx,1\n")
    assert main(["leaderboard", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "results.csv" in err and "Traceback" not in err


def test_an_explainer_axis_becomes_a_column_or_the_caption():
    rows = []
    for explainer, shift in (("gradcam", 0.0), ("scorecam", 3.0)):
        for postprocessor, bonus in (("none", 0.0), ("scg", 1.0)):
            for row in _setting_rows("synth", "cam", postprocessor, shift + bonus):
                rows.append(dict(row, explainer=explainer))
    both = build_tables(results_frame(rows))
    peak = next(t for t in both if t.key == "peak")
    headline = next(t for t in both if t.key == "headline")
    assert headline.columns[2:5] == ["Top-1 Cls", "GT-known Loc", "+ SCG"]  # Cls: plain only
    assert peak.columns[:2] == ["Method", "Explainer"]
    assert [row[:2] for row in peak.rows] == [["cam", "gradcam"], ["cam", "scorecam"]]
    assert (
        peak.rows[1][peak.columns.index("Peak-IoU") + 2] == "+1.00"
    )  # SCG vs plain, same explainer
    one = build_tables(results_frame([r for r in rows if r["explainer"] == "gradcam"]))
    assert "Explainer: gradcam" in one[1].caption and "Explainer" not in one[1].columns
