"""`--suite` on `infer`, `evaluate` and `scg figures`: the command line scores a suite's
checkpoint as the bench did, so `infer --suite` + `evaluate --suite` gives the leaderboard's
wsolevaluation row; flags given explicitly win over the suite."""

from __future__ import annotations

import json

import pytest

from wsolbench.cli import main
from wsolbench.cli.suite_flag import resolve
from wsolbench.errors import WsolbenchError

METRICS = ("MaxBoxAcc", "MaxBoxAccV2", "PxAP")


def cli_scores(tiny_bench, tmp_path, postprocessor: str, *extra: str) -> dict:
    """`infer` + `evaluate` on the tiny bench's cam checkpoint, test split, masks and all."""
    data = tiny_bench.suite.dataset["root"]
    maps, output = tmp_path / f"maps-{postprocessor}", tmp_path / f"{postprocessor}.json"
    split = f"{data}/metadata/test"
    common = ["--metadata-root", split]
    assert (
        main(
            [
                "infer",
                "--checkpoint",
                str(tiny_bench.checkpoint("cam")),
                "--image-root",
                f"{data}/images",
                "--out",
                str(maps),
                "--postprocessor",
                postprocessor,
                "--workers",
                "0",
                "--no-progress",
                *common,
                *extra,
            ]
        )
        == 0
    )
    evaluate = ["evaluate", "--scoremap-root", str(maps), "--mask-root", f"{data}/masks"]
    suite = ["--suite", extra[extra.index("--suite") + 1]] if "--suite" in extra else []
    assert main([*evaluate, *common, "--output", str(output), *suite]) == 0
    return json.loads(output.read_text())


@pytest.mark.parametrize("postprocessor", ["none", "scg"])
def test_infer_and_evaluate_with_the_suite_give_the_leaderboard_row(
    tiny_bench, tmp_path, one_thread, postprocessor
):
    rows = tiny_bench.results
    rows = rows[
        (rows.method == "cam")
        & (rows.postprocessor == postprocessor)
        & (rows.protocol == "wsolevaluation")
    ].set_index("metric")["value"]
    source = str(tiny_bench.suite.source)
    scores = cli_scores(tiny_bench, tmp_path, postprocessor, "--suite", source)
    for metric in METRICS:
        assert scores[metric] == pytest.approx(rows[metric], abs=1e-9), metric
    # Without the suite: SCG's own thresholds, 224 px maps, another curve: other numbers, as
    # the issue saw (the door is what makes them equal).
    plain = cli_scores(tiny_bench, tmp_path / "plain", postprocessor)
    assert any(plain[metric] != pytest.approx(rows[metric], abs=1e-9) for metric in METRICS)


def test_flags_given_explicitly_win_over_the_suite(tiny_bench):
    from wsolbench.cli import build_parser

    source = str(tiny_bench.suite.source)
    base = ["infer", "--checkpoint", "c", "--metadata-root", "m", "--image-root", "i"]
    args = build_parser().parse_args([*base, "--out", "o", "--suite", source, "--map-size", "48"])
    settings = resolve(args, ("map_size", "image_size", "batch_size"), "scg")
    assert settings["map_size"] == 48  # the flag, not the suite's 32
    assert settings["image_size"] == 32 and settings["batch_size"] == 8  # the suite's
    assert settings["pp_options"] == tiny_bench.suite.postprocessors["scg"]
    from wsolbench.cli.infer import parse_options

    options = parse_options(["fo_th=0.3"], "scg", settings["pp_options"])
    assert options["fo_th"] == 0.3  # the flag wins, key by key
    # A post-processor the suite does not score is an error naming the suite's ones.
    suite = tiny_bench.suite
    with pytest.raises(WsolbenchError, match=r"no \[postprocessors.nonexistent\].*none, scg"):
        suite.scoring_settings("nonexistent")
    # `identity`, the alias, is the suite's `none`.
    assert suite.scoring_settings("identity")["pp_options"] == {}


def test_unknown_suite_is_one_line(capsys, tmp_path):
    code = main(
        [
            "evaluate",
            "--scoremap-root",
            str(tmp_path),
            "--metadata-root",
            str(tmp_path),
            "--suite",
            "no-such-suite",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown suite 'no-such-suite'" in err and "Traceback" not in err


def test_scg_figures_take_the_suites_thresholds_unless_a_preset_is_given(
    tiny_bench, tmp_path, monkeypatch
):
    import wsolbench.report.scg_figures as figures

    used = []
    monkeypatch.setattr(
        figures,
        "render_scg_figures",
        lambda model, dataset, out, scg, *a, **k: used.append(scg) or [],
    )
    data = tiny_bench.suite.dataset["root"]
    base = ["scg", "figures", "--checkpoint", str(tiny_bench.checkpoint("cam")), "--data", data]
    base += ["--num-images", "1", "--no-progress", "--device", "cpu"]
    source = str(tiny_bench.suite.source)
    assert main([*base, "--out", str(tmp_path / "a"), "--suite", source]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--suite", source, "--preset", "ilsvrc"]) == 0
    assert main([*base, "--out", str(tmp_path / "c")]) == 0
    suite_scg, preset_scg, plain_scg = used
    assert suite_scg.fo_th == tiny_bench.suite.postprocessors["scg"]["fo_th"] == 0.1
    assert preset_scg.fo_th == plain_scg.fo_th == 0.2  # the preset given wins; SCG's own


def test_the_plain_post_processor_is_none_in_list_and_help(capsys):
    assert main(["list", "postprocessors"]) == 0
    listed = capsys.readouterr().out
    assert "none" in listed and "identity" not in listed
    with pytest.raises(SystemExit):
        main(["infer", "--help"])
    help_text = capsys.readouterr().out
    assert "--postprocessor NAME" in help_text and "(default: none)" in help_text
    assert "identity" not in help_text
