// Liên Thông console: the only script. Pages work without it; it follows
// the sign-in continue link, brings a refused form's first problem into
// view, and keeps the flow view up to date by polling the console's own
// JSON (same origin, same session).
"use strict";
(function () {
  var go = document.querySelector("a[data-autofollow]");
  if (go) { window.location.assign(go.getAttribute("href")); return; }

  // A form the server sent back with problems: show the first one and put
  // the keyboard on its field.
  var problem = document.querySelector(".field-error");
  if (problem) {
    problem.scrollIntoView({ block: "center" });
    var box = problem.closest("div, fieldset, form");
    var field = box && box.querySelector("input:not([type=hidden]), select, textarea");
    if (field) { field.focus({ preventScroll: true }); }
  }

  var flows = document.getElementById("flows");
  if (!flows) { return; }
  var source = flows.getAttribute("data-source");
  var svgNS = "http://www.w3.org/2000/svg";

  function text(el, s) { el.textContent = s; }

  function redrawMatrix(d) {
    var table = document.getElementById("flow-matrix");
    var old = {};
    table.querySelectorAll("td[data-key]").forEach(function (td) { old[td.getAttribute("data-key")] = td.textContent; });
    var cells = {};
    (d.cells || []).forEach(function (c) { cells[c.provider + "|" + c.consumer] = c; });
    var head = table.tHead.rows[0];
    while (head.cells.length > 1) { head.deleteCell(1); }
    d.members.forEach(function (m) { var th = document.createElement("th"); th.scope = "col"; text(th, m); head.appendChild(th); });
    var body = table.tBodies[0];
    while (body.rows.length) { body.deleteRow(0); }
    d.members.forEach(function (p) {
      var tr = body.insertRow();
      var th = document.createElement("th"); th.scope = "row"; text(th, p); tr.appendChild(th);
      d.members.forEach(function (c) {
        var td = tr.insertCell();
        var key = p + "|" + c, cell = cells[key];
        td.setAttribute("data-key", key);
        td.className = "cell";
        if (!cell) { td.className += " empty"; text(td, "·"); return; }
        text(td, String(cell.exchanges));
        if (cell.denials) {
          td.className += " has-denials";
          var s = document.createElement("span"); s.className = "deny"; text(s, " (" + cell.denials + "✕)"); td.appendChild(s);
        }
        if (old[key] !== undefined && old[key] !== td.textContent) { td.className += " changed"; }
      });
    });
  }

  function redrawSeries(d) {
    var svg = document.getElementById("flow-series");
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var max = 0;
    d.series.forEach(function (p) { if (p.exchanges > max) { max = p.exchanges; } });
    d.series.forEach(function (p, i) {
      var h = max > 0 ? p.exchanges / max * 95 : 0;
      var r = document.createElementNS(svgNS, "rect");
      r.setAttribute("x", String(i * 10)); r.setAttribute("y", String(100 - h));
      r.setAttribute("width", "9"); r.setAttribute("height", String(h));
      r.setAttribute("class", p.denials ? "bar deny" : "bar");
      var t = document.createElementNS(svgNS, "title"); t.textContent = p.at + ": " + p.exchanges; r.appendChild(t);
      svg.appendChild(r);
    });
  }

  function poll() {
    fetch(source, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (d) {
        redrawMatrix(d);
        redrawSeries(d);
        text(document.getElementById("flows-total"), String(d.total));
        text(document.getElementById("flows-updated"), new Date(d.at).toISOString().replace("T", " ").slice(0, 16) + " UTC");
        flows.setAttribute("data-polled", String((Number(flows.getAttribute("data-polled")) || 0) + 1));
      })
      .catch(function () { /* keep the last view; try again next round */ })
      .then(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 3000);
})();
