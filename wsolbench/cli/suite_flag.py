"""``--suite`` on ``infer``, ``evaluate`` and ``scg figures``: one door to a suite's scoring.

The flags it sets default to None on the command line; ``resolve`` fills each one the user left
out from the suite's ``Suite.scoring_settings`` when ``--suite`` is given, else from
``wsolbench.defaults`` (``DEFAULTS``), so a checkpoint of a suite's run is scored as the bench
scored it, and a flag given explicitly always wins.
"""

from __future__ import annotations

import argparse
from typing import Any

from wsolbench import defaults

# A setting's value when neither the flag nor --suite gives one (None: the command decides,
# e.g. the checkpoint's training image size).
DEFAULTS: dict[str, Any] = {
    "map_size": defaults.MAP_SIZE,
    "batch_size": defaults.EVAL_BATCH_SIZE,
    "image_size": None,
    "cam_curve_interval": None,  # the protocol's own (defaults.CAM_CURVE_INTERVAL)
    "iou_thresholds": None,  # the protocol's own (defaults.IOU_THRESHOLDS)
}


def add_suite_flag(parser: argparse.ArgumentParser, settings: str) -> None:
    """The ``--suite NAME`` flag; ``settings`` says in words which flags it sets."""
    from wsolbench.suite import BUILTIN_SUITES

    parser.add_argument(
        "--suite",
        metavar="NAME",
        default=None,
        help=f"score as this suite's bench does: take {settings} from it, unless given here "
        f"(a built-in suite, e.g. {BUILTIN_SUITES[0]}: `wsolbench list suites`, or a suite "
        "TOML file; default: none)",
    )


def resolve(
    args: argparse.Namespace, keys: tuple[str, ...], postprocessor: str | None = None
) -> dict:
    """The effective value of each setting in ``keys`` (and, with ``--suite``, the suite's
    ``pp_options`` for ``postprocessor``): the flag's, else the suite's, else ``DEFAULTS``'."""
    suite_values: dict[str, Any] = {}
    if getattr(args, "suite", None):
        from wsolbench.suite import load_suite

        suite_values = load_suite(args.suite).scoring_settings(postprocessor)
    resolved = {}
    for key in keys:
        given = getattr(args, key, None)
        resolved[key] = given if given is not None else suite_values.get(key, DEFAULTS[key])
    resolved["pp_options"] = suite_values.get("pp_options", {})
    return resolved
