"""The failure browser of ``report.html``: every test image's outcome per method and
post-processor, with its picture, GT boxes, predicted box and map, in one self-contained section.

Pictures travel as two kinds of sprites (data URIs, no request): one JPEG of all test images
(each fit in a 64 px cell) and one JPEG per setting of its top-1 maps (32 px cells, jet colours).
Outcomes, classes and boxes are one JSON block; a short script filters, draws and flips
between post-processors. Without a browser, every image still has a static entry (thumbnail
and id), so the page can be read and checked as plain HTML.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

from wsolbench.evaluation.classic_loc import OUTCOMES
from wsolbench.evaluation.protocols import Spa
from wsolbench.report.per_image import IMAGE_CELL, ImageSet, Record
from wsolbench.report.tables import (
    METHOD_ORDER,
    PLAIN,
    POSTPROCESSOR_ORDER,
    _rank,
    pp_label,
)

OUTCOME_LABELS = {
    "correct": "correct",
    "cls": "Cls",
    "m-ins": "M-Ins",
    "part": "Part",
    "more": "More",
    "ot": "OT",
}
SPRITE_COLUMNS = 20
AXES = ("method", "explainer")  # selectable axes besides the post-processor (when present)


def _jpeg(picture: np.ndarray, quality: int = 85) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sprite(cells: list[np.ndarray], cell: int) -> np.ndarray:
    rows = max(1, -(-len(cells) // SPRITE_COLUMNS))
    sheet = np.full((rows * cell, SPRITE_COLUMNS * cell, 3), 255, np.uint8)
    for n, picture in enumerate(cells):
        y, x = divmod(n, SPRITE_COLUMNS)
        sheet[y * cell : y * cell + picture.shape[0], x * cell : x * cell + picture.shape[1]] = (
            picture[..., :3]
        )
    return sheet


def _jet(maps: np.ndarray) -> np.ndarray:
    """uint8 maps (M, h, w) -> RGB with matplotlib's jet."""
    from matplotlib import colormaps

    return (colormaps["jet"](maps)[..., :3] * 255).astype(np.uint8)


def browser_data(records: list[Record], image_set: ImageSet) -> dict[str, Any] | None:
    """The JSON payload and sprites for one dataset (None without classic outcomes)."""
    records = [
        r
        for r in records
        if r.key.get("dataset") == image_set.dataset and Spa.outcomes(r.arrays, r.meta) is not None
    ]
    if not records or not image_set.pictures:
        return None
    shown = sorted(image_set.pictures)
    # One record per setting: the lowest seed (a browser of one trained model per setting).
    chosen: dict[tuple, Record] = {}
    for record in sorted(records, key=lambda r: int(r.key.get("seed", 0))):
        setting = tuple((k, str(v)) for k, v in record.key.items() if k != "seed")
        chosen.setdefault(setting, record)
    records = sorted(
        chosen.values(),
        key=lambda r: (
            tuple(
                _rank(str(r.key.get(a, "")), METHOD_ORDER)
                if a == "method"
                else str(r.key.get(a, ""))
                for a in AXES
            ),
            str(r.key.get("method", "")),
            _rank(str(r.key["postprocessor"]), POSTPROCESSOR_ORDER),
        ),
    )
    axes = [a for a in AXES if any(a in r.key for r in records)]
    images, positions = [], {}
    for n, index in enumerate(shown):
        picture = image_set.pictures[index]
        y, x = divmod(n, SPRITE_COLUMNS)
        positions[index] = n
        width, height = (int(v) for v in image_set.sizes[index]) if len(image_set.sizes) else (0, 0)
        images.append(
            {
                "id": image_set.image_ids[index],
                "label": int(image_set.labels[index]),
                "size": [width or picture.shape[1], height or picture.shape[0]],
                "boxes": np.asarray(image_set.boxes[index]).reshape(-1, 4).tolist(),
                "cell": [
                    x * IMAGE_CELL,
                    y * IMAGE_CELL,
                    int(picture.shape[1]),
                    int(picture.shape[0]),
                ],
            }
        )
    settings = []
    for record in records:
        outcomes = Spa.outcomes(record.arrays, record.meta)
        row_of = {int(i): n for n, i in enumerate(record.arrays["index"])}
        rows = [row_of.get(index) for index in shown]
        if any(r is None for r in rows):
            continue
        thumb_of = {int(i): n for n, i in enumerate(record.arrays.get("thumb_index", []))}
        thumbs = record.arrays.get("thumbs")
        maps = [
            thumbs[thumb_of[i]] if i in thumb_of else np.zeros((32, 32), np.uint8) for i in shown
        ]
        cell = maps[0].shape[0] if maps else 32
        settings.append(
            {
                "axes": {a: str(record.key.get(a, "")) for a in axes},
                "postprocessor": str(record.key["postprocessor"]),
                "label": pp_label(str(record.key["postprocessor"])),
                "types": [int(v) for v in outcomes["outcome"][rows]],
                "classes": [int(v) for v in outcomes["top1_class"][rows]],
                "boxes": outcomes["top1_box"][rows].astype(int).tolist(),
                "threshold": float(record.meta["box_threshold"]),
                "maps": _jpeg(_sprite(list(_jet(np.asarray(maps))), cell), 75) if maps else "",
                "mapCell": int(cell),
            }
        )
    if not settings:
        return None
    return {
        "dataset": image_set.dataset,
        "axes": axes,
        "types": list(OUTCOMES),
        "typeLabels": [OUTCOME_LABELS[t] for t in OUTCOMES],
        "images": images,
        "settings": settings,
        "plain": list(PLAIN),
        "columns": SPRITE_COLUMNS,
        "cell": IMAGE_CELL,
        "sprite": _jpeg(_sprite([image_set.pictures[i] for i in shown], IMAGE_CELL), 88),
        "total": len(image_set.image_ids),
    }


_CSS = """
#browser .controls { display: flex; flex-wrap: wrap; gap: 0.8em; align-items: center; margin: 0.5em 0; }
#browser .layout { display: flex; gap: 1.2em; align-items: flex-start; }
#browser .grid { display: flex; flex-wrap: wrap; gap: 4px; max-height: 640px; overflow-y: auto;
                 flex: 1; align-content: flex-start; }
#browser .entry { width: 64px; cursor: pointer; border: 2px solid transparent; font-size: 10px;
                  text-align: center; }
#browser .entry.hidden { display: none; }
#browser .entry.selected { border-color: #000; }
#browser .thumb { width: 64px; height: 64px; background-repeat: no-repeat; }
#browser .badge { display: block; border-radius: 3px; color: #fff; padding: 0 2px; }
#browser .detail { width: 420px; }
#browser canvas { border: 1px solid #ccc; image-rendering: auto; }
#browser table.transitions td button { min-width: 2.5em; }
#browser .t-correct { background: #2a9d3a; } #browser .t-cls { background: #777; }
#browser .t-m-ins { background: #8e44ad; } #browser .t-part { background: #e67e22; }
#browser .t-more { background: #2f6fbf; } #browser .t-ot { background: #c0392b; }
"""

_SCRIPT = """
(function () {
  function byId(id) { return document.getElementById(id); }
  var data = JSON.parse(document.getElementById("browser-data").textContent);
  var root = document.getElementById("browser"), sel = {}, current = null, shownSetting = null;
  var sprite = byId("browser-sprite");
  var style = document.createElement("style");  // the thumbnails share the one sprite
  style.textContent = '#browser .thumb { background-image: url("' + sprite.src + '"); }';
  document.head.appendChild(style);
  var maps = data.settings.map(function (s) {
    var im = new Image();
    im.onload = function () { if (current !== null) { draw(current, shownSetting); } };  // decoded late
    im.src = s.maps;
    return im;
  });
  function settingFor(pp) {
    for (var i = 0; i < data.settings.length; i++) {
      var s = data.settings[i], ok = s.postprocessor === pp;
      data.axes.forEach(function (a) { ok = ok && s.axes[a] === sel[a]; });
      if (ok) { return i; }
    }
    return -1;
  }
  function plainPp() {
    var pps = postprocessors();
    for (var i = 0; i < pps.length; i++) { if (data.plain.indexOf(pps[i]) >= 0) { return pps[i]; } }
    return pps[0];
  }
  function postprocessors() {
    var out = [];
    data.settings.forEach(function (s) { if (out.indexOf(s.postprocessor) < 0) { out.push(s.postprocessor); } });
    return out;
  }
  function typeOf(setting, n) { return setting < 0 ? -1 : data.settings[setting].types[n]; }
  function refresh() {
    data.axes.forEach(function (a) { sel[a] = byId("filter-" + a).value; });
    var pp = byId("filter-postprocessor").value, type = byId("filter-type").value;
    var changed = byId("filter-changed").checked, from = byId("filter-from").value;
    var s = settingFor(pp), base = settingFor(plainPp()), count = 0;
    document.querySelectorAll("#browser .entry").forEach(function (entry) {
      var n = +entry.getAttribute("data-n"), t = typeOf(s, n), b = typeOf(base, n);
      var badge = entry.querySelector(".badge");
      badge.textContent = t < 0 ? "-" : data.typeLabels[t];
      badge.className = "badge" + (t < 0 ? "" : " t-" + data.types[t]);
      var show = t >= 0 && (type === "all" || data.types[t] === type)
        && (!changed || (b >= 0 && b !== t)) && (from === "all" || (b >= 0 && data.types[b] === from));
      entry.classList.toggle("hidden", !show);
      if (show) { count++; }
    });
    byId("browser-count").textContent = count + " of " + data.images.length + " images";
    transitions(base, settingFor(otherPp()));
    if (current !== null) { draw(current, s); }
  }
  function otherPp() {
    var pps = postprocessors(), plain = plainPp();
    var chosen = byId("filter-postprocessor").value;
    if (chosen !== plain) { return chosen; }
    for (var i = 0; i < pps.length; i++) { if (pps[i] !== plain) { return pps[i]; } }
    return plain;
  }
  function transitions(base, other) {
    var table = byId("browser-transitions");
    if (base < 0 || other < 0 || base === other) { table.innerHTML = ""; return; }
    var k = data.types.length, counts = [];
    for (var i = 0; i < k; i++) { counts.push(new Array(k).fill(0)); }
    data.images.forEach(function (_, n) { counts[typeOf(base, n)][typeOf(other, n)]++; });
    var html = "<caption>" + data.settings[base].label + " (rows) to " + data.settings[other].label +
      " (columns); click a count to list those images</caption><tr><th></th>";
    data.typeLabels.forEach(function (l) { html += "<th>" + l + "</th>"; });
    html += "</tr>";
    for (var a = 0; a < k; a++) {
      html += "<tr><th>" + data.typeLabels[a] + "</th>";
      for (var b = 0; b < k; b++) {
        html += "<td>" + (counts[a][b] ? '<button data-from="' + data.types[a] + '" data-to="' +
          data.types[b] + '">' + counts[a][b] + "</button>" : "") + "</td>";
      }
      html += "</tr>";
    }
    table.innerHTML = html;
    table.querySelectorAll("button").forEach(function (button) {
      button.addEventListener("click", function () {
        byId("filter-postprocessor").value = data.settings[other].postprocessor;
        byId("filter-from").value = button.getAttribute("data-from");
        byId("filter-type").value = button.getAttribute("data-to");
        byId("filter-changed").checked = false;
        refresh();
      });
    });
  }
  function draw(n, s) {
    current = n; shownSetting = s;
    var image = data.images[n], canvas = byId("browser-canvas"), ctx = canvas.getContext("2d");
    var scale = Math.min(400 / image.size[0], 400 / image.size[1]);
    canvas.width = Math.round(image.size[0] * scale); canvas.height = Math.round(image.size[1] * scale);
    ctx.drawImage(sprite, image.cell[0], image.cell[1], image.cell[2], image.cell[3], 0, 0, canvas.width, canvas.height);
    var info = "<b>" + image.id + "</b> (class " + image.label + ")";
    if (s >= 0) {
      var setting = data.settings[s], cell = setting.mapCell;
      if (byId("browser-map").checked) {
        ctx.globalAlpha = 0.5;
        ctx.drawImage(maps[s], (n % data.columns) * cell, Math.floor(n / data.columns) * cell, cell, cell,
                      0, 0, canvas.width, canvas.height);
        ctx.globalAlpha = 1;
      }
      var box = setting.boxes[n], sx = canvas.width / image.size[0], sy = canvas.height / image.size[1];
      ctx.lineWidth = 2; ctx.strokeStyle = "#ff2020";
      ctx.strokeRect(box[0] * sx, box[1] * sy, (box[2] - box[0] + 1) * sx, (box[3] - box[1] + 1) * sy);
      ctx.strokeStyle = "#20ff20";
      image.boxes.forEach(function (g) { ctx.strokeRect(g[0] * sx, g[1] * sy, (g[2] - g[0] + 1) * sx, (g[3] - g[1] + 1) * sy); });
      var base = settingFor(plainPp()), other = settingFor(otherPp());
      info += "<br>" + data.axes.map(function (a) { return setting.axes[a]; }).join(" / ") + ", " + setting.label +
        ": <b>" + data.typeLabels[setting.types[n]] + "</b>, predicted class " + setting.classes[n] +
        " (box threshold " + setting.threshold + ")";
      if (base >= 0 && other >= 0 && base !== other) {
        info += "<br>" + data.settings[base].label + " " + data.typeLabels[typeOf(base, n)] + " &rarr; " +
          data.settings[other].label + " " + data.typeLabels[typeOf(other, n)];
      }
    }
    byId("browser-info").innerHTML = info;
    document.querySelectorAll("#browser .entry.selected").forEach(function (e) { e.classList.remove("selected"); });
    root.querySelector('.entry[data-n="' + n + '"]').classList.add("selected");
  }
  root.querySelectorAll("select, input").forEach(function (control) { control.addEventListener("change", refresh); });
  root.querySelectorAll(".entry").forEach(function (entry) {
    entry.addEventListener("click", function () { draw(+entry.getAttribute("data-n"), settingFor(byId("filter-postprocessor").value)); });
  });
  byId("browser-flip").addEventListener("click", function () {
    var select = byId("filter-postprocessor"), pps = postprocessors();
    select.value = pps[(pps.indexOf(select.value) + 1) % pps.length];
    refresh();
  });
  refresh();
  var first = root.querySelector(".entry:not(.hidden)");
  if (first) { draw(+first.getAttribute("data-n"), settingFor(byId("filter-postprocessor").value)); }
})();
"""


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<option value="{html.escape(v)}">{html.escape(t)}</option>' for v, t in options
    )
    return (
        f'<label>{html.escape(label)} <select id="filter-{html.escape(name)}" '
        f'name="{html.escape(name)}">{items}</select></label>'
    )


def browser_html(records: list[Record], images: list[ImageSet]) -> str:
    """The browser section (empty without per-image outcomes and pictures)."""
    data = next((d for d in (browser_data(records, s) for s in images) if d is not None), None)
    if data is None:
        return ""
    escape = html.escape
    controls = []
    for axis in data["axes"]:
        values = list(dict.fromkeys(s["axes"][axis] for s in data["settings"]))
        controls.append(_select(axis, axis.capitalize(), [(v, v) for v in values]))
    pps = list(dict.fromkeys(s["postprocessor"] for s in data["settings"]))
    controls.append(_select("postprocessor", "Post-processor", [(p, pp_label(p)) for p in pps]))
    types = [("all", "all")] + list(zip(data["types"], data["typeLabels"]))
    controls.append(_select("type", "Error type", types))
    controls.append(_select("from", "Plain type", types))
    controls.append(
        '<label><input type="checkbox" id="filter-changed"> changed type vs plain</label>'
    )
    controls.append('<label><input type="checkbox" id="browser-map" checked> map</label>')
    controls.append('<button type="button" id="browser-flip">flip post-processor</button>')
    controls.append('<span id="browser-count"></span>')
    entries = []
    for n, image in enumerate(data["images"]):
        x, y = image["cell"][0], image["cell"][1]
        entries.append(
            f'<div class="entry" data-n="{n}" data-id="{escape(image["id"])}" '
            f'title="{escape(image["id"])}"><div class="thumb" '
            f'style="background-position: -{x}px -{y}px"></div>'
            f'<span class="badge"></span></div>'
        )
    shown = (
        f"all {data['total']} test images"
        if data["total"] == len(data["images"])
        else f"{len(data['images'])} of {data['total']} test images, evenly spread"
    )
    sprite = data.pop("sprite")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<section id="browser"><h2>Failure browser</h2>\n<style>{_CSS}</style>\n'
        f'<img id="browser-sprite" alt="" hidden src="{sprite}">\n'
        f"<p>{escape(shown)} of <b>{escape(data['dataset'])}</b>: the spa protocol's outcome of "
        "each image (correct, or the error type Cls / M-Ins / Part / More / OT of the top-1 "
        "prediction at the box threshold chosen on val). Click an image: GT boxes in green, "
        "the predicted top-1 box in red, the top-1 class map over it. The transition table "
        "lists which images changed type; one click filters them.</p>\n"
        f'<div class="controls">{"".join(controls)}</div>\n'
        '<div class="layout"><div class="grid">' + "".join(entries) + "</div>\n"
        '<div class="detail"><canvas id="browser-canvas" width="400" height="400"></canvas>'
        '<p id="browser-info"></p><table class="transitions" id="browser-transitions"></table>'
        "</div></div>\n"
        f'<script type="application/json" id="browser-data">{payload}</script>\n'
        f"<script>{_SCRIPT}</script></section>"
    )
