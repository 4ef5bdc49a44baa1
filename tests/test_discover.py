"""Finding one's way: `wsolbench list suites`, `bench --help` naming every built-in suite and
`bench --dry-run` (resolved settings, what is cached, an estimate; nothing written)."""

from __future__ import annotations

import os

import pytest
from engine_helpers import snapshot
from rich.console import Console

from wsolbench.cli import main
from wsolbench.errors import WsolbenchError
from wsolbench.suite import BUILTIN_SUITES, load_suite, parse_suite, suite_summary


def test_every_builtin_suite_says_what_it_reproduces_and_costs():
    for name in BUILTIN_SUITES:
        suite = load_suite(name)  # through the schema
        assert suite.reproduces and suite.cost, name
        summary = suite_summary(name)  # what `list suites` shows: the suite's own fields
        assert summary["reproduces"] == suite.reproduces and summary["cost"] == suite.cost
        labels = [spec.label for spec in suite.methods] + [c.label for c in suite.classifiers]
        assert summary["methods"].endswith(", ".join(labels)), name


def test_the_text_fields_are_checked_by_the_schema():
    with pytest.raises(WsolbenchError, match="cost must be a string"):
        parse_suite({"name": "x", "cost": 3, "methods": {"cam": {}}})
    assert parse_suite({"name": "x", "methods": {"cam": {}}}).cost == ""


def test_list_suites_names_every_suite_within_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN_SUITES:
        assert f"\n{name} " in out, name
    assert "SPA Tables 2, 4, 6" in out and "GPU-h" in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80


def test_bench_help_lists_every_builtin_suite_within_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    words = set(out.translate(str.maketrans(",():", "    ")).split())
    assert set(BUILTIN_SUITES) <= words, set(BUILTIN_SUITES) - words
    assert "--dry-run" in out and "--verbose" in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80


def test_dry_run_shows_the_plan_and_writes_nothing(tiny_bench, tmp_path, monkeypatch):
    from wsolbench.dry_run import dry_run

    monkeypatch.chdir(tmp_path)
    suite = load_suite(tiny_bench.suite.source, ["methods.spa={}", "methods.has={}"])
    before = snapshot(tiny_bench.root)
    console = Console(record=True, width=80)
    plan = dry_run(suite, runs_dir=tiny_bench.runs, device="cpu", console=console)
    out = console.export_text()
    assert snapshot(tiny_bench.root) == before and not os.listdir(tmp_path)
    assert plan["jobs"] == {"cam": "cached", "spa": "cached", "has": "train"}
    assert f"cached: {tiny_bench.checkpoint('cam').parent}" in out
    assert "has          to train: 2 epochs" in out
    assert plan["seconds"] > 0 and "estimated time here: ~" in out
    assert "postprocessors.scg: fo_th=0.1" in out and "map_size=32" in out
    assert "nothing was written" in out
    # At 80 columns, but for a path: it stays whole, to be copied.
    assert max(len(line) for line in out.splitlines() if "/" not in line) <= 80


def test_dry_run_from_the_command_line(tiny_bench, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = str(tiny_bench.runs)
    args = ["bench", "--suite", str(tiny_bench.suite.source), "--runs-dir", runs, "--dry-run"]
    assert main([*args, "--set", "methods.spa={}", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "cached:" in out and "estimated time here: nothing to train" in out
    assert not os.listdir(tmp_path)
