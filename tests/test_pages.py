"""Pages safe by construction (report/html.py's templates are the only way to HTML) and pages
that read well on any screen.

- The source walk fails on any module that builds HTML by concatenation or f-strings, and on
  any other owner of a template engine; the page's scripts never parse data as HTML.
- Hostile image ids, class labels and setting labels reach the rendered page as text only.
- Where Chromium is installed: no script of the data runs, and the layout holds at 390 and
  1400 px (the browser stacks on a phone, tables scroll in their box with the method column in
  view, nothing makes the page scroll sideways).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from wsolbench.report import per_image as per_image_io
from wsolbench.report import render_leaderboard
from wsolbench.report.html import environment, leaderboard_html
from wsolbench.report.per_image import Record

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "wsolbench", ROOT / "methods", ROOT / "evaluation"]
TEMPLATES = ROOT / "wsolbench" / "report" / "templates"
PAGE_OWNER = ROOT / "wsolbench" / "report" / "html.py"

# Markup in a Python string: a closing tag, a tag with attributes, a doctype, or an opening tag
# of an element no placeholder is named like (placeholders such as "<label>" or "<image>" in help
# texts are not HTML).
_ELEMENTS = (
    "html|head|body|div|span|table|thead|tbody|tr|td|th|p|b|i|em|strong|br|hr|img|a|h[1-6]|"
    "section|figure|figcaption|script|style|select|option|input|button|canvas|meta|title|ul|ol|"
    "li|pre|code|caption|svg|iframe|form|link"
)
HTML_IN_STRING = re.compile(
    r"</[A-Za-z][A-Za-z0-9]*\s*>"
    r"|<[A-Za-z][A-Za-z0-9-]*\s+[A-Za-z-]+\s*="
    r"|<!doctype"
    rf"|<(?:{_ELEMENTS})\s*/?>",
    re.IGNORECASE,
)
# What a script must never do with data: parse it as HTML or code.
UNSAFE_SCRIPT = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(")

HOSTILE_IMAGE = "<img src=x onerror=alert(1)>.png"
HOSTILE_SCRIPT = "</script><script>alert(1)</script>"
HOSTILE_QUOTES = "\"quoted\" 'single' & {{ 7*7 }} {% if 1 %}x{% endif %}"
HOSTILE_SVG = '"><svg onload=alert(1)>'


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose, never written to a page)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def html_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal (f-string parts included) that holds markup."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            match = HTML_IN_STRING.search(node.value)
            if match:
                hits.append((node.lineno, match.group(0)))
    return hits


def _python_files():
    for root in SOURCES:
        yield from sorted(root.rglob("*.py"))


def test_the_source_walk_catches_html_built_in_python():
    assert html_literals('cell = f"<td class={name}>{value}</td>"')
    assert html_literals('row = "<tr>" + "".join(cells)')
    assert html_literals("page = '<!DOCTYPE html>' + body")
    assert html_literals("tag = '<img src=\"' + uri + '\">'")
    # Prose and placeholders are not markup.
    assert not html_literals('help = "[classifiers.<label>] folders under <out>/<suite>"')
    assert not html_literals('def f():\n    """Writes <b>bold</b> pages."""\n')


def test_no_module_builds_html_outside_the_templates():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in _python_files()
        for line, text in html_literals(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "HTML built in Python (use report/templates): " + "; ".join(offenders)


def test_one_template_environment_and_it_escapes():
    owners = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            # jinja2 / markupsafe / the stdlib's html escaping: only the page owner.
            if any(n.split(".")[0] in ("jinja2", "markupsafe", "html") for n in names):
                owners.append(path)
    assert set(owners) == {PAGE_OWNER}
    env = environment()
    assert env.autoescape is True
    rendered = env.from_string("<p title='{{ x }}'>{{ x }}</p>").render(x=HOSTILE_SVG + "'")
    escaped = "&#34;&gt;&lt;svg onload=alert(1)&gt;&#39;"
    assert rendered == f"<p title='{escaped}'>{escaped}</p>"


def test_page_scripts_write_data_as_text():
    scripts = sorted(TEMPLATES.glob("*.js"))
    assert {p.name for p in scripts} >= {"browser.js", "sort.js"}
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        assert not UNSAFE_SCRIPT.search(text), path.name
        assert "</script" not in text.lower(), path.name  # cannot close its own element
    for path in TEMPLATES.glob("*.css"):
        assert "</style" not in path.read_text(encoding="utf-8").lower(), path.name
    browser = (TEMPLATES / "browser.js").read_text(encoding="utf-8")
    assert "textContent" in browser


# -- hostile data through the whole report ------------------------------------------------------
def _hostile_board(tiny_bench, out: Path, payloads: dict[str, str]) -> Path:
    """The tiny bench's report with its labels, ids and classes replaced by ``payloads``."""
    records, images = per_image_io.load(tiny_bench.board / "per_image.npz")
    methods = {"cam": payloads["method"], "spa": payloads["other_method"]}
    relabelled = [
        Record(
            dict(
                record.key,
                dataset=payloads["dataset"],
                method=methods[record.key["method"]],
                explainer=payloads["explainer"],
            ),
            record.arrays,
            record.meta,
        )
        for record in records
    ]
    image_set = images[0]
    image_set.dataset = payloads["dataset"]
    ids = list(image_set.image_ids)
    ids[0], ids[1], ids[2] = payloads["image"], payloads["image_script"], payloads["image_quotes"]
    image_set.image_ids = ids
    labels = image_set.labels.astype(object)
    labels[0], labels[1] = payloads["class"], payloads["class_quotes"]
    image_set.labels = labels
    results = tiny_bench.results
    results["dataset"] = payloads["dataset"]
    results["method"] = results["method"].map(methods)
    results["explainer"] = payloads["explainer"]
    render_leaderboard(
        results,
        out,
        title=payloads["title"],
        notes=payloads["notes"],
        per_image=(relabelled, [image_set]),
    )
    return out / "report.html"


ALERTS = {
    "method": "<img src=x onerror=alert(1)>",
    "other_method": HOSTILE_SCRIPT,
    "dataset": HOSTILE_SVG,
    "explainer": HOSTILE_QUOTES,
    "image": HOSTILE_IMAGE,
    "image_script": HOSTILE_SCRIPT + ".png",
    "image_quotes": HOSTILE_QUOTES,
    "class": "<b onmouseover=alert(1)>bird</b>",
    "class_quotes": "{{ 7*7 }}\"'",
    "title": "{{ 7*7 }}</title><script>alert(1)</script>",
    "notes": "<!-- --><script>alert(1)</script>",
}


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.handlers, self.scripts, self.text = [], [], [], []
        self._script = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self._script = {"attrs": dict(attrs), "text": ""}

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(self._script)
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._script["text"] += data
        else:
            self.text.append(data)


def test_hostile_labels_ids_and_classes_reach_the_page_as_text(tiny_bench, tmp_path):
    page = _hostile_board(tiny_bench, tmp_path / "board", ALERTS).read_text()
    parsed = _Elements()
    parsed.feed(page)
    # Only the page's own elements: no handler attribute, no element from the data.
    assert parsed.handlers == []
    assert "svg" not in parsed.tags and parsed.tags.count("title") == 1
    assert len(parsed.scripts) == 3  # the browser's JSON, browser.js, sort.js
    own = [(TEMPLATES / name).read_text(encoding="utf-8").strip() for name in ("browser.js",)]
    assert parsed.scripts[1]["text"].strip() == own[0]
    assert parsed.scripts[2]["text"].strip() == (TEMPLATES / "sort.js").read_text().strip()
    # The JSON block cannot close its script, and holds the data exactly.
    assert parsed.scripts[0]["attrs"] == {"type": "application/json", "id": "browser-data"}
    data = json.loads(parsed.scripts[0]["text"])
    assert [image["id"] for image in data["images"][:3]] == [
        HOSTILE_IMAGE,
        HOSTILE_SCRIPT + ".png",
        HOSTILE_QUOTES,
    ]
    assert [image["label"] for image in data["images"][:2]] == [
        ALERTS["class"],
        ALERTS["class_quotes"],
    ]
    assert {s["axes"]["method"] for s in data["settings"]} == {ALERTS["method"], HOSTILE_SCRIPT}
    assert data["dataset"] == HOSTILE_SVG
    # Shown as text: headings, cells, options and entries hold the strings as they are.
    text = "".join(parsed.text)
    for value in (ALERTS["title"], ALERTS["method"], HOSTILE_SCRIPT, HOSTILE_SVG, HOSTILE_QUOTES):
        assert value in text, value
    assert "{{ 7*7 }}" in text  # data is never a template
    assert page.count("<script") == 3 and "alert(1)</script>" not in page


# -- Chromium: no script of the data runs; the layout on a phone and a wide screen ---------------
def _chromium() -> str | None:
    return next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )


needs_chromium = pytest.mark.skipif(
    _chromium() is None,
    reason="Chromium is not installed (apt-get install -y chromium): the page is checked in a "
    "real browser only where one is",
)


def _dump_dom(page: Path, width: int, height: int, profile: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium at width x height."""
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


MARK = "document.documentElement.setAttribute('data-pwned', '{}')"


@needs_chromium
def test_no_script_from_the_data_runs_in_chromium(tiny_bench, tmp_path):
    payloads = {
        "method": f'<img src=x onerror="{MARK.format(1)}">',
        "other_method": f"</script><script>{MARK.format(2)}</script>",
        "dataset": f'"><svg onload="{MARK.format(3)}">',
        "explainer": f"'><img src=x onerror={MARK.format(4)}>",
        "image": f'<img src=x onerror="{MARK.format(5)}">.png',
        "image_script": f"</script><script>{MARK.format(6)}</script>.png",
        "image_quotes": f'"\'><svg onload="{MARK.format(7)}"> {{{{ 7*7 }}}}',
        "class": f'<img src=x onerror="{MARK.format(8)}">',
        "class_quotes": f"</script><script>{MARK.format(9)}</script>",
        "title": f"</title><script>{MARK.format(10)}</script>",
        "notes": f"<!-- --><script>{MARK.format(11)}</script>",
    }
    page = _hostile_board(tiny_bench, tmp_path / "board", payloads)
    dom = _dump_dom(page, 1400, 900, tmp_path / "profile")
    assert "data-pwned" not in dom.split("<head>", 1)[0]
    assert not re.search(r"<html[^>]*data-pwned", dom)
    # The page's own script did run: it counted the images and described the first one, whose
    # id and class it wrote as text.
    assert re.search(r'id="browser-count"[^>]*>\d+ of \d+ images<', dom)
    info = re.search(r'<p id="browser-info">(.*?)</p>', dom, re.S).group(1)
    assert "<b>&lt;img src=x onerror=" in info and "(class &lt;img src=x" in info


PROBE = """<script>
window.addEventListener("load", function () {
  function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  var tables = document.querySelectorAll("main div.scroll > table.sortable");
  var scrolls = Array.prototype.map.call(tables, function (t) { return t.parentNode; });
  var out = {
    viewport: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    grid: box(document.querySelector("#browser .grid")),
    detail: box(document.querySelector("#browser .detail")),
    canvas: box(document.getElementById("browser-canvas")),
    headline: [scrolls[0].scrollWidth, scrolls[0].clientWidth],
    sticky: []
  };
  scrolls.forEach(function (s) {
    if (s.scrollWidth <= s.clientWidth) { return; }
    s.scrollLeft = s.scrollWidth;
    var cell = s.querySelector("tbody tr td.sticky");
    out.sticky.push([box(s)[0], box(cell)[0], cell.textContent]);
  });
  parent.postMessage(JSON.stringify(out), "*");
});
</script>"""
# Headless Chromium keeps its window at least 500 px wide: the page is measured in a frame of the
# exact width (its media queries and viewport are the frame's), which posts what it found.
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="border:0;width:{width}px;height:844px"></iframe>
<script>window.addEventListener("message", function (event) {{
  document.body.setAttribute("data-probe", event.data);
}});</script></body></html>"""


def _layout(page: Path, width: int, tmp_path: Path) -> dict:
    probed = tmp_path / f"probe-{width}.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    frame = tmp_path / f"frame-{width}.html"
    frame.write_text(FRAME.format(src=probed.name, width=width))
    dom = _dump_dom(frame, max(width, 500) + 40, 900, tmp_path / f"profile-{width}")
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@needs_chromium
def test_layout_on_a_phone_and_a_wide_screen(tiny_bench, tmp_path):
    page = tiny_bench.board / "report.html"
    phone = _layout(page, 390, tmp_path)
    assert phone["viewport"] == 390
    assert phone["pageWidth"] <= 390  # nothing makes the page itself scroll sideways
    # The browser stacks: the detail (picture, info) below the grid, as wide as the screen.
    assert phone["detail"][1] >= phone["grid"][3]
    assert phone["canvas"][2] <= 390 and phone["canvas"][2] - phone["canvas"][0] > 300
    # Wide tables scroll inside their box, the method column staying at its left edge.
    assert phone["sticky"], "no table scrolls at 390 px"
    for left, cell, text in phone["sticky"]:
        assert abs(cell - left) <= 2 and text.strip(), (left, cell, text)
    wide = _layout(page, 1400, tmp_path)
    assert wide["pageWidth"] <= 1400
    assert wide["detail"][0] >= wide["grid"][2]  # side by side
    assert wide["headline"][0] <= wide["headline"][1]  # the headline table needs no scrolling


def test_report_declares_a_viewport_and_no_fixed_page_width(tiny_bench):
    page = (tiny_bench.board / "report.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    css = (TEMPLATES / "report.css").read_text()
    assert "max-width: 1200px" not in css and "width: 420px" not in css


def test_an_empty_report_still_renders():
    page = leaderboard_html("t", [])
    assert "No results to show." in page and 'id="browser"' not in page


def test_hostile_markdown_stays_text(tiny_bench, tmp_path):
    _hostile_board(tiny_bench, tmp_path / "board", ALERTS)
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "<img" not in markdown and "<script" not in markdown and "<svg" not in markdown


def test_class_labels_in_the_browser_data_are_text(tiny_bench):
    from wsolbench.report.browser import browser_data

    records, images = per_image_io.load(tiny_bench.board / "per_image.npz")
    data = browser_data(records, images[0])
    assert data is not None
    assert all(isinstance(image["label"], str) for image in data["images"])
    assert [image["label"] for image in data["images"]] == [
        str(v) for v in np.asarray(images[0].labels)[: len(data["images"])]
    ]
