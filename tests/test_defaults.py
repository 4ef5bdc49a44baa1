"""One default per protocol setting: the protocols' constructors, the accumulators, the Python
API, the suites' [evaluation] table and the commands' flags all have wsolbench.defaults' value
(a new place with its own literal fails here)."""

from __future__ import annotations

import inspect

import pytest

from wsolbench import defaults
from wsolbench.cli import build_parser
from wsolbench.cli.evaluate import protocol_settings
from wsolbench.evaluation import (
    BoxAccumulator,
    ClassicLocAccumulator,
    PxAPAccumulator,
    evaluate_scoremaps,
)
from wsolbench.evaluation.protocols import Spa, WsolEvaluation, create_protocols
from wsolbench.suite import EVALUATION

SETTINGS = {
    "map_size": defaults.MAP_SIZE,
    "cam_curve_interval": defaults.CAM_CURVE_INTERVAL,
    "iou_thresholds": list(defaults.IOU_THRESHOLDS),
    "box_thresholds": list(defaults.BOX_THRESHOLDS),
}


def default_of(function, name: str):
    value = inspect.signature(function).parameters[name].default
    return list(value) if isinstance(value, tuple) else value


def command_defaults(command: str) -> dict:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return {a.dest: a.default for a in subparsers.choices[command]._actions}


def evaluate_command_default(name: str):
    """What `wsolbench evaluate` scores with when the flag is left out: the flag's default is
    None, so the wsolevaluation protocol built from the command line keeps its own."""
    args = build_parser().parse_args(["evaluate", "--scoremap-root", "m", "--metadata-root", "d"])
    protocol = create_protocols(protocol_settings(args), names=["wsolevaluation"])["wsolevaluation"]
    value = getattr(protocol, name)
    return list(value) if isinstance(value, tuple) else value


INFER = ["infer", "--checkpoint", "c", "--metadata-root", "m", "--image-root", "i", "--out", "o"]


def infer_command_default(name: str):
    """What `wsolbench infer` uses when neither the flag nor --suite gives it."""
    from wsolbench.cli.suite_flag import resolve

    return resolve(build_parser().parse_args(INFER), (name,), "none")[name]


def test_the_values_are_the_references():
    # wsolevaluation config.py:171 / evaluation.py:430, evaluation.py:41, config.py:181-182;
    # SPA utils/localization.py:54.
    assert SETTINGS == {
        "map_size": 224,
        "cam_curve_interval": 0.001,
        "iou_thresholds": [30, 50, 70],
        "box_thresholds": [0.2],
    }


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_one_default_everywhere(name):
    value = SETTINGS[name]
    protocol = Spa if name == "box_thresholds" else WsolEvaluation
    assert default_of(protocol, name) == value
    assert EVALUATION.options[name][1] == value  # a suite that leaves it out
    places = {
        "cam_curve_interval": [
            default_of(BoxAccumulator, "cam_curve_interval"),
            default_of(PxAPAccumulator, "cam_curve_interval"),
            default_of(evaluate_scoremaps, "cam_curve_interval"),
            evaluate_command_default("cam_curve_interval"),
        ],
        "iou_thresholds": [
            default_of(BoxAccumulator, "iou_thresholds"),
            default_of(evaluate_scoremaps, "iou_thresholds"),
            evaluate_command_default("iou_thresholds"),
        ],
        "map_size": [infer_command_default("map_size")],
        "box_thresholds": [default_of(ClassicLocAccumulator, "thresholds")],
    }[name]
    assert places and all(place == value for place in places), places


def test_the_families_dataset_has_one_default():
    """A family protocol's dataset (its box threshold and conventions) and fixed box threshold:
    the constructors', the suites' [evaluation] and `wsolbench evaluate`'s defaults agree."""
    from wsolbench.evaluation.protocols import Bas, Scm, TsCam

    for protocol in (Bas, Scm, TsCam):
        assert default_of(protocol, "dataset") == defaults.FAMILY_DATASET
        assert default_of(protocol, "box_threshold") is None
    assert EVALUATION.options["dataset"][1] == defaults.FAMILY_DATASET
    assert EVALUATION.options["box_threshold"][1] is None
    assert command_defaults("evaluate")["dataset"] is None  # None: the protocol's own


def test_one_eval_batch_size_everywhere():
    from wsolbench.engine.evaluate import score_split
    from wsolbench.engine.infer import predict

    value = defaults.EVAL_BATCH_SIZE
    assert EVALUATION.options["batch_size"][1] == value
    assert infer_command_default("batch_size") == value
    assert default_of(predict, "batch_size") == default_of(score_split, "batch_size") == value


def test_scg_figures_default_thresholds_are_scgs_own():
    """No --preset and no --suite: SCG's constructor defaults (the ilsvrc preset's values)."""
    from wsolbench.registry import POSTPROCESSORS

    args = build_parser().parse_args(
        ["scg", "figures", "--checkpoint", "c", "--data", "d", "--out", "o"]
    )
    assert args.preset is None and args.variant is None and args.suite is None
    scg = POSTPROCESSORS.get("scg")
    assert {k: getattr(scg(), k) for k in scg.presets["ilsvrc"]} == scg.presets["ilsvrc"]


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.dest in ("command", "scg_command", "data_command", "checkpoint_command"):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
    yield prefix, parser


def test_every_suite_door_is_the_one_door():
    """The commands that take --suite: bench runs one; the others read its scoring settings
    through wsolbench.cli.suite_flag (one help text, one resolution)."""
    from wsolbench.cli.suite_flag import add_suite_flag

    doors = {}
    for name, parser in _commands(build_parser()):
        flag = next((a for a in parser._actions if "--suite" in a.option_strings), None)
        if flag is not None and name != ("bench",):
            doors[" ".join(name)] = flag.help
    assert set(doors) == {"infer", "evaluate", "scg figures"}
    import argparse

    probe = argparse.ArgumentParser()
    add_suite_flag(probe, "X")
    expected = probe._actions[-1].help.split("take X from it")[1]
    assert all(text.endswith(expected) for text in doors.values()), doors
