"""The name rule (wsolbench.names) and the one schema mechanism (wsolbench.schema) of every
suite table, and the registry's option checks (docs/bad-input.md, rules 1 and 2)."""

from __future__ import annotations

import pytest

from wsolbench.errors import WsolbenchError
from wsolbench.names import check_label, relative_path_problem
from wsolbench.options import Option, check
from wsolbench.schema import Entries, KeyNames, Keys
from wsolbench.suite import parse_suite

BASE = {
    "name": "tiny",
    "dataset": {"kind": "synthetic", "root": "data/tiny"},
    "train": {"epochs": 1},
    "methods": {"cam": {}},
}


def suite_with(**tables):
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in BASE.items()}
    raw.update(tables)
    return parse_suite(raw, "suite.toml")


# ----------------------------------------------------------------------------- one name rule

UNSAFE_LABELS = ["../evil", "/tmp/x", "a/b", "", ".hidden", "x" * 101, "a b", "é"]


@pytest.mark.parametrize("label", UNSAFE_LABELS)
def test_the_name_rule_refuses_what_would_not_be_one_plain_folder_name(label):
    with pytest.raises(WsolbenchError, match="is not allowed: expected a folder name"):
        check_label(label, "methods")


@pytest.mark.parametrize(
    "section, table",
    [
        ("methods", {"../evil": {"method": "cam"}}),
        ("explainers", {"../evil": {"explainer": "cam"}}),
        ("classifiers", {"/tmp/evil": {"model": "resnet18"}}),
        ("postprocessors", {"../none": {}}),
    ],
)
def test_every_table_whose_labels_become_paths_applies_the_name_rule(section, table):
    with pytest.raises(WsolbenchError, match=r"the label of \[" + section):
        suite_with(**{section: table})


def test_the_suite_name_applies_the_name_rule():
    with pytest.raises(WsolbenchError, match="name = '../x' is not allowed"):
        parse_suite({**BASE, "name": "../x"}, "suite.toml")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("../x.png", "climbs out"),
        ("/etc/passwd", "relative"),
        ("C:x.png", "relative"),
        ("a/" + "b" * 241 + ".png", "longer than 240 bytes"),
        ("a\x00b", "NUL"),
        ("", "empty"),
    ],
)
def test_paths_read_from_data_follow_one_rule(text, problem):
    assert problem in relative_path_problem(text)


# ----------------------------------------------------------------------------- one schema


def test_keys_check_types_ranges_and_unknown_keys():
    keys = Keys({"size": (Option(int, low=1, high=10), 5), "name": (Option(str), "x")})
    names = KeyNames({"t.size": "t.size=0"})
    assert keys.check({}, "t", "f", names) == {"size": 5, "name": "x"}
    assert keys.check({"size": 2}, "t", "f", names, defaults=False) == {"size": 2}
    with pytest.raises(WsolbenchError, match=r"t.size \(from --set t.size=0\) = 0 is not allowed"):
        keys.check({"size": 0}, "t", "f", names)
    with pytest.raises(WsolbenchError, match="unknown key 't.colour'"):
        keys.check({"colour": 1}, "t", "f", names)
    with pytest.raises(WsolbenchError, match=r"\[t\] must be a table"):
        keys.check([1], "t", "f", names)


def test_entries_name_their_registered_entry_and_check_its_options():
    entries = Entries("post-processor", example="none")
    checked = entries.check({"scg": {"fo_th": 0.5}, "identity": {}}, "pp", "f", KeyNames())
    assert [(e.label, e.name, e.options) for e in checked] == [
        ("scg", "scg", {"fo_th": 0.5}),
        ("identity", "none", {}),  # the plain post-processor's one listed name
    ]
    with pytest.raises(WsolbenchError, match="pp.blur: unknown post-processor 'blur'"):
        entries.check({"blur": {}}, "pp", "f", KeyNames())
    with pytest.raises(WsolbenchError, match=r"\[pp\] must name at least one table"):
        entries.check({}, "pp", "f", KeyNames())


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"methods": {"has": {"grid_size": 0}}}, "methods.has.grid_size = 0 is not allowed"),
        ({"methods": {"has": {"drop_rate": 0.0}}}, "methods.has.drop_rate = 0.0 is not allowed"),
        ({"methods": {"spg": {"thresholds": []}}}, "methods.spg.thresholds = [] is not allowed"),
        ({"methods": {"spg": {"thresholds": [[0.5]] * 3}}}, "methods.spg.thresholds"),
        ({"methods": {"cutmix": {"cutmix_prob": 0.0}}}, "methods.cutmix.cutmix_prob"),
        ({"methods": {"x": {"method": 3}}}, "methods.x.method = 3 is not allowed"),
        ({"postprocessors": {"scg": {"fo_th": [1, 2]}}}, "postprocessors.scg.fo_th = [1, 2]"),
        ({"postprocessors": {"scg": {"chunk_size": "big"}}}, "postprocessors.scg"),
        ({"explainers": {"g": {"explainer": "gradcam", "target_layers": []}}}, "target_layers"),
        ({"explainers": {"g": {"explainer": "gradcam", "batch": 1}}}, "unknown option 'batch'"),
        ({"classifiers": {"r": {"weights": 3}}}, "classifiers.r.weights = 3 is not allowed"),
        ({"classifiers": {"r": {"tap_layers": []}}}, "classifiers.r.tap_layers = []"),
        ({"classifiers": {"r": {"colour": 1}}}, "unknown key 'classifiers.r.colour'"),
        ({"evaluation": {"map_size": 100_000}}, "evaluation.map_size = 100000 is not allowed"),
        ({"dataset": {"kind": "synthetic", "synthetic": {"distractor_blobs": [1]}}}, "distractor"),
        ({"train": {"epochs": 1, "recipe": "fast"}}, "train.recipe: unknown recipe 'fast'"),
    ],
)
def test_option_errors_name_the_key_and_what_is_allowed_in_the_projects_words(tables, message):
    with pytest.raises(WsolbenchError) as error:
        suite_with(**tables)
    text = str(error.value)
    assert message in text and text.startswith("suite.toml: "), text
    assert "not supported between" not in text and "cannot unpack" not in text


def test_a_label_may_not_name_both_a_method_and_a_classifier():
    with pytest.raises(WsolbenchError, match="'cam' labels both"):
        suite_with(classifiers={"cam": {"model": "resnet18"}})


def test_a_recipe_registered_later_is_accepted():
    from wsolbench.engine.recipes import RECIPES, Recipe, get_recipe, register_recipe

    spa = get_recipe("spa")
    register_recipe(Recipe("spa-copy", spa.schedule, spa.groups, spa.lr_factor))
    try:
        suite = suite_with(train={"epochs": 1, "recipe": "spa-copy"})
        assert suite.train["recipe"] == "spa-copy"
    finally:
        RECIPES._entries.pop("spa-copy")


def test_registered_names_are_checked_by_the_registry():
    assert check("identity", Option(str, registry="post-processor"), "--postprocessor") == "none"
    with pytest.raises(WsolbenchError, match="--method: unknown method 'gradcam9'"):
        check("gradcam9", Option(str, registry="method"), "--method")
