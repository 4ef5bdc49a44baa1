"""Suite files: the built-in suites parse, and every mistake gives one clear message."""

from importlib import resources
from pathlib import Path

import pytest

from wsolbench.cli import main
from wsolbench.errors import WsolbenchError
from wsolbench.suite import BUILTIN_SUITES, load_suite

MINIMAL = """
name = "mini"
[dataset]
kind = "synthetic"
root = "data/mini"
[methods.cam]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BUILTIN_SUITES)
def test_builtin_suites_parse(name):
    suite = load_suite(name)
    assert suite.name == name
    assert (suite.methods or suite.classifiers) and "none" in suite.postprocessors


def test_builtin_suites_name_their_table_and_recipe():
    recipes = {}
    for name in BUILTIN_SUITES:
        if not load_suite(name).methods:
            assert name == "ilsvrc-classifiers"  # trains nothing: classifiers as they are
            continue
        text = resources.files("wsolbench.suites").joinpath(f"{name}.toml").read_text()
        assert "recipe = " in text, name  # set explicitly, not left to the default
        recipes[name] = load_suite(name).train["recipe"]
    assert recipes["cub-vgg16"] == recipes["ilsvrc-inceptionv3"] == "spa"
    assert recipes["ilsvrc-inceptionv3-table3"] == recipes["openimages-vgg16"] == "wsolevaluation"
    assert "Table 3" in load_suite("ilsvrc-inceptionv3-table3").description


def test_default_suite_runs_all_seven_methods_plain_and_scg():
    suite = load_suite("synthetic-default")
    methods = {spec.method for spec in suite.methods}
    assert {"cam", "has", "acol", "spg", "adl", "cutmix", "spa"} <= methods
    assert set(suite.postprocessors) == {"none", "scg"}
    labels = {spec.label: spec for spec in suite.methods}
    assert labels["spa-noram"].method == "spa" and labels["spa-noram"].hparams["alpha"] == 0.0


def test_minimal_suite_takes_defaults(tmp_path):
    from wsolbench.engine.config import TrainConfig

    suite = load_suite(write(tmp_path, MINIMAL))
    # One training configuration: the suite's [train] defaults resolve to TrainConfig's
    # (workers included, capped at the machine's CPUs on both paths).
    defaults = TrainConfig(data=".")
    resolved = TrainConfig(data=".", **suite.train)
    assert all(getattr(resolved, key) == getattr(defaults, key) for key in suite.train)
    assert suite.train["epochs"] == 40 and suite.postprocessors == {"none": {}}
    assert suite.methods[0].label == "cam" and suite.methods[0].hparams == {}


def test_overrides_apply_and_change_the_run_hash(tmp_path):
    path = write(tmp_path, MINIMAL)
    base = load_suite(path)
    changed = load_suite(path, ["train.epochs=3", "methods.cam.seed_unused=1"][:1])
    assert changed.train["epochs"] == 3
    assert base.run_hash(base.methods[0]) != changed.run_hash(changed.methods[0])
    assert load_suite(path).run_hash(base.methods[0]) == base.run_hash(base.methods[0])


@pytest.mark.parametrize(
    "text, message",
    [
        (MINIMAL + "[methods.foo]\n", "unknown method 'foo'"),
        (
            MINIMAL.replace("[methods.cam]", "[methods.cam]\ndrop_rate = 0.5"),
            "unknown hyperparameter 'drop_rate'",
        ),
        (
            MINIMAL + "[train]\nepochs = 'ten'\n",
            "train.epochs = 'ten' is not allowed: expected an integer in [1, 100000]",
        ),
        (
            MINIMAL + "[train]\nepochs = 0\n",
            "train.epochs = 0 is not allowed: expected an integer in [1, 100000]",
        ),
        (MINIMAL + "[train]\nepoch = 3\n", "unknown key 'train.epoch'"),
        (
            MINIMAL + "[train]\nrecipe = 'caffe'\n",
            "train.recipe: unknown recipe 'caffe' (available: bas, scm, spa, tscam, wsolevaluation)",
        ),
        (
            MINIMAL + "[train]\nrecipe = 1\n",
            "train.recipe = 1 is not allowed: expected a registered recipe (bas, scm, spa, tscam, wsolevaluation)",
        ),
        (MINIMAL + "[evaluation]\nbox_thresholds = [1.5]\n", "evaluation.box_thresholds"),
        (MINIMAL + "[postprocessors.blur]\n", "postprocessors.blur: unknown post-processor"),
        (MINIMAL + "[postprocessors.scg]\nfoo = 1\n", "postprocessors.scg: unknown option 'foo'"),
        (
            MINIMAL.replace('kind = "synthetic"', 'kind = "metadata"'),
            "dataset.image_root is required",
        ),
        ("colour = 1\n" + MINIMAL, "unknown top-level key 'colour'"),
        ("name = [\n", "invalid TOML"),
    ],
)
def test_suite_errors_name_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(WsolbenchError) as error:
        load_suite(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_unknown_suite_and_bad_override():
    with pytest.raises(WsolbenchError, match="unknown suite 'nope'"):
        load_suite("nope")
    with pytest.raises(WsolbenchError, match="--set epochs=3: expected section.key=value"):
        load_suite("synthetic-default", ["epochs=3"])


def test_cli_reports_suite_errors_in_one_line(tmp_path, capsys):
    path = write(tmp_path, MINIMAL + "[methods.foo]\n")
    assert main(["bench", "--suite", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'foo'" in err and "Traceback" not in err
    assert main(["bench", "--suite", str(write(tmp_path, MINIMAL)), "--methods", "spa"]) == 2
    assert "not in suite mini" in capsys.readouterr().err
