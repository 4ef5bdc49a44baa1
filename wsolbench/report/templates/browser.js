// The failure browser. Every piece of data (image ids, classes, setting labels) is written with
// textContent through element(): nothing from the data is ever parsed as HTML.
(function () {
  "use strict";
  function byId(id) { return document.getElementById(id); }
  function element(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }
  function append(parent, children) {
    children.forEach(function (child) {
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return parent;
  }
  var data = JSON.parse(byId("browser-data").textContent);
  var root = byId("browser"), sel = {}, current = null, shownSetting = null;
  var sprite = byId("browser-sprite");
  var entries = Array.prototype.slice.call(root.querySelectorAll(".entry"));
  // The thumbnails share the one sprite (a data: URI, base64: no quote can occur in it).
  root.style.setProperty("--sprite", 'url("' + sprite.src + '")');
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
  function postprocessors() {
    var out = [];
    data.settings.forEach(function (s) { if (out.indexOf(s.postprocessor) < 0) { out.push(s.postprocessor); } });
    return out;
  }
  function plainPp() {
    var pps = postprocessors();
    for (var i = 0; i < pps.length; i++) { if (data.plain.indexOf(pps[i]) >= 0) { return pps[i]; } }
    return pps[0];
  }
  function otherPp() {
    var pps = postprocessors(), plain = plainPp();
    var chosen = byId("filter-postprocessor").value;
    if (chosen !== plain) { return chosen; }
    for (var i = 0; i < pps.length; i++) { if (pps[i] !== plain) { return pps[i]; } }
    return plain;
  }
  function typeOf(setting, n) { return setting < 0 ? -1 : data.settings[setting].types[n]; }
  function refresh() {
    data.axes.forEach(function (a) { sel[a] = byId("filter-" + a).value; });
    var pp = byId("filter-postprocessor").value, type = byId("filter-type").value;
    var changed = byId("filter-changed").checked, from = byId("filter-from").value;
    var s = settingFor(pp), base = settingFor(plainPp()), count = 0;
    entries.forEach(function (entry, n) {
      var t = typeOf(s, n), b = typeOf(base, n);
      var badge = entry.querySelector(".badge");
      badge.textContent = t < 0 ? "-" : data.typeLabels[t];
      badge.className = "badge" + (t < 0 ? "" : " outcome-" + data.types[t]);
      var show = t >= 0 && (type === "all" || data.types[t] === type)
        && (!changed || (b >= 0 && b !== t)) && (from === "all" || (b >= 0 && data.types[b] === from));
      entry.classList.toggle("hidden", !show);
      if (show) { count++; }
    });
    byId("browser-count").textContent = count + " of " + data.images.length + " images";
    transitions(base, settingFor(otherPp()));
    if (current !== null) { draw(current, s); }
  }
  function transitions(base, other) {
    var table = byId("browser-transitions"), caption = byId("browser-transitions-caption");
    table.replaceChildren();
    caption.textContent = "";
    table.parentNode.hidden = base < 0 || other < 0 || base === other;
    if (table.parentNode.hidden) { return; }
    var k = data.types.length, counts = [];
    for (var i = 0; i < k; i++) { counts.push(new Array(k).fill(0)); }
    data.images.forEach(function (_, n) { counts[typeOf(base, n)][typeOf(other, n)]++; });
    caption.textContent = data.settings[base].label + " (rows) to " + data.settings[other].label +
      " (columns); click a count to list those images";
    var head = append(element("tr"), [element("th")]);
    data.typeLabels.forEach(function (label) { head.appendChild(element("th", label)); });
    table.appendChild(head);
    counts.forEach(function (row, a) {
      var line = append(element("tr"), [element("th", data.typeLabels[a])]);
      row.forEach(function (count, b) {
        var cell = element("td");
        if (count) {
          var button = element("button", count);
          button.type = "button";
          button.addEventListener("click", function () {
            byId("filter-postprocessor").value = data.settings[other].postprocessor;
            byId("filter-from").value = data.types[a];
            byId("filter-type").value = data.types[b];
            byId("filter-changed").checked = false;
            refresh();
          });
          cell.appendChild(button);
        }
        line.appendChild(cell);
      });
      table.appendChild(line);
    });
  }
  function draw(n, s) {
    current = n; shownSetting = s;
    var image = data.images[n], canvas = byId("browser-canvas"), ctx = canvas.getContext("2d");
    var scale = Math.min(400 / image.size[0], 400 / image.size[1]);
    canvas.width = Math.round(image.size[0] * scale); canvas.height = Math.round(image.size[1] * scale);
    ctx.drawImage(sprite, image.cell[0], image.cell[1], image.cell[2], image.cell[3], 0, 0, canvas.width, canvas.height);
    var info = byId("browser-info");
    info.replaceChildren();
    append(info, [element("b", image.id), " (class " + image.label + ")"]);
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
      var names = data.axes.map(function (a) { return setting.axes[a]; }).join(" / ");
      append(info, [element("br"), (names ? names + ", " : "") + setting.label + ": ",
        element("b", data.typeLabels[setting.types[n]]),
        ", predicted class " + setting.classes[n] + " (box threshold " + setting.threshold + ")"]);
      var base = settingFor(plainPp()), other = settingFor(otherPp());
      if (base >= 0 && other >= 0 && base !== other) {
        append(info, [element("br"), data.settings[base].label + " " + data.typeLabels[typeOf(base, n)] +
          " \u2192 " + data.settings[other].label + " " + data.typeLabels[typeOf(other, n)]]);
      }
    }
    entries.forEach(function (entry) { entry.classList.remove("selected"); });
    entries[n].classList.add("selected");
  }
  function choose(entry) {
    draw(+entry.getAttribute("data-n"), settingFor(byId("filter-postprocessor").value));
    // Stacked layout (narrow screens): bring the picture into view.
    byId("browser-canvas").scrollIntoView({ block: "nearest" });
  }
  root.querySelectorAll("select, input").forEach(function (control) { control.addEventListener("change", refresh); });
  entries.forEach(function (entry) {
    entry.addEventListener("click", function () { choose(entry); });
    entry.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(entry); }
    });
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
