"""The audit page's script: the sortable, filterable table of every item and the command that opens a row as a
DiDA View. It only arranges what Python made (``audit_page``); nothing is computed or fetched here."""

SCRIPT = r"""
"use strict";
(() => {
  const D = JSON.parse(document.getElementById("audit-data").textContent);
  const $ = (id) => document.getElementById(id);
  const COLS = [
    ["thumb", "", null], ["id", "id", "text"], ["label", "label", "text"], ["predicted", "predicted", "text"],
    ["probability", "p", "num"], ["margin", "margin", "num"], ["correct", "correct", "text"],
    ["inside", "in retina", "num"], ["above", "above", "num"], ["below", "below", "num"],
    ["border", "border", "num"], ["centroid_in_band", "depth in band", "num"], ["flags", "flags", "text"],
  ];
  const state = {sort: null, up: true, text: "", cls: "", kind: "", chosen: null};
  const fmt = (v, digits) => (v === null || v === undefined) ? "" : (typeof v === "number" ? v.toFixed(digits) : String(v));

  const head = document.createElement("tr");
  for (const [key, title, kind] of COLS) {
    const th = document.createElement("th");
    th.textContent = title;
    th.dataset.key = key;
    if (kind) th.addEventListener("click", () => {
      state.up = state.sort === key ? !state.up : true;
      state.sort = key;
      render();
    });
    head.appendChild(th);
  }
  $("table").tHead.appendChild(head);
  for (const c of D.classes) {
    const o = document.createElement("option");
    o.value = c; o.textContent = c;
    $("class-filter").appendChild(o);
  }

  function shown(r) {
    if (state.cls && r.label_class !== state.cls && r.predicted !== state.cls) return false;
    if (state.kind === "correct" && r.correct !== true) return false;
    if (state.kind === "wrong" && r.correct !== false) return false;
    if (state.kind === "flagged" && !r.flags) return false;
    if (state.kind === "failed" && r.status !== "failed") return false;
    if (state.text) {
      const t = state.text.toLowerCase();
      if (![r.id, r.label || "", r.predicted || ""].some((s) => s.toLowerCase().includes(t))) return false;
    }
    return true;
  }

  function order(rows) {
    if (!state.sort) return rows;
    const kind = COLS.find((c) => c[0] === state.sort)[2];
    const key = state.sort, sign = state.up ? 1 : -1;
    return rows.slice().sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
      if (y === null || y === undefined) return -1;
      return sign * (kind === "num" ? x - y : String(x).localeCompare(String(y)));
    });
  }

  function render() {
    const body = $("table").tBodies[0];
    body.textContent = "";
    const rows = order(D.rows.filter(shown));
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      if (r.id === state.chosen) tr.className = "chosen";
      for (const [key, , kind] of COLS) {
        const td = document.createElement("td");
        if (key === "thumb") {
          if (r.thumb !== null && r.thumb !== undefined) {
            const img = document.createElement("img");
            img.src = D.thumbs[r.thumb]; img.alt = r.id;
            td.appendChild(img);
          }
        } else if (key === "correct") {
          td.textContent = r.status === "failed" ? "failed" : (r.correct === null ? "" : (r.correct ? "yes" : "no"));
          td.className = r.correct === true ? "right" : (r.correct === false || r.status === "failed" ? "wrong" : "");
        } else {
          td.textContent = kind === "num" ? fmt(r[key], 3) : fmt(r[key]);
          if (kind !== "num") td.className = "name";
          if (key === "id" && r.reason) td.title = r.reason;
        }
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => choose(r.id));
      body.appendChild(tr);
    }
    for (const th of head.children) {
      th.className = th.dataset.key === state.sort ? (state.up ? "sorted-up" : "sorted-down") : "";
    }
    $("count").textContent = `${rows.length} of ${D.rows.length} item(s)`;
    document.body.dataset.ready = "1";
  }

  function choose(id) {
    state.chosen = id;
    $("command").textContent = `dida view ${D.folder} --item ${JSON.stringify(id)}`;
    for (const tr of $("table").tBodies[0].rows) tr.className = tr.dataset.id === id ? "chosen" : "";
  }

  $("filter").addEventListener("input", (e) => { state.text = e.target.value; render(); });
  $("class-filter").addEventListener("change", (e) => { state.cls = e.target.value; render(); });
  $("kind-filter").addEventListener("change", (e) => { state.kind = e.target.value; render(); });
  for (const el of document.querySelectorAll(".thumb[data-id]")) {
    el.addEventListener("click", () => {
      state.text = el.dataset.id; $("filter").value = el.dataset.id; render(); choose(el.dataset.id);
      $("table").scrollIntoView();
    });
  }
  render();
  window.didaAudit = {state, render, data: D};
})();
"""
