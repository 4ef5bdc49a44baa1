"""A non-editable installation carries everything the commands read: the published numbers
(`leaderboard --with-reported`), the page templates and the suites.

The wheel is built offline from a copy of the source (setuptools writes build/ beside it) and
unpacked into a folder that is imported instead of the checkout, with the editable finder
removed: what runs is exactly what `pip install .` installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from wsolbench.report import make_rows, results_frame, write_results

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "wsolbench", "methods", "evaluation")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    shutil.copytree(
        ROOT / "leaderboards" / "reported", source / "leaderboards" / "reported", ignore=ignore
    )
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        command + ["--no-index", "-q", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = dist.glob("wsolbench-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_carries_the_published_numbers_templates_and_suites(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "leaderboards" / "reported").iterdir():
        if path.suffix in (".csv", ".json", ".md", ".py"):
            assert f"wsolbench/reported/{path.name}" in names, path.name
    for path in (ROOT / "wsolbench" / "report" / "templates").iterdir():
        assert f"wsolbench/report/templates/{path.name}" in names, path.name
    for path in (ROOT / "wsolbench" / "suites").glob("*.toml"):
        assert f"wsolbench/suites/{path.name}" in names, path.name
    assert not any(name.startswith(("leaderboards/", "methods/", "evaluation/")) for name in names)


@pytest.mark.slow
def test_leaderboard_with_reported_runs_from_the_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    rows = make_rows(
        dataset="CUB",
        split="test",
        backbone="vgg16",
        method="cam",
        postprocessor="none",
        protocol="wsolevaluation",
        versions="",
        metrics={"MaxBoxAccV2": 60.0},
    )
    results, _ = write_results(results_frame(rows), tmp_path / "run")
    out = tmp_path / "board"
    script = textwrap.dedent(
        f"""
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, {str(site)!r})
        import wsolbench
        assert wsolbench.__file__.startswith({str(site)!r}), wsolbench.__file__
        from wsolbench.cli import main
        sys.exit(main(["leaderboard", {str(results)!r}, "--out", {str(out)!r},
                       "--with-reported", "--quiet"]))
        """
    )
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # not the checkout: its folders must not be importable
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    page = (out / "report.html").read_text()
    assert "Published numbers (reported, not measured here)" in page
    assert "Choe et al. CVPR 2020" in page and "Reproduced vs reported" in page
    assert "OpenImages" not in page  # only the measured dataset's published tables
