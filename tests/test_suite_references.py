"""Every built-in suite is its reference's run: each setting that has a reference cites it next
to its value, ``ref: <reference> <file>:<line> `<text of that line>``` (``... and ref: ...``
where two independent copies of the authors' tuned values are cited; ``... with ref: ...`` where
the second line defines a name the first one uses), and the value is the one every cited text
gives (numbers in order, ``a*b`` as its product, ``arange(start, stop, step)`` as its values, a
reference's lr schedule as the epochs its rule decays before; booleans as written); a setting no
file of the reference states says so (``no ref: <why>``). The quotes were checked against the
checkouts (clovaai/wsolevaluation @ 96f4b88, Panxjia/SPA_CVPR2021 @ 32bf2d5, finallyupper/dual-cam
@ 4c5b97f, jjRen-xd/WSOL_RS @ e89246a, wpy1999/BAS @ 54c395e, vasgaowei/TS-CAM @ 25aece4,
hbai98/SCM @ be5bdfa) when they were written; here each value is checked against its quotes, and
each suite of a reference recipe must cite the settings that recipe has.
"""

from __future__ import annotations

import math
import re
import tomllib
from importlib import resources

import pytest

from wsolbench.suite import BUILTIN_SUITES, load_suite

# The references, and the public copies of wsolevaluation's tuned-hyperparameter spreadsheet.
REFERENCES = ("wsolevaluation", "spa", "dual-cam", "WSOL_RS", "bas", "tscam", "scm")
CITED = re.compile(r"^(?P<key>[A-Za-z_]+) = (?P<value>.+?)  # (?P<comment>(?:ref|no ref): .+)$")
REF = re.compile(
    r"(?P<with>with )?ref: (?P<ref>\S+) (?P<file>[\w./-]+):(?P<line>\d+) `(?P<quote>[^`]+)`"
)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
PRODUCT = re.compile(r"(\d+)\s*\*\s*(\d+)")
ARANGE = re.compile(r"(?:\w+\.)*arange\(([^()]*)\)")

# How a recipe's reference states its lr schedule, as the 0-based epochs it decays before
# (lr_milestones; wsolbench/engine/recipes.py), from the quoted numbers and the suite's epochs.
SCHEDULES = {
    # BAS utils/lr.py:2 `if epoch!=0 and epoch % decay_epoch == 0:` (0-based epochs)
    "bas": lambda steps, epochs: [e for e in range(1, epochs) if e % steps[0] == 0],
    # TS-CAM's and SCM's lib/core/engine.py adjust_learning_rate_normal, called with the
    # 1-based epoch (train_cam.py `for epoch in range(1, cfg.SOLVER.NUM_EPOCHS+1)`): once before
    # every epoch divisible by one of LR_STEPS.
    "tscam": lambda steps, epochs: [
        e for e in range(epochs) if any((e + 1) % s == 0 for s in steps)
    ],
}
SCHEDULES["scm"] = SCHEDULES["tscam"]
SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]")

# The settings each reference recipe has, which its suites must cite (or say why not).
RECIPE_SETTINGS = {
    "spa": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_milestones",
        "train.weight_decay",
        "train.head_lr_multiplier",
        "methods.spa.alpha",
        "methods.spa.tau",
        "methods.spa.gap",
        "methods.spa.ram_start",
    ),
    "wsolevaluation": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_step",
        "train.weight_decay",
        "train.head_lr_multiplier",
    ),
    "bas": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_milestones",
        "train.weight_decay",
        "train.head_lr_multiplier",
        "train.seed",
        "methods.bas.top_k",
    ),
    "tscam": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_milestones",
        "train.weight_decay",
        "train.seed",
        "methods.tscam.drop_path",
    ),
    "scm": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_milestones",
        "train.weight_decay",
        "train.seed",
        "methods.scm.drop_path",
        "methods.scm.num_layers",
    ),
}
EVERY_SUITE = (
    "dataset.image_size",
    "dataset.resize_size",
    "postprocessors.scg.fo_th",
    "postprocessors.scg.so_th",
    "postprocessors.scg.so_weight",
    "postprocessors.scg.fg_th",
    "postprocessors.scg.bg_th",
    "evaluation.cam_curve_interval",
    "evaluation.iou_thresholds",
    "evaluation.map_size",
    "evaluation.ten_crop",
)
REAL_SUITES = [name for name in BUILTIN_SUITES if load_suite(name).dataset["kind"] == "metadata"]
# The suites that train (the classifiers' suite scores models as they are).
TRAINING = {name for name in REAL_SUITES if load_suite(name).methods}


def citations(name: str) -> dict[str, dict]:
    """``section.key`` -> the citation on its line."""
    text = resources.files("wsolbench.suites").joinpath(f"{name}.toml").read_text("utf-8")
    section, out = "", {}
    lines = iter(text.splitlines())
    for line in lines:
        header = SECTION.match(line)
        if header:
            section = header["name"].strip().replace('"', "")
            continue
        cited = CITED.match(line)
        if cited:
            value, comment = cited["value"], cited["comment"]
            if value == "[":  # an array over several lines, cited on its first
                value = "[" + " ".join(iter(lambda: next(lines), "]")) + "]"
            why = comment.removeprefix("no ref: ") if comment.startswith("no ref: ") else None
            refs = []
            for match in [] if why else REF.finditer(comment):
                if match["with"] and refs:  # defines a name the previous quote uses
                    refs[-1]["with"].append(match["quote"])
                else:
                    refs.append(match.groupdict() | {"with": []})
            out[f"{section}.{cited['key']}"] = {"value": value, "why": why, "refs": refs}
    return out


def quoted_numbers(quote: str, definitions: list[str] = ()) -> list[float]:
    """The numbers a cited text gives, in order, with each ``name=value`` of ``definitions`` put
    in for its name, ``a*b`` as its product and ``arange(start, stop, step)`` as its values."""
    for definition in definitions:
        name, _, value = definition.partition("=")
        quote = re.sub(rf"\b{re.escape(name.strip())}\b", value.strip(), quote)
    quote = PRODUCT.sub(lambda m: str(int(m[1]) * int(m[2])), quote)

    def arange(match: re.Match) -> str:
        start, stop, step = (float(n) for n in NUMBER.findall(match[1]))
        count = math.ceil(round((stop - start) / step, 9))
        return ", ".join(repr(round(start + i * step, 10)) for i in range(count))

    quote = ARANGE.sub(arange, quote)
    return [float(n) for n in NUMBER.findall(quote)]


def cited_value(citation: dict):
    return tomllib.loads(f"value = {citation['value']}")["value"]


@pytest.mark.parametrize("name", REAL_SUITES)
def test_every_cited_value_is_the_cited_texts(name):
    cited = citations(name)
    assert cited, name
    suite = load_suite(name)
    for key, citation in cited.items():
        value = cited_value(citation)
        section, _, setting = key.rpartition(".")
        table = _table(suite, section)
        assert table[setting] == value, (name, key)  # the line is what the suite loads
        if citation["why"] is not None:
            assert len(citation["why"]) > 20, (name, key)  # a reason, not a placeholder
            continue
        assert citation["refs"], (name, key)
        for ref in citation["refs"]:
            assert ref["ref"] in REFERENCES, (name, key)
            assert int(ref["line"]) > 0 and ref["quote"].strip(), (name, key)
            quote = ref["quote"]
            if isinstance(value, bool):
                assert str(value).lower() in quote.lower(), (name, key, quote)
            elif isinstance(value, (int, float, list)):
                numbers = quoted_numbers(quote, ref["with"])
                if key == "train.lr_milestones" and suite.train["recipe"] in SCHEDULES:
                    steps = [int(n) for n in numbers]
                    numbers = SCHEDULES[suite.train["recipe"]](steps, suite.train["epochs"])
                expected = [float(v) for v in (value if isinstance(value, list) else [value])]
                assert numbers == expected, (name, key, quote)


@pytest.mark.parametrize("name", REAL_SUITES)
def test_every_reference_setting_is_cited(name):
    suite = load_suite(name)
    cited = citations(name)
    required = list(EVERY_SUITE)
    if name in TRAINING:
        required += RECIPE_SETTINGS[suite.train["recipe"]]
    if suite.dataset["mask_root"] == "" or "ILSVRC" in suite.dataset["metadata_root"]:
        required.append("evaluation.box_thresholds")  # a split with boxes: the spa protocol
    if suite.dataset["metadata_root"].endswith("CUB"):
        required.append("dataset.metadata_style")  # whose splits and boxes
    missing = [key for key in required if key not in cited]
    assert not missing, (name, missing)


def test_cub_suites_need_their_references_metadata():
    styles = {name: load_suite(name).dataset["metadata_style"] for name in REAL_SUITES}
    assert styles["cub-resnet50"] == "wsolevaluation"
    assert styles["cub-vgg16"] == styles["cub-inceptionv3"] == "spa"
    assert all(style == "" for name, style in styles.items() if "cub" not in name)


def test_the_citation_pattern_reads_every_quote():
    line = "lr = 0.01  # ref: spa a.sh:8 `--lr=0.001` and ref: dual-cam b.sh:3 `--lr 0.01` (x)"
    comment = CITED.match(line)["comment"]
    quotes = [m["quote"] for m in REF.finditer(comment)]
    assert quotes == ["--lr=0.001", "--lr 0.01"]
    assert [float(n) for n in NUMBER.findall(quotes[0])] == [0.001]  # != 0.01: would fail


def _table(suite, section: str) -> dict:
    if section.startswith("methods."):
        label = section.removeprefix("methods.")
        return next(spec.hparams for spec in suite.methods if spec.label == label)
    if section.startswith("postprocessors."):
        return suite.postprocessors[section.removeprefix("postprocessors.")]
    return getattr(suite, section)


def test_derived_quotes_give_their_values():
    assert quoted_numbers("default=32*4)") == [128.0]  # a product, not 32 and 4
    grid = quoted_numbers("list(np.arange(0, 1, step))", ["step=.25"])
    assert grid == [0.0, 0.25, 0.5, 0.75]  # the name the `with` line defines
    with pytest.raises(ValueError):  # the step left undefined: the check fails
        quoted_numbers("list(np.arange(0, 1, step))")
    assert SCHEDULES["bas"]([3], 9) == [3, 6]  # ILSVRC/train.py decay_epoch=3 over 9 epochs
    assert SCHEDULES["tscam"]([10, 12], 20) == [9, 11, 19]  # 1-based 10, 12, 20
    assert SCHEDULES["tscam"]([30], 60) == [29, 59]
    line = (
        "x = [  # ref: scm a.py:2 `f(0, 1, s)` with ref: scm a.py:1 `s=.5` and ref: bas b.py:3 `y`"
    )
    with_refs = [m["with"] for m in REF.finditer(CITED.match(line)["comment"])]
    assert with_refs == [None, "with ", None]
