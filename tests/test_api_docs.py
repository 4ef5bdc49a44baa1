"""docs/api.md is the public API's docstrings as they are (regenerate: python docs/make_api.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_api():
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_matches_the_docstrings():
    make_api = _make_api()
    assert (ROOT / "docs" / "api.md").read_text(encoding="utf-8") == make_api.render(), (
        "docs/api.md is out of date: run python docs/make_api.py"
    )
    assert make_api.main(["--check"]) == 0


def test_api_page_covers_every_top_level_export():
    import wsolbench

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for name in wsolbench.__all__:
        assert f"### `wsolbench.{name}(" in page, name


def test_a_public_function_without_docstring_is_refused(monkeypatch):
    make_api = _make_api()
    import wsolbench

    def undocumented():
        pass

    monkeypatch.setattr(wsolbench, "undocumented", undocumented, raising=False)
    monkeypatch.setattr(make_api, "SECTIONS", [("wsolbench", ["undocumented"])])
    with pytest.raises(SystemExit, match="wsolbench.undocumented has no docstring"):
        make_api.render()


def test_check_fails_on_a_stale_page(tmp_path, monkeypatch):
    make_api = _make_api()
    stale = tmp_path / "api.md"
    stale.write_text("# Python API\n", encoding="utf-8")
    monkeypatch.setattr(make_api, "OUT", stale)
    assert make_api.main(["--check"]) == 1
