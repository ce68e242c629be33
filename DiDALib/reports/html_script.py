"""The DiDA View page's script. It looks up and composites what Python made (``page_data``): no colour rule and no
evidence is computed here. Kept as text in a Python module so that it ships wherever DiDALib does (pip, Slicer)."""

SCRIPT = r"""
"use strict";
(() => {
  const D = JSON.parse(document.getElementById("dida-data").textContent);
  const $ = (id) => document.getElementById(id);
  const bytes = (text) => {
    const bin = atob(text), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  };
  const [PH, PW] = D.panel, [DEPTH, WIDTH] = D.bscan_shape;
  const LUT = bytes(D.lut), SLUT = D.scale_lut ? bytes(D.scale_lut) : null;
  const ROWS = new Uint16Array(bytes(D.atoms.rows).buffer), COLS = new Uint16Array(bytes(D.atoms.cols).buffer);
  const NC = D.atoms.n_cols, NK = D.classes.length;
  const name = (k) => D.class_names[k];
  const state = {pos: 0, view: "classes", sign: "both", opacity: 0.85, half: D.square.half, choice: [],
                 point: null, userPoint: false, token: 0, renders: 0, lastRenderMs: 0};
  let cellTables = null, dTables = null;  // decoded on the first readout

  // -- decoded images, a bounded cache (most recently used last) ------------------------------------------------
  const cache = new Map();
  const CACHE = 160;
  function pixels(url) {
    let p = cache.get(url);
    if (p) { cache.delete(url); cache.set(url, p); return p; }
    p = new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => {
        const c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext("2d", {willReadFrequently: true});
        g.drawImage(img, 0, 0);
        resolve(g.getImageData(0, 0, c.width, c.height));
      };
      img.onerror = () => reject(new Error("an image of the page could not be decoded"));
      img.src = url;
    });
    cache.set(url, p);
    while (cache.size > CACHE) cache.delete(cache.keys().next().value);
    return p;
  }

  // -- what each panel shows ------------------------------------------------------------------------------------
  const carried = (b) => b.order.filter((k) => D.shown.includes(k));  // the run's shown classes, best first
  function panelItems(b) {
    if (state.view === "contrast") {
      return D.pairs.slice(0, 3).map((pair, j) => ({kind: "pair", j, url: b.pairs[j],
        caption: `${name(pair.a)} vs ${name(pair.b)}  ` +
          `${scoreText(Math.fround(b.scores[pair.a] - b.scores[pair.b]), true)}`}));
    }
    const auto = carried(b);
    return state.choice.map((c, p) => {
      const k = c === "auto" ? auto[p] : Number(c);
      return {kind: "class", k, url: b.maps[D.class_slot[k]], caption: `${name(k)}  ${scoreText(b.scores[k], false)}`};
    });
  }
  const signed = (v, digits) => (v >= 0 ? "+" : "") + v.toFixed(digits);
  // a score named by its mode, as the PNG figures name it: "p = 0.934", "log-odds 15.54", "p +0.120"
  const scoreText = (v, diff) => D.score_label === "p"
    ? (diff ? `p ${signed(v, 3)}` : `p = ${v.toFixed(3)}`)
    : `${D.score_label} ${diff ? signed(v, 2) : v.toFixed(2)}`;

  // Each atom's colour and opacity once (a few thousand atoms), then every pixel: grey * (1 - a) + colour * a.
  const NA = D.atoms.n_rows * NC;
  const keep = new Float64Array(NA), addR = new Float64Array(NA), addG = new Float64Array(NA), addB = new Float64Array(NA);
  function composite(grey, atoms, out) {
    const g = grey.data, a = atoms.data, op = state.opacity, o = new Uint32Array(out.data.buffer);
    const scale = state.view === "scale", useP = state.sign !== "against", useQ = state.sign !== "for";
    const lut = scale ? SLUT : LUT;
    for (let j = 0; j < NA; j++) {
      const e = scale ? a[4 * j + 2] * 4 : (((useP ? a[4 * j] : 0) << 8) | (useQ ? a[4 * j + 1] : 0)) * 4;
      const al = op * lut[e + 3] / 255;
      keep[j] = 1 - al; addR[j] = lut[e] * al + 0.5; addG[j] = lut[e + 1] * al + 0.5; addB[j] = lut[e + 2] * al + 0.5;
    }
    for (let y = 0, i = 0; y < PH; y++) {
      const row = ROWS[y] * NC;
      for (let x = 0; x < PW; x++, i++) {
        const j = row + COLS[x], base = g[4 * i] * keep[j];  // rounded as Math.round: floor(v + 0.5), v >= 0
        o[i] = 0xff000000 |  // RGBA in memory on every little-endian machine (all that run browsers)
           (((base + addB[j]) | 0) << 16) | (((base + addG[j]) | 0) << 8) | ((base + addR[j]) | 0);
      }
    }
  }

  // -- building the panels --------------------------------------------------------------------------------------
  const panels = [];
  function makePanel(p) {
    const box = document.createElement("div");
    box.className = "panel";
    box.style.maxWidth = PW + "px";
    const head = document.createElement("div");
    head.className = "caption";
    const stack = document.createElement("div");
    stack.className = "stack";
    const image = document.createElement("canvas"), mark = document.createElement("canvas");
    for (const c of [image, mark]) { c.width = PW; c.height = PH; stack.appendChild(c); }
    image.className = "image"; mark.className = "mark";
    box.append(head, stack);
    let select = null;
    if (p > 0) {
      select = document.createElement("select");
      select.title = "class of this panel";
      const auto = document.createElement("option");
      auto.value = "auto"; auto.textContent = `top ${p} of the B-scan`;
      select.appendChild(auto);
      for (const k of D.classes) {
        const o = document.createElement("option");
        o.value = String(k); o.textContent = name(k);
        select.appendChild(o);
      }
      select.addEventListener("change", () => { state.choice[p - 1] = select.value; render(); });
      box.appendChild(select);
    }
    mark.addEventListener("mousemove", (e) => {
      const r = mark.getBoundingClientRect();
      const x = Math.min(PW - 1, Math.max(0, Math.floor((e.clientX - r.left) * PW / r.width)));
      const y = Math.min(PH - 1, Math.max(0, Math.floor((e.clientY - r.top) * PH / r.height)));
      state.point = [y, x]; state.userPoint = true;
      drawMarks(); readout();
    });
    $("panels").appendChild(box);
    panels.push({box, head, image, mark, select, data: image.getContext("2d").createImageData(PW, PH)});
  }

  function drawMarks() {
    const [y, x] = state.point.map(Math.round), h = state.half;
    for (const p of panels) {
      const g = p.mark.getContext("2d");
      g.clearRect(0, 0, PW, PH);
      g.strokeStyle = D.square.colour; g.lineWidth = 2;
      g.strokeRect(x - h + 1, y - h + 1, 2 * h - 1, 2 * h - 1);  // pixels x - h .. x + h, as the PNG figure's
    }
  }

  // -- the readout: the run's d of each grid at the cell under the square ----------------------------------------
  function tables() {
    if (dTables) return;
    cellTables = []; dTables = [];
    D.grids.forEach((g, i) => {
      const raw = bytes(D.cells[i]);
      cellTables.push(D.cell_bytes[i] === 2 ? new Uint16Array(raw.buffer) : new Uint32Array(raw.buffer));
      dTables.push(new Float32Array(bytes(D.d[i]).buffer));
    });
  }
  function dAt(i, k, y, x) {  // grid i, class k, panel pixel (y, x)
    const cell = cellTables[i][ROWS[y] * NC + COLS[x]], cells = dTables[i].length / (D.bscans.length * NK);
    return dTables[i][(state.pos * NK + D.class_slot[k]) * cells + cell];
  }
  function values() {
    tables();
    const [y, x] = state.point.map(Math.round);
    const items = panelItems(D.bscans[state.pos]);
    return {row: Math.min(DEPTH - 1, Math.floor((y + 0.5) * DEPTH / PH)),
            col: Math.min(WIDTH - 1, Math.floor((x + 0.5) * WIDTH / PW)),
            panels: items.map((it) => ({caption: it.caption, d: D.grids.map((g, i) => it.kind === "class"
              ? dAt(i, it.k, y, x) : Math.fround(dAt(i, D.pairs[it.j].a, y, x) - dAt(i, D.pairs[it.j].b, y, x)))}))};
  }
  function readout() {
    const v = values(), t = $("readout-table");
    $("readout-where").textContent = `B-scan ${D.bscans[state.pos].index}, pixel row ${v.row}, column ${v.col}`;
    t.replaceChildren();
    const head = t.insertRow();
    for (const text of ["grid", ...v.panels.map((p) => p.caption)]) {
      const th = document.createElement("th"); th.textContent = text; head.appendChild(th);
    }
    D.grids.forEach((g, i) => {
      const tr = t.insertRow();
      tr.insertCell().textContent = D.grid_names[i];
      for (const p of v.panels) {
        const c = tr.insertCell(), d = p.d[i];
        c.textContent = (d >= 0 ? "+" : "") + d.toPrecision(3);
        c.className = d > 0 ? "for" : d < 0 ? "against" : "";
      }
    });
  }

  // -- drawing a B-scan -----------------------------------------------------------------------------------------
  async function render() {
    const token = ++state.token, started = performance.now();
    const b = D.bscans[state.pos], items = panelItems(b);
    const [grey, ...maps] = await Promise.all([pixels(b.grey), ...items.map((it) => pixels(it.url))]);
    if (token !== state.token) return;
    panels.forEach((p, i) => { p.box.hidden = i > items.length; });
    panels[0].image.getContext("2d").putImageData(grey, 0, 0);
    panels[0].head.textContent = `B-scan ${b.index}` + (b.truth ? ` · label (file): ${b.truth}` : "");
    items.forEach((it, i) => {
      const p = panels[i + 1];
      composite(grey, maps[i], p.data);
      p.image.getContext("2d").putImageData(p.data, 0, 0);
      p.head.textContent = it.caption;
      if (p.select) p.select.hidden = it.kind !== "class";
    });
    if (!state.userPoint) state.point = [b.point[0] * PH / DEPTH, b.point[1] * PW / WIDTH];
    drawMarks(); readout();
    if (plot) drawPlot();
    if (D.enface) drawEnface(items);
    $("bscan").value = String(state.pos);
    $("bscan-label").textContent = `${b.index} (${state.pos + 1} of ${D.bscans.length})`;
    state.renders++; state.lastRenderMs = performance.now() - started;
    if (!document.body.dataset.ready) {
      document.body.dataset.ready = String(performance.now());
      console.info(`DiDA View ready in ${Math.round(performance.now())} ms`);
    }
    setTimeout(() => prefetch(token), 0);
  }
  function prefetch(token) {
    for (const q of [state.pos + 1, state.pos - 1]) {
      if (token !== state.token || q < 0 || q >= D.bscans.length) continue;
      const b = D.bscans[q];
      pixels(b.grey); panelItems(b).forEach((it) => pixels(it.url));
    }
  }
  function go(pos) {
    const next = Math.min(D.bscans.length - 1, Math.max(0, pos));
    if (next !== state.pos || !state.renders) { state.pos = next; render(); }
  }
  function nearest(index) {
    let best = 0;
    D.bscans.forEach((b, i) => { if (Math.abs(b.index - index) < Math.abs(D.bscans[best].index - index)) best = i; });
    return best;
  }

  // -- scores along the volume ----------------------------------------------------------------------------------
  const plot = $("plot");  // absent where one B-scan was explained: a line of one point says nothing
  function plotX(index) { return 40 + (plot.width - 50) * (D.n_bscans > 1 ? index / (D.n_bscans - 1) : 0.5); }
  let plotBase = null;  // the lines, drawn once
  function drawPlot() {
    const H = plot.height, top = 8, bottom = H - 22;
    if (!plotBase) plotBase = plotLines(top, bottom);
    const g = plot.getContext("2d");
    g.clearRect(0, 0, plot.width, H);
    g.drawImage(plotBase, 0, 0);
    g.strokeStyle = D.square.colour; g.lineWidth = 2; g.beginPath();
    const cx = plotX(D.bscans[state.pos].index);
    g.moveTo(cx, top); g.lineTo(cx, bottom); g.stroke();
  }
  function plotLines(top, bottom) {
    const base = document.createElement("canvas");
    base.width = plot.width; base.height = plot.height;
    const g = base.getContext("2d"), H = plot.height;
    const all = D.bscans.flatMap((b) => D.classes.map((k) => b.scores[k]));
    let lo = all.reduce((m, v) => Math.min(m, v), 0), hi = all.reduce((m, v) => Math.max(m, v), -Infinity);
    if (D.score_unit === "probability") { lo = 0; hi = 1; }
    if (hi <= lo) hi = lo + 1;
    const Y = (v) => bottom - (bottom - top) * (v - lo) / (hi - lo);
    g.fillStyle = "#ccc"; g.font = "11px sans-serif";
    g.fillText(hi.toPrecision(2), 2, top + 8); g.fillText(lo.toPrecision(2), 2, bottom);
    g.fillText("B-scan 0", 40, H - 6); g.fillText(String(D.n_bscans - 1), plot.width - 30, H - 6);
    g.strokeStyle = "#666"; g.strokeRect(40, top, plot.width - 50, bottom - top);
    D.classes.forEach((k, s) => {
      g.strokeStyle = g.fillStyle = D.class_colours[s]; g.lineWidth = 1.5; g.beginPath();
      D.bscans.forEach((b, i) => { const px = plotX(b.index), py = Y(b.scores[k]); i ? g.lineTo(px, py) : g.moveTo(px, py); });
      g.stroke();
      D.bscans.forEach((b) => g.fillRect(plotX(b.index) - 1.5, Y(b.scores[k]) - 1.5, 3, 3));
    });
    return base;
  }
  if (plot) plot.addEventListener("click", (e) => {
    const r = plot.getBoundingClientRect(), x = (e.clientX - r.left) * plot.width / r.width;
    go(nearest(Math.round((x - 40) / (plot.width - 50) * (D.n_bscans - 1))));
  });

  // -- en-face maps of the panels' classes ----------------------------------------------------------------------
  const enface = [];
  // a volume of one B-scan has no en-face section (D.enface is null)
  const enfaceHeight = D.enface ? Math.max(24, D.n_bscans, Math.min(4 * PW, Math.round(PW * D.enface.aspect))) : 0;
  function drawEnface(items) {
    $("enface-section").hidden = state.view === "contrast";
    items.forEach((it, i) => {
      const e = enface[i];
      if (!e || it.kind !== "class") return;
      e.box.hidden = false;
      e.caption.textContent = name(it.k);
      enfaceImage(it.k).then((tmp) => {
        const g = e.canvas.getContext("2d");
        g.imageSmoothingEnabled = false;
        g.drawImage(tmp, 0, 0, PW, enfaceHeight);
        const y = (D.n_bscans - 0.5 - D.bscans[state.pos].index) * enfaceHeight / D.n_bscans;
        g.strokeStyle = D.square.colour; g.lineWidth = 1; g.beginPath(); g.moveTo(0, y); g.lineTo(PW, y); g.stroke();
      });
    });
    enface.forEach((e, i) => { if (i >= items.length) e.box.hidden = true; });
  }
  const enfaceImages = new Map();
  function enfaceImage(k) {  // each class's map as a canvas, made once
    if (!enfaceImages.has(k)) {
      enfaceImages.set(k, pixels(D.enface.images[D.class_slot[k]]).then((img) => {
        const c = document.createElement("canvas");
        c.width = img.width; c.height = img.height;
        c.getContext("2d").putImageData(img, 0, 0);
        return c;
      }));
    }
    return enfaceImages.get(k);
  }
  function makeEnface() {
    const box = document.createElement("div"), caption = document.createElement("div");
    const canvas = document.createElement("canvas");
    box.className = "panel"; box.style.maxWidth = PW + "px"; caption.className = "caption";
    canvas.width = PW; canvas.height = enfaceHeight;
    canvas.addEventListener("click", (e) => {
      const r = canvas.getBoundingClientRect(), y = (e.clientY - r.top) / r.height;
      go(nearest(Math.floor((1 - y) * D.n_bscans)));
    });
    box.append(caption, canvas);
    $("enface").appendChild(box);
    enface.push({box, caption, canvas});
  }

  // -- controls ------------------------------------------------------------------------------------------------
  function setUp() {
    const n = Math.min(3, D.shown.length);
    for (let p = 0; p <= n; p++) makePanel(p);
    for (let p = 0; p < n; p++) { state.choice.push("auto"); if (D.enface) makeEnface(); }
    const slider = $("bscan");
    slider.max = String(D.bscans.length - 1);
    slider.disabled = D.bscans.length < 2;
    slider.addEventListener("input", () => go(Number(slider.value)));
    $("prev").addEventListener("click", () => go(state.pos - 1));
    $("next").addEventListener("click", () => go(state.pos + 1));
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
      const to = {ArrowLeft: state.pos - 1, ArrowRight: state.pos + 1, Home: 0, End: D.bscans.length - 1}[e.key];
      if (to !== undefined) { e.preventDefault(); go(to); }
    });
    for (const r of document.querySelectorAll("input[name=view]")) {
      r.disabled = (r.value === "contrast" && !D.pairs.length) || (r.value === "scale" && !SLUT);
      r.addEventListener("change", () => { state.view = r.value; legend(); render(); });
    }
    for (const r of document.querySelectorAll("input[name=sign]")) {
      r.addEventListener("change", () => { state.sign = r.value; render(); });
    }
    const opacity = $("opacity"), square = $("square");
    opacity.addEventListener("input", () => {
      state.opacity = Number(opacity.value); $("opacity-label").textContent = opacity.value; render();
    });
    square.value = String(state.half);
    $("square-label").textContent = `${2 * state.half} px`;
    square.addEventListener("input", () => {
      state.half = Number(square.value); $("square-label").textContent = `${2 * state.half} px`; drawMarks();
    });
    $("reset-square").addEventListener("click", () => { state.userPoint = false; render(); });
    if (plot) {
      const leg = $("plot-legend");
      D.classes.forEach((k, s) => {
        const span = document.createElement("span"), swatch = document.createElement("i");
        swatch.style.background = D.class_colours[s];
        span.append(swatch, name(k));
        leg.appendChild(span);
      });
      plot.width = Math.max(480, Math.min(4 * PW + 18, 1400));
    }
    legend();
  }
  function legend() {
    const el = $("legend");
    el.replaceChildren();
    if (state.view === "scale") {
      el.append("feature scale: the grid whose normalised evidence peaks, opaque as the evidence: ");
      for (const s of D.scale_legend) {
        const span = document.createElement("span"), swatch = document.createElement("i");
        swatch.style.background = s.colour;
        span.append(swatch, s.text);
        el.appendChild(span);
      }
      return;
    }
    const contrast = state.view === "contrast";
    el.textContent = contrast
      ? `red: speaks for the first class rather than the second · blue: for the second · full brightness at |dA - dB| = ${D.contrast_scale.toPrecision(3)} (${D.score_unit})`
      : `red: evidence for the class · blue: evidence against · full brightness at |d| = ${D.saturation_scale.toPrecision(3)} (${D.score_unit})`
        + (D.estimator === "shapley" ? " · d: each cell's Shapley value" : "");
  }

  window.didaView = {state, values, go, render, data: D};
  setUp();
  go(0);
})();
"""
