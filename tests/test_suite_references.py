"""Every built-in suite is its reference's run: each setting that has a reference cites it next
to its value, ``ref: <reference> <file>:<line> `<text of that line>``` (``... and ref: ...``
where two independent copies of the authors' tuned values are cited), and the value is the one
every cited text gives (numbers in order; booleans as written); a setting no file of the
reference states says so (``no ref: <why>``). The quotes were checked against the checkouts
(clovaai/wsolevaluation @ 96f4b88, Panxjia/SPA_CVPR2021 @ 32bf2d5, finallyupper/dual-cam @
4c5b97f, jjRen-xd/WSOL_RS @ e89246a, wpy1999/BAS @ 54c395e, vasgaowei/TS-CAM @ 25aece4,
hbai98/SCM @ be5bdfa) when they were written; here each value is checked against
its quotes, and each suite of a reference recipe must cite the settings that recipe has.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources

import pytest

from wsolbench.suite import BUILTIN_SUITES, load_suite

# The references, and the public copies of wsolevaluation's tuned-hyperparameter spreadsheet.
REFERENCES = ("wsolevaluation", "spa", "dual-cam", "WSOL_RS", "bas", "tscam", "scm")
CITED = re.compile(r"^(?P<key>[A-Za-z_]+) = (?P<value>.+?)  # (?P<comment>(?:ref|no ref): .+)$")
REF = re.compile(r"ref: (?P<ref>\S+) (?P<file>[\w./-]+):(?P<line>\d+) `(?P<quote>[^`]+)`")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
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
        "methods.bas.top_k",
    ),
    "tscam": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_milestones",
        "train.weight_decay",
    ),
    "scm": (
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.lr_milestones",
        "train.weight_decay",
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
    for line in text.splitlines():
        header = SECTION.match(line)
        if header:
            section = header["name"].strip().replace('"', "")
            continue
        cited = CITED.match(line)
        if cited:
            comment = cited["comment"]
            why = comment.removeprefix("no ref: ") if comment.startswith("no ref: ") else None
            refs = [] if why else [m.groupdict() for m in REF.finditer(comment)]
            out[f"{section}.{cited['key']}"] = {"value": cited["value"], "why": why, "refs": refs}
    return out


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
                numbers = [float(n) for n in NUMBER.findall(quote)]
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


# The baselines' suites and the protocol that is their reference's own scoring.
FAMILY_SUITES = {
    name: name.split("-")[0]
    for name in REAL_SUITES
    if name.split("-")[0] in ("bas", "tscam", "scm")
}


@pytest.mark.parametrize("name", sorted(FAMILY_SUITES))
def test_baseline_suites_score_under_their_own_protocol(name):
    """Each baseline suite lists its family's protocol beside spa's and wsolevaluation's, with
    the family's dataset and (where the family fixes one) box threshold cited, and builds that
    protocol with them."""
    from wsolbench.evaluation.protocols import create_protocols

    suite = load_suite(name)
    family = FAMILY_SUITES[name]
    assert {family, "spa", "wsolevaluation"} <= set(suite.evaluation["protocols"])
    cited = citations(name)
    assert "evaluation.protocols" in cited and "evaluation.dataset" in cited, name
    dataset = "ilsvrc" if "ILSVRC" in suite.dataset["metadata_root"] else "cub"
    assert suite.evaluation["dataset"] == dataset
    protocol = create_protocols(suite.evaluation, names=[family])[family]
    assert protocol.dataset == dataset
    if family == "scm":  # each metric at its best threshold of the scan
        assert protocol.threshold() is None and suite.evaluation["box_threshold"] is None
    else:
        assert "evaluation.box_threshold" in cited, name
        assert protocol.threshold() == suite.evaluation["box_threshold"]
        assert suite.evaluation["box_thresholds"] == [suite.evaluation["box_threshold"]]
