"""The terminal ends with the answer: `bench` and `leaderboard` print the headline table (80
columns) and where the full report is, `--verbose` every table; progress names the model, the
split and the stage, a line per stage in a log; a cached model says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from wsolbench.cli import main
from wsolbench.report import print_leaderboard, read_results

ROOT = Path(__file__).resolve().parents[1]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines()]


def test_bench_output_is_short_names_stages_and_says_cached(
    tiny_bench, tmp_path, capsys, monkeypatch, one_thread
):
    monkeypatch.setenv("COLUMNS", "80")
    copy = tiny_bench.copy_to(tmp_path / "copy")
    for scores in copy.runs.glob("tiny/spa-*/scores-*.json"):
        scores.unlink()  # spa: trained, scored again
    args = ["bench", "--suite", str(tiny_bench.suite.source), "--device", "cpu"]
    args += ["--runs-dir", str(copy.runs), "--out", str(copy.root / "lb")]
    args += ["--set", "methods.spa={}", "--set", "methods.has={}"]  # has: trained now
    assert main(args) == 0
    captured = capsys.readouterr()
    out, log = _lines(captured.out), captured.err
    # The output after the progress: short, 80 columns, the headline and the report's place.
    assert len(out) <= 60, captured.out
    # 80 columns, but for a line naming a path (never broken: it is copied); this test's
    # paths are long, `make bench`'s (runs/synthetic-default/cam-<hash>) fit.
    assert max(len(line) for line in out if str(tmp_path) not in line) <= 80
    assert sum("Headline" in line for line in out) == 1 and "  + SCG" in captured.out
    assert f"the full report: {copy.root / 'lb' / 'tiny' / 'report.html'}" in captured.out
    assert "more table(s) in the report; --verbose prints them here" in captured.out
    assert "GT-known and Top-1 Loc), peak" not in " ".join(captured.out.split())  # no notes
    cam = next(copy.runs.glob("tiny/cam-*"))
    assert f"model 1 of 3 (cam): cached: {cam}" in captured.out
    # Not a terminal (captured): a line per stage, naming model, split and stage; no bars.
    for stage in ("train (2) ...", "train done in", "infer val (", "infer test ("):
        assert f"model 3 of 3 (has): {stage}" in log, (stage, log)
    assert "epoch 2 of 2 done in" in log and "━" not in log
    assert "model 2 of 3 (spa): trained (every epoch is in the checkpoint)\n" in log
    assert "model 2 of 3 (spa): infer test (" in log


def test_bench_verbose_prints_every_table_with_each_note_once(
    tiny_bench, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    copy = tiny_bench.copy_to(tmp_path / "copy")
    args = ["bench", "--suite", str(tiny_bench.suite.source), "--device", "cpu", "--verbose"]
    args += ["--runs-dir", str(copy.runs), "--out", str(copy.root / "lb")]
    assert main([*args, "--set", "methods.spa={}"]) == 0
    out = capsys.readouterr().out
    parts = re.findall(r"\((\d+)/(\d+)\)", out)
    assert any(total != "1" for _, total in parts)  # a table split into parts at 80 columns
    # Each table's note is printed once, not under every part.
    flat = " ".join(out.split())
    assert flat.count("spa protocol (Top-1 Cls, GT-known and Top-1 Loc), peak protocol") == 1
    assert max(len(line) for line in out.splitlines() if str(tmp_path) not in line) <= 80


def test_the_default_suites_headline_fits(capsys):
    """The committed synthetic-default leaderboard (8 models, plain and + SCG) as `bench`
    ends by default: one table of at most 80 columns, well under 60 lines."""
    results = read_results([ROOT / "leaderboards" / "synthetic-default" / "results.json"])
    console = Console(record=True, width=80)
    print_leaderboard(results, console, verbose=False)
    lines = console.export_text().splitlines()
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    for metric in ("Top-1 Loc", "MaxBoxAccV2", "PxAP", "Peak-IoU"):
        assert metric in text
    assert text.count("\n  + SCG ") == 8  # a row per model and post-processor


@pytest.mark.parametrize("verbose", [False, True])
def test_leaderboard_default_is_the_headline(tiny_bench, tmp_path, capsys, verbose):
    args = ["leaderboard", str(tiny_bench.board / "results.csv"), "--out", str(tmp_path / "b")]
    assert main(args + (["--verbose"] if verbose else [])) == 0
    out = capsys.readouterr().out
    assert "Headline" in out and "the full report:" in out
    assert ("GT-known and Top-1 Loc), peak" in " ".join(out.split())) == verbose
