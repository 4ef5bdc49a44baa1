"""The report of a real (tiny) bench run: per-image statistics beside the results, intervals in
the tables, and report.html's failure browser (structure; the page itself was checked in
headless Chromium)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsolbench.cli import main
from wsolbench.data.metadata import read_split
from wsolbench.report import per_image
from wsolbench.report.bootstrap import statistics
from wsolbench.report.results import PROTOCOL_METRICS


@pytest.fixture
def board(tiny_bench):
    """The shared tiny bench run (tests/conftest.py: cam and spa, none and scg), read in place."""
    return tiny_bench.suite, tiny_bench.board, tiny_bench.results


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.entries, self.options, self.urls = set(), [], {}, []
        self._select = None
        self.data_script, self._in_data = "", False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "select":
            self._select = attrs["id"]
            self.options[self._select] = []
        if tag == "option" and self._select:
            self.options[self._select].append(attrs["value"])
        if "entry" in attrs.get("class", "").split():
            self.entries.append(attrs["data-id"])
        for name in ("src", "href"):
            if name in attrs:
                self.urls.append(attrs[name])
        self._in_data = attrs.get("id") == "browser-data"

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_script += data


def test_per_image_statistics_reproduce_every_aggregate_metric(board):
    _, out, results = board
    records, images = per_image.load(out / "per_image.npz")
    assert len(records) == 4 and {r.key["postprocessor"] for r in records} == {"none", "scg"}
    checked = 0
    for record in records:
        rows = results[
            (results["method"] == record.key["method"])
            & (results["postprocessor"] == record.key["postprocessor"])
        ]
        values = dict(zip(zip(rows["protocol"], rows["metric"]), rows["value"]))
        named = {(p, metric) for p, metrics in PROTOCOL_METRICS.items() for metric in metrics}
        assert set(statistics(record)) <= named  # the protocols' own names, nothing else
        for key, stat in statistics(record).items():
            assert stat.point() == pytest.approx(values[key], abs=1e-9), (record.key, key)
            checked += 1
    assert checked == 4 * 21  # 10 + 3 at the test-chosen threshold spa, 6 wsolevaluation, 2 peak
    split = read_split(Path(board[0].dataset["root"]) / "metadata" / "test")
    assert images[0].image_ids == split.image_ids and len(images[0].pictures) == len(
        split.image_ids
    )


def test_tables_carry_intervals_and_marks(board):
    markdown = (board[1] / "leaderboard.md").read_text()
    assert "95 % bootstrap over test images" in markdown
    assert re.search(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", markdown)  # value [low, high]
    assert re.search(r"[+-]\d+\.\d\d(\\\*)? \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", markdown)  # paired Δ
    assert "figures/error_shift_synthetic_tinyvgg.png" in markdown


def test_report_html_has_a_self_contained_failure_browser(board):
    out = board[1]
    page = (out / "report.html").read_text()
    parser = _Page()
    parser.feed(page)
    for control in (
        "filter-method",
        "filter-postprocessor",
        "filter-type",
        "filter-from",
        "filter-changed",
        "browser-flip",
        "browser-canvas",
        "browser-transitions",
    ):
        assert control in parser.ids, control
    assert parser.options["filter-method"] == ["cam", "spa"]
    assert parser.options["filter-postprocessor"] == ["none", "scg"]
    assert parser.options["filter-type"] == ["all", "correct", "cls", "m-ins", "part", "more", "ot"]
    split = read_split(Path(board[0].dataset["root"]) / "metadata" / "test")
    assert parser.entries == split.image_ids  # every test image has its entry
    data = json.loads(parser.data_script)
    assert len(data["settings"]) == 4
    assert all(len(s["types"]) == len(split.image_ids) for s in data["settings"])
    # No network: every source is inline, nothing names another host.
    assert all(url.startswith("data:") for url in parser.urls)
    assert not re.search(r"(https?:)?//[a-z0-9]", re.sub(r"data:[^\"']+", "", page), re.IGNORECASE)
    assert "<link" not in page and "@import" not in page
    assert page.count('class="sortable"') == 6  # every measured table (no ablation here)


def test_leaderboard_cli_rerenders_with_the_per_image_statistics(board, tmp_path):
    _, out, results = board
    again = tmp_path / "again"
    assert main(["leaderboard", str(out / "results.csv"), "--out", str(again), "--quiet"]) == 0
    page = (again / "report.html").read_text()
    assert 'id="browser"' in page
    # The per-image statistics are carried over as they are.
    (records, images), (first, first_images) = (
        per_image.load(folder / "per_image.npz") for folder in (again, out)
    )
    assert [(r.key, r.meta) for r in records] == [(r.key, r.meta) for r in first]
    for record, original in zip(records, first):
        assert record.arrays.keys() == original.arrays.keys()
        for name, values in record.arrays.items():
            if name == "thumbs":  # JPEG pictures, decoded and encoded again: within a level or two
                np.testing.assert_allclose(values, original.arrays[name], atol=3)
            else:
                np.testing.assert_array_equal(values, original.arrays[name], err_msg=name)
    assert [i.image_ids for i in images] == [i.image_ids for i in first_images]

    def measured(path):  # the same tables, intervals and marks (the notes differ)
        return path.read_text().split("## Measured results", 1)[1].split("## Figures")[0]

    assert measured(again / "leaderboard.md") == measured(out / "leaderboard.md")
    pd.testing.assert_frame_equal(
        pd.read_csv(again / "results.csv"), pd.read_csv(out / "results.csv")
    )
    assert np.isfinite(results["value"]).all()
