// numcnn serve: the drawing pad, the upload tab, and every layer's output as canvases.
// The server does the work (POST /api/predict, docs/serve.md); this file draws its answer.
// Scripting hooks: window.numcnn.last (the last answer), window.numcnn.updates (answers
// drawn so far), window.numcnn.predict(body) (send a request and draw the answer).
"use strict";

const state = { model: null, last: null, updates: 0, inFlight: false, pending: null,
                lastSent: 0, timer: null, inked: false, drawing: false };
const THROTTLE_MS = 120;  // at most one request in flight, at least this far apart
const MAX_UPLOAD_SIDE = 1024;  // uploads larger than this are shrunk before sending
const $ = (id) => document.getElementById(id);

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(a < 1 ? 3 : 2);
}

function bytes(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------- the pad
const pad = $("pad"), pen = pad.getContext("2d");

function blank() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  state.inked = false;
}

function at(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

function stroke(from, to, pressure) {
  pen.strokeStyle = "#fff";
  pen.lineCap = pen.lineJoin = "round";
  pen.lineWidth = 20 * (pressure > 0 && pressure !== 0.5 ? 0.6 + 0.8 * pressure : 1);
  pen.beginPath();
  pen.moveTo(from[0], from[1]);
  pen.lineTo(to[0], to[1]);
  pen.stroke();
  state.inked = true;
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  state.drawing = at(e);
  stroke(state.drawing, state.drawing, e.pressure);
  schedule();
});
pad.addEventListener("pointermove", (e) => {
  if (!state.drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = at(ev);
    stroke(state.drawing, p, ev.pressure);
    state.drawing = p;
  }
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!state.drawing) return;
    state.drawing = false;
    schedule(true);
  });
}

$("clear").addEventListener("click", () => {
  blank();
  clearTimeout(state.timer);
  state.pending = null;
  $("prediction").textContent = "";
  $("confidence").textContent = "";
  setStatus("");
});

// a request at most every THROTTLE_MS while drawing; the last one always goes
function schedule(now) {
  if (!state.inked) return;
  clearTimeout(state.timer);
  const wait = now ? 0 : Math.max(0, state.lastSent + THROTTLE_MS - performance.now());
  state.timer = setTimeout(() => send({ image: pad.toDataURL("image/png") }), wait);
}

async function send(body) {
  if (state.inFlight) { state.pending = body; return; }
  state.inFlight = true;
  state.lastSent = performance.now();
  try {
    await predict(body);
  } finally {
    state.inFlight = false;
    if (state.pending) { const next = state.pending; state.pending = null; send(next); }
  }
}

async function predict(body) {
  let answer;
  try {
    const r = await fetch("/api/predict", { method: "POST", body: JSON.stringify(body),
                                             headers: { "Content-Type": "application/json" } });
    answer = await r.json();
    if (!r.ok) { setStatus(answer.error || `error ${r.status}`, true); return null; }
  } catch (err) {
    setStatus(`no answer from the server (${err})`, true);
    return null;
  }
  draw(answer);
  return answer;
}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// ---------------------------------------------------------------- upload tab
function selectTab(name) {
  for (const t of ["draw", "upload"]) {
    $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`panel-${t}`).hidden = t !== name;
  }
}
$("tab-draw").addEventListener("click", () => selectTab("draw"));
$("tab-upload").addEventListener("click", () => selectTab("upload"));
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    $("preview").src = reader.result;
    $("preview").hidden = false;
    // a phone's photo is megabytes: send it at most MAX_UPLOAD_SIDE pixels a side
    const img = new Image();
    img.onload = () => {
      const k = Math.min(1, MAX_UPLOAD_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
      if (k === 1) { send({ image: reader.result }); return; }
      const c = document.createElement("canvas");
      c.width = Math.max(1, Math.round(img.naturalWidth * k));
      c.height = Math.max(1, Math.round(img.naturalHeight * k));
      c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
      send({ image: c.toDataURL("image/png") });
    };
    img.onerror = () => send({ image: reader.result });  // the server names the problem
    img.src = reader.result;
  };
  reader.readAsDataURL(file);
});

// ---------------------------------------------------------------- drawing an answer
// map m of a layer: its bytes q as grey levels, per map (q itself) or on the layer's scale
function paint(canvas, layer, m, q, shared) {
  const w = layer.w, h = layer.h, n = w * h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const lo = layer.min[m], hi = layer.max[m];
  const L = shared ? Math.min(...layer.min) : lo, H = shared ? Math.max(...layer.max) : hi;
  const k = H > L ? (hi - lo) / (H - L) : 0, b = H > L ? 255 * (lo - L) / (H - L) : 0;
  for (let i = 0; i < n; i++) {
    const g = shared ? Math.round(b + k * q[m * n + i]) : q[m * n + i];
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = g;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function layerBlock(layer, index) {
  const id = `layer-${index}`;
  let block = $(id);
  const key = `${layer.name}|${layer.shown}|${layer.h}|${layer.w}|${layer.layout}`;
  if (block && block.dataset.key === key) return block;
  if (!block) {
    block = document.createElement("div");
    block.id = id;
    block.className = "layer";
    $("layers").appendChild(block);
  }
  block.dataset.key = key;
  block.innerHTML = "";
  const title = document.createElement("h3");
  const shape = layer.shape.join("×");
  let note = layer.shown < layer.count ? ` · first ${layer.shown} of ${layer.count} maps` : "";
  if (layer.factor > 1) note += ` · shown at 1/${layer.factor} (block means)`;
  if (layer.layout === "vector" && layer.w < layer.units) note += ` · first ${layer.w} units`;
  title.textContent = `${layer.name} `;
  const sub = document.createElement("span");
  sub.textContent = `${layer.type} · ${shape}${note}`;
  title.appendChild(sub);
  block.appendChild(title);
  const maps = document.createElement("div");
  maps.className = "maps";
  const target = layer.shown > 12 ? 40 : 56;  // CSS pixels of a map's longer side
  const scale = Math.max(1, Math.round(target / Math.max(layer.h, layer.w)));
  for (let m = 0; m < layer.shown; m++) {
    const c = document.createElement("canvas");
    c.className = layer.layout === "vector" ? "fmap strip" : "fmap";
    c.width = layer.w;
    c.height = layer.h;
    c.dataset.layer = layer.name;
    c.dataset.map = String(m);
    if (layer.layout !== "vector") {
      c.style.width = `${layer.w * scale}px`;
      c.style.height = `${layer.h * scale}px`;
    }
    c.addEventListener("mousemove", hover);
    c.addEventListener("mouseleave", () => { $("tip").hidden = true; });
    maps.appendChild(c);
  }
  block.appendChild(maps);
  return block;
}

function drawLayers(answer) {
  const shared = $("shared").checked;
  const layers = answer.layers || [];
  layers.forEach((layer, i) => {
    const block = layerBlock(layer, i), q = bytes(layer.data);
    block.querySelectorAll("canvas").forEach((c, m) => paint(c, layer, m, q, shared));
    layer.q = q;
  });
  const all = $("layers").children;
  while (all.length > layers.length) all[all.length - 1].remove();
}

function bars(el, values, best, labels, text) {
  el.innerHTML = "";
  const top = Math.max(...values.map(Math.abs), 1e-12);
  values.forEach((v, k) => {
    const name = document.createElement("span"), bar = document.createElement("div");
    const fill = document.createElement("div"), num = document.createElement("span");
    name.textContent = labels ? labels[k] : String(k);
    bar.className = "bar";
    fill.style.width = `${(100 * Math.abs(v) / top).toFixed(1)}%`;
    bar.appendChild(fill);
    num.textContent = text(v);
    for (const part of [name, bar, num]) {
      if (k === best) part.classList.add("best");
      el.appendChild(part);
    }
  });
}

function draw(answer) {
  state.last = answer;
  const input = answer.input, inCanvas = $("input");
  inCanvas.width = input.w;
  inCanvas.height = input.h;
  paint(inCanvas, input, 0, bytes(input.data), false);
  const k = answer.prediction, probs = answer.probabilities;
  $("prediction").textContent = String(k);
  $("confidence").textContent = `${(100 * probs[k]).toFixed(1)} %`;
  bars($("bars"), probs, k, null, (p) => `${(100 * p).toFixed(1)} %`);
  $("rbf").hidden = !answer.distances;
  if (answer.distances) bars($("distances"), answer.distances, k, null, fmt);
  drawLayers(answer);
  setStatus(`forward pass ${answer.ms.toFixed(1)} ms`);
  state.updates += 1;
  document.body.dataset.updates = String(state.updates);
}

function hover(e) {
  const c = e.currentTarget, answer = state.last;
  if (!answer) return;
  const layer = answer.layers.find((l) => l.name === c.dataset.layer);
  if (!layer || !layer.q) return;
  const m = Number(c.dataset.map), r = c.getBoundingClientRect();
  const col = Math.min(layer.w - 1, Math.floor((e.clientX - r.left) / r.width * layer.w));
  const row = Math.min(layer.h - 1, Math.floor((e.clientY - r.top) / r.height * layer.h));
  const q = layer.q[(m * layer.h + row) * layer.w + col];
  const v = layer.min[m] + q * (layer.max[m] - layer.min[m]) / 255;
  const where = layer.layout === "vector" ? `unit ${col}`
    : `map ${m}, (${row * layer.factor}, ${col * layer.factor})`;
  const tip = $("tip");
  tip.textContent = `${layer.name} ${where}: ${fmt(v)}  ·  ${layer.type} ${layer.shape.join("×")}`;
  tip.style.left = `${e.clientX + 12}px`;
  tip.style.top = `${e.clientY + 12}px`;
  tip.hidden = false;
}

$("shared").addEventListener("change", () => { if (state.last) drawLayers(state.last); });

// ---------------------------------------------------------------- start
async function start() {
  blank();
  try {
    const r = await fetch("/api/model");
    const model = await r.json();
    state.model = model;
    $("model-name").textContent = model.name;
    const out = { rbf: "RBF distances (LeNet-5, 1998)", logits: "logits → softmax",
                  probabilities: "probabilities" }[model.output];
    $("model-info").textContent = `input ${model.input_shape.join("×")} · ` +
      `${model.layers.length} layers · ${model.classes} classes · output: ${out}` +
      (model.digits ? " · drawings are made MNIST digits (grey, cropped, 20×20, centred)" : "");
    if (model.output === "rbf") $("bars-title").textContent = "softmax of −distance";
  } catch (err) {
    setStatus(`cannot read the model (${err})`, true);
  }
}

window.numcnn = {
  get last() { return state.last; },
  get updates() { return state.updates; },
  predict: (body) => predict(body),
};
start();
