"""A new protocol is one class and a registry line: one defined here, in the test, flows through
``wsolbench evaluate``, ``bench``, the per-image records, the bootstrap and every report format
(Markdown, HTML, terminal, CSV / JSON) with no other file changed."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest
from engine_helpers import load_tiny_suite

from wsolbench.cli import main
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols import ColumnSpec, MetricSpec, Protocol, TableSpec
from wsolbench.evaluation.resampling import Statistic, percent
from wsolbench.registry import PROTOCOLS
from wsolbench.report import per_image
from wsolbench.report.bootstrap import Bootstrap


class PeakHits(CountMetric):
    record_fields = {"hit": bool}

    def __init__(self):
        super().__init__()
        self.add_count("hits")
        self.add_count("count")

    def update(self, hits) -> None:
        hits = np.asarray(hits, bool)
        self.add_counts("hits", int(hits.sum()))
        self.add_counts("count", len(hits))
        self.add_record({"hit": hits})

    def compute(self) -> dict:
        return {"PeakInBox": 100.0 * int(self.hits) / int(self.count), **self.computed_records()}


class PointingGame(Protocol):
    """The pointing game: is the raw map's maximum inside a GT box (at the original size)?"""

    name = "pointing"
    rules = {
        "frame": "the original image",
        "preparation": "none (the raw map's argmax, scaled)",
        "box": "none (a point)",
        "iou": "inside any GT box",
        "averaging": "images",
        "threshold": "none",
    }

    def specs(self):
        return (MetricSpec("PeakInBox", "Peak in a GT box", quantity="GT-known Loc"),)

    def create_metrics(self, boxes: bool, masks: bool):
        return {"pointing": PeakHits()} if boxes else {}

    def update(self, metrics, batch) -> None:
        hits = []
        for source, boxes, (width, height) in zip(batch.sources, batch.gt.boxes, batch.gt.sizes):
            raw = np.asarray(source.cpu() if hasattr(source, "cpu") else source, np.float64)
            y, x = np.unravel_index(int(raw.argmax()), raw.shape)
            px, py = (x + 0.5) * width / raw.shape[1], (y + 0.5) * height / raw.shape[0]
            boxes = np.asarray(boxes).reshape(-1, 4)
            hits.append(
                bool(((boxes[:, 0] <= px) & (px <= boxes[:, 2] + 1) & (boxes[:, 1] <= py)
                      & (py <= boxes[:, 3] + 1)).any())
            )  # fmt: skip
        metrics["pointing"].update(hits)

    def results(self, computed: Mapping[str, dict], choice=None) -> dict:
        return {"PeakInBox": computed["pointing"]["PeakInBox"]} if "pointing" in computed else {}

    def statistics(self, arrays, meta):
        if "pointing.hit" not in arrays:
            return {}
        return {"PeakInBox": Statistic(arrays["pointing.hit"][:, None].astype(np.float32), percent)}

    def tables(self):
        return (
            TableSpec(
                "pointing",
                "Pointing game: the map's maximum inside a GT box",
                "pointing protocol (defined in a test).",
                (ColumnSpec("pointing", "PeakInBox"),),
                order=65,
            ),
        )


@pytest.fixture
def pointing():
    PROTOCOLS.register("pointing")(PointingGame)  # the registry line
    yield
    PROTOCOLS._entries.pop("pointing")


def test_a_new_protocol_flows_through_evaluate(pointing, tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    ids = ["a.png", "b.png", "c.png"]
    (meta / "image_ids.txt").write_text("\n".join(ids))
    (meta / "class_labels.txt").write_text("\n".join(f"{i},0" for i in ids))
    (meta / "image_sizes.txt").write_text("\n".join(f"{i},40,40" for i in ids))
    (meta / "localization.txt").write_text("a.png,0,0,19,19\nb.png,0,0,9,9\nc.png,20,20,39,39\n")
    maps = tmp_path / "maps"
    maps.mkdir()
    for image_id, (y, x) in zip(ids, [(1, 1), (3, 3), (3, 3)]):  # peaks: in, out, in
        raw = np.zeros((4, 4), np.float32)
        raw[y, x] = 5.0
        np.save(maps / f"{image_id}.npy", raw)
    out = tmp_path / "out.json"
    argv = ["evaluate", "--metadata-root", str(meta), "--scoremap-root", str(maps)]
    assert main([*argv, "--protocol", "pointing", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "pointing" and result["PeakInBox"] == pytest.approx(200 / 3)
    # `all` includes it, beside the built-in protocols that need no predictions.
    assert main([*argv, "--protocol", "all", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["protocols"]["pointing"]["PeakInBox"] == pytest.approx(
        200 / 3
    )


def test_a_new_protocol_flows_through_bench_bootstrap_and_every_report(
    pointing, tiny_bench, tiny_data, tmp_path
):
    bench = tiny_bench.copy_to(tmp_path)
    suite = load_tiny_suite(
        tmp_path,
        tiny_data,
        ["methods.spa={}", 'evaluation.protocols=["spa", "wsolevaluation", "peak", "pointing"]'],
    )
    from rich.console import Console

    from wsolbench import bench as bench_module

    console = Console(width=200, record=True)
    results = bench_module.run_bench(
        suite, runs_dir=bench.runs, out_dir=tmp_path / "lb", device="cpu", console=console,
        progress=False, verbose=True,  # every table in the terminal, the toy's included
    )  # fmt: skip
    rows = results[results["protocol"] == "pointing"]
    assert set(rows["metric"]) == {"PeakInBox"} and len(rows) == 4  # 2 methods x 2 pp
    board = tmp_path / "lb" / suite.name
    title = "Pointing game: the map's maximum inside a GT box"
    cross = "The same maps under every protocol"
    markdown = (board / "leaderboard.md").read_text()
    assert title in markdown and cross in markdown
    html = (board / "report.html").read_text()
    assert "Pointing game" in html and cross in html
    assert title in " ".join(console.export_text().split())
    assert "pointing" in (board / "results.csv").read_text()
    assert any(
        r["protocol"] == "pointing" for r in json.loads((board / "results.json").read_text())
    )
    records, _ = per_image.load(board / per_image.FILE_NAME)
    assert all("pointing.hit" in r.arrays for r in records)
    boot = Bootstrap(records, resamples=200)
    fields = {k: v for k, v in records[0].key.items() if k != "seed"}
    interval = boot.interval(fields, "PeakInBox", "pointing")
    assert interval is not None and interval.low <= interval.value <= interval.high
    # the cross-protocol pair table: the paired difference of GT-known between spa and it
    assert (
        boot.difference(fields, fields, "GTKnownLoc", "spa", "pointing", metric_b="PeakInBox")
        is not None
    )


def test_tables_take_no_protocol_state_keys():
    """The report code names no accumulator state key: every per-image record key a protocol
    reads is read in the protocol's own module."""
    from pathlib import Path

    import wsolbench.report as report

    folder = Path(report.__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text()
        for key in ('"classic.', '"box.', '"pxap.', '"peak.', '"tscam.', '"dawsol.'):
            assert key not in text, (path.name, key)
