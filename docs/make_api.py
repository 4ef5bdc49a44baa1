"""Write docs/api.md, the Python API's reference, from the public functions' docstrings.

    python docs/make_api.py            # after changing a public docstring or signature
    python docs/make_api.py --check    # exit 1 when docs/api.md is out of date

``tests/test_api_docs.py`` runs the check, so the page cannot drift from the code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "api.md"

# (module, names): the public API, in the order a reader meets it (README "Using wsolbench").
SECTIONS: list[tuple[str, list[str] | None]] = [
    ("wsolbench", None),  # everything in its __all__
    (
        "wsolbench.evaluation",
        [
            "evaluate_scoremaps",
            "MaxBoxAcc",
            "MaxBoxAccV2",
            "PxAP",
            "PeakIoU",
            "GTKnownLoc",
            "Top1Loc",
            "Evaluator",
            "create_protocols",
            "box_iou",
            "rescale_boxes",
            "localization_error_type",
        ],
    ),
    ("wsolbench.methods.scg", ["SCG", "SCGExtractor"]),
]

HEADER = """# Python API

Generated from the docstrings by `python docs/make_api.py` (do not edit by hand;
`tests/test_api_docs.py` fails when this page and the code disagree).

Conventions everywhere: images are (N, 3, H, W) float32, ImageNet-normalized; maps are
(N, H, W) or (N, K, H, W) float arrays or tensors, score maps in [0, 1]; boxes are integer
`(x0, y0, x1, y1)` with both corners inclusive (x: column, y: row, from the top-left pixel),
in the original image's pixels in metadata and in the map's pixels given to the metrics;
accuracies are in %.
"""


def _doc(obj, where: str) -> str:
    doc = inspect.getdoc(obj)
    if not doc:
        raise SystemExit(f"{where} has no docstring: write one (shapes, dtypes, ranges)")
    return doc


def _signature(obj) -> str:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    # Annotations as written: postponed ones are strings, which would print quoted.
    parameters = [
        p.replace(annotation=_Written(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    if isinstance(returns, str):
        returns = _Written(returns)
    return str(signature.replace(parameters=parameters, return_annotation=returns))


class _Written(str):
    """An annotation's source text, shown unquoted."""

    def __repr__(self) -> str:
        return str(self)


def _entry(module: str, name: str) -> list[str]:
    obj = getattr(importlib.import_module(module), name)
    where = f"{module}.{name}"
    if inspect.isclass(obj):
        kind = "exception" if issubclass(obj, BaseException) else "class"
        lines = [f"### `{where}{_signature(obj)}`", "", f"*{kind}*", "", _doc(obj, where), ""]
        for attr, member in vars(obj).items():
            if attr.startswith("_") and attr != "__call__":
                continue
            function = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            if not inspect.isfunction(function) or not function.__doc__:
                continue  # undocumented or inherited (torchmetrics' own methods)
            shown = f"{name}.{attr}"
            lines += [f"#### `{shown}{_signature(member.__get__(None, obj))}`", ""]
            lines += [inspect.cleandoc(function.__doc__), ""]
        return lines
    return [f"### `{where}{_signature(obj)}`", "", _doc(obj, where), ""]


def render() -> str:
    lines = [HEADER]
    for module, names in SECTIONS:
        imported = importlib.import_module(module)
        lines += [f"## `{module}`", "", inspect.getdoc(imported).split("\n\n")[0], ""]
        for name in names if names is not None else imported.__all__:
            lines += _entry(module, name)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check docs/api.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
