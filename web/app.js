// The main page: key panel, model picker, draw-a-digit and angiogram classification on encrypted data.
// Everything cryptographic runs in WebAssembly (web/pkg, built from crates/wasm by scripts/build-web.sh).
//
// For tests and other pages, `window.moreApp` exposes: `ready` (a promise), `wasm` (the module), `getKey()`,
// `keyBytes()`, `models`, `results` (one entry per answer: { task, model, label, index, probs, times, total })
// `classifyDigit()` / `classifyImageBlob(blob, name)`, `addModel(listing)` (a model uploaded by web/own-model.js
// joins the picker, chosen) and `importOwnModel()` (web/own-model.js: import the picked ONNX file, upload it). The last preprocessed digit (28x28, 0..255) is kept in
// sessionStorage['more.lastDigit'] (a JSON array) for the walkthrough page.

import init, * as wasm from './pkg/more_wasm.js';
import { ApiError, infer, listModels, listSamples } from './api.js';
import { DrawingPad } from './draw.js';
import { classifyAngioBfv, classifyDigitBfv } from './bfv-panel.js';
import { setupOwnModel } from './own-model.js';
import { drawGray, formatBytes, showBars, showPlanes, showTiming, softmax } from './render.js';
import { $, FALLBACK, setStatus, setupDropZone, showError } from './ui.js';

const MAX_SIDE = 8192;
const MAX_FILE_BYTES = 64 << 20;

const app = {
  wasm,
  key: null,
  models: [],
  serverUp: false,
  results: [],
  getKey: () => app.key,
  keyBytes: () => app.key.toBytes(),
};
window.moreApp = app;

// ---------------------------------------------------------------- key panel
function setKey(key) {
  if (app.key) app.key.free();
  app.key = key;
  const s = key.matrix();
  const t = $('key-matrix');
  t.replaceChildren();
  for (let r = 0; r < 2; r++) {
    const tr = t.insertRow();
    for (let c = 0; c < 2; c++) tr.insertCell().textContent = s[2 * r + c].toFixed(4);
  }
  $('key-cond').textContent = key.conditionNumber().toFixed(2);
}

function setupKeyPanel() {
  $('key-new').addEventListener('click', () => {
    setKey(wasm.Key.generate());
    setStatus('New key generated. Earlier answers can no longer be decrypted with it.');
  });
  $('key-export').addEventListener('click', () => {
    const blob = new Blob([app.key.toJson()], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'more-key.json';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
  $('key-import').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const text = new TextDecoder().decode(bytes).trim();
      setKey(text.startsWith('{') ? wasm.Key.fromJson(text) : wasm.Key.fromBytes(bytes));
      setStatus(`Key imported from ${file.name}.`);
    } catch (err) {
      setStatus(`Could not import ${file.name}: ${err.message}. Your current key is unchanged.`, true);
    }
  });
}

// ---------------------------------------------------------------- models
const byTask = (task) => app.models.filter((m) => m.task === task && m.scheme !== 'bfv');

function selected(task) {
  const id = $(`model-${task}`).value;
  return app.models.find((m) => m.id === id) || FALLBACK[task];
}

function fillSelect(task) {
  const sel = $(`model-${task}`);
  sel.replaceChildren();
  const list = byTask(task);
  for (const m of list) {
    const ringOnly = m.operations.every((op) => op.ring_only);
    const acc = m.metrics.encrypted_test_accuracy ?? m.metrics.test_accuracy ?? m.metrics.val_accuracy;
    // A server running the coefficient form lists its conversion (2x2 structure) before ring-only layers.
    const tag = ringOnly ? 'ring-only' : m.layers_ring_only ? 'ring-only layers, 2x2 coefficient form' : 'uses 2x2 structure';
    // An uploaded model's id is a long capability: it is shown by the name the file gave it.
    const name = m.id.startsWith('upload-') ? `your model "${m.training?.uploaded_as || 'uploaded'}"` : m.id;
    const opt = new Option(`${name} (${tag})${acc != null ? ` — accuracy ${(100 * acc).toFixed(1)}%` : ''}`, m.id);
    sel.add(opt);
  }
  if (!list.length) sel.add(new Option(app.serverUp ? 'none on this server' : 'server not reachable', ''));
  sel.disabled = !list.length;
}

function describe(m) {
  const div = document.createElement('div');
  const h = document.createElement('h3');
  h.textContent = m.id.startsWith('upload-') ? `your model "${m.training?.uploaded_as || 'uploaded'}" (uploaded)` : m.id;
  const p = document.createElement('p');
  p.textContent = m.description || '';
  const shape = document.createElement('p');
  shape.className = 'hint';
  const pre = m.preprocessing;
  shape.textContent = `input ${JSON.stringify(m.input_shape)} · ${pre.kind} · x·${+pre.scale.toPrecision(4)}, mean ${pre.mean.join(',')}, std ${pre.std.join(',')} · output ${m.output_kind}`;
  const ops = document.createElement('div');
  ops.className = 'ops';
  for (const op of m.operations) {
    const s = document.createElement('span');
    s.className = `op ${op.ring_only ? 'ring' : 'struct'}`;
    s.textContent = op.name;
    s.title = op.ring_only
      ? 'ring-only: additions and products, would run under any homomorphic scheme'
      : 'uses the 2x2 structure: computes the eigenvalues {m, r}, i.e. the server could read the values';
    ops.append(s);
  }
  const t = document.createElement('table');
  for (const [k, v] of Object.entries(m.metrics)) {
    const tr = t.insertRow();
    tr.insertCell().textContent = k.replaceAll('_', ' ');
    tr.insertCell().textContent = metricText(k, v);
  }
  div.append(h, p, shape, ops, t);
  return div;
}

/** A recorded metric as people read it: accuracies in %, tiny values in exponent form. */
function metricText(name, v) {
  if (typeof v !== 'number') return String(v);
  if (name.includes('accuracy') && v >= 0 && v <= 1) return `${(100 * v).toFixed(2)}%`;
  if (name.includes('agreement') && Number.isInteger(v)) return v.toLocaleString('en-US');
  return Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : String(+v.toPrecision(4));
}

function showModelInfo() {
  const info = $('model-info');
  info.replaceChildren();
  for (const task of ['mnist', 'angio']) {
    const m = selected(task);
    if (m.id) info.append(describe(m));
  }
  if (!info.children.length) info.textContent = app.serverUp ? 'This server lists no digit or angiogram model.' : '';
}

async function loadModels() {
  try {
    app.models = await listModels();
    app.serverUp = true;
  } catch (err) {
    app.models = [];
    app.serverUp = false;
    setStatus(err.code === 'network' ? err.message
      : `This server does not offer the MORE API (GET api/v1/models: ${err.status}). Everything local (key, preprocessing, encryption) still works.`, true);
  }
  fillSelect('mnist');
  fillSelect('angio');
  showModelInfo();
}

/** Adds a model the page uploaded (its listing) to its task's picker and chooses it. */
function addModel(listing) {
  app.models = app.models.filter((m) => m.id !== listing.id).concat([listing]);
  fillSelect(listing.task);
  $(`model-${listing.task}`).value = listing.id;
  showModelInfo();
}
app.addModel = addModel;

// ---------------------------------------------------------------- shared pipeline
/**
 * Preprocess → encrypt → show planes → infer → decrypt → show. `t0` is when the user's action ended.
 * `ui` = { input, planes, bytes, prediction, bars, timing, error }.
 */
async function run(task, imageData, ui, t0, firstRows = []) {
  ui.error.hidden = true;
  // Until the new answer arrives, the previous one is shown dimmed (it may belong to another drawing).
  ui.prediction.parentElement.classList.add('stale');
  const model = selected(task);
  const pre = model.preprocessing;
  const [rh, rw] = pre.resize || (task === 'mnist' ? [28, 28] : [128, 128]);
  const ta = performance.now();
  const raw = wasm.preprocessImageRaw(pre.kind || (task === 'mnist' ? 'mnist-digit' : 'angio-frame'),
    imageData.data, imageData.width, imageData.height, rh, rw);
  const [h, w] = task === 'mnist' ? [28, 28] : [rh, rw];
  drawGray(ui.input, raw, w, h);
  if (task === 'mnist') {
    app.lastDigit = raw;
    try { sessionStorage.setItem('more.lastDigit', JSON.stringify(Array.from(raw))); } catch { /* private mode */ }
  } else if (raw.length === 128 * 128) {
    // The BFV classifier's input: the same frame averaged to 28x28 (the rule its training used).
    app.lastAngioBfvInput = wasm.angioBfvInput(raw);
  }
  const x = wasm.normalize(raw, pre.scale, new Float32Array(pre.mean), new Float32Array(pre.std));
  const tb = performance.now();
  const shape = model.input_shape.length ? model.input_shape : [raw.length];
  if (shape.reduce((a, b) => a * b, 1) !== x.length) {
    throw new Error(`Model ${model.id} expects an input of shape ${JSON.stringify(shape)}, but this preprocessing gives ${x.length} values: wrong model for this task.`);
  }
  const wire = app.key.encrypt(x, new Uint32Array(shape));
  const tc = performance.now();
  showPlanes(ui.planes, wasm.wirePlanes(wire), w, h);
  ui.bytes.textContent = `${formatBytes(wire.length)} for ${x.length} values`;
  if (!model.id) {
    throw new ApiError(app.serverUp
      ? `No ${task === 'mnist' ? 'digit' : 'angiogram'} model on this server: the encrypted input above is all that can be shown.`
      : 'The server is not reachable, so nothing was classified. The key, preprocessing and encryption above ran in your browser.');
  }
  const { answer, times, serverTiming } = await infer(model.id, wire);
  const td = performance.now();
  const out = app.key.decrypt(answer);
  const k = model.labels.length || out.length;
  const values = Array.from(out.slice(out.length - k));
  const probs = model.output_kind === 'probabilities' ? values : softmax(values);
  const index = probs.indexOf(Math.max(...probs));
  const label = model.labels[index] ?? String(index);
  const te = performance.now();
  ui.prediction.textContent = label;
  ui.prediction.dataset.label = label;
  ui.prediction.parentElement.classList.remove('stale');
  showBars(ui.bars, model.labels, probs);
  const total = performance.now() - t0;
  const rows = [
    ...firstRows,
    ['preprocess', tb - ta],
    ['encrypt', tc - tb],
    ['upload', times.upload],
    ['server compute', times.server],
    ['download', times.download],
    ['browser (network process, page rendering)', times.browser],
    ['decrypt', te - td],
  ];
  showTiming(ui.timing, rows, total);
  const result = { task, model: model.id, label, index, probs, times: Object.fromEntries(rows), serverTiming, total, bytes: wire.length };
  app.results.push(result);
  ui.prediction.dataset.seq = String(app.results.length);
  return result;
}

// ---------------------------------------------------------------- digit
const digitUi = () => ({
  input: $('digit-input'), planes: $('digit-planes'), bytes: $('digit-bytes'), prediction: $('digit-prediction'),
  bars: $('digit-bars'), timing: $('digit-timing'), error: $('digit-error'),
});

let pad;
let digitBusy = false;
let digitAgain = false;

async function classifyDigit(t0 = performance.now()) {
  if (digitBusy) { digitAgain = true; return null; }
  digitBusy = true;
  let result = null;
  try {
    if (pad.empty) throw new Error('Nothing is drawn yet: draw a digit first.');
    result = await run('mnist', pad.imageData(), digitUi(), t0);
    if ($('bfv-enable')?.checked) classifyDigitBfv(app); // in the background: MORE's answer does not wait
  } catch (err) {
    showError($('digit-error'), err);
  } finally {
    digitBusy = false;
  }
  if (digitAgain) { digitAgain = false; return classifyDigit(pad.lastStrokeEnd); }
  return result;
}
app.classifyDigit = classifyDigit;

function setupDigit() {
  pad = new DrawingPad($('draw'), {
    lineWidth: 20,
    onStrokeEnd: () => { if ($('draw-auto').checked) classifyDigit(pad.lastStrokeEnd); },
  });
  app.pad = pad;
  $('draw-undo').addEventListener('click', () => pad.undo());
  $('draw-clear').addEventListener('click', () => {
    pad.clear();
    $('digit-prediction').textContent = '–';
    $('digit-prediction').dataset.label = '';
    $('digit-error').hidden = true;
  });
  $('digit-classify').addEventListener('click', () => classifyDigit());
}

// ---------------------------------------------------------------- angiogram
const angioUi = () => ({
  input: $('angio-input'), planes: $('angio-planes'), bytes: $('angio-bytes'), prediction: $('angio-prediction'),
  bars: $('angio-bars'), timing: $('angio-timing'), error: $('angio-error'),
});

/** Decodes an image file with the browser (PNG/JPEG), checks its size, returns its RGBA pixels. */
async function decodeImage(blob, name) {
  if (blob.size > MAX_FILE_BYTES) {
    throw new Error(`${name} is too large (${formatBytes(blob.size)}; at most ${formatBytes(MAX_FILE_BYTES)}).`);
  }
  if (blob.type && !/^image\/(png|jpeg)$/.test(blob.type)) {
    throw new Error(`${name} is not a PNG or JPEG image (it is ${blob.type}).`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    throw new Error(`${name} could not be read as a PNG or JPEG image.`);
  }
  const { width, height } = bitmap;
  if (width > MAX_SIDE || height > MAX_SIDE) {
    bitmap.close();
    throw new Error(`${name} is too large (${width}×${height} pixels; at most ${MAX_SIDE} per side).`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, width, height);
  // Preview.
  const src = $('angio-source');
  const side = 256;
  src.width = side;
  src.height = side;
  const s = Math.min(side / width, side / height);
  const pctx = src.getContext('2d');
  pctx.fillStyle = '#000';
  pctx.fillRect(0, 0, side, side);
  pctx.drawImage(bitmap, (side - width * s) / 2, (side - height * s) / 2, width * s, height * s);
  bitmap.close();
  $('angio-source-caption').textContent = `${name} (${width}×${height})`;
  return data;
}

let angioBusy = false;
let angioNext = null;

/** Classifies an image; if one is in flight, the latest request waits and runs after it. */
async function classifyImageBlob(blob, name, t0 = performance.now()) {
  if (angioBusy) { angioNext = [blob, name, t0]; return null; }
  angioBusy = true;
  const ui = angioUi();
  ui.error.hidden = true;
  let result = null;
  try {
    const td = performance.now();
    const data = await decodeImage(blob, name);
    result = await run('angio', data, ui, t0, [['decode image', performance.now() - td]]);
    if ($('angio-bfv-enable')?.checked) classifyAngioBfv(app); // in the background: MORE's answer does not wait
  } catch (err) {
    showError(ui.error, err);
  } finally {
    angioBusy = false;
  }
  if (angioNext) { const next = angioNext; angioNext = null; return classifyImageBlob(...next); }
  return result;
}
app.classifyImageBlob = classifyImageBlob;

async function setupAngio() {
  setupDropZone($('angio-drop'), $('angio-file'), (f) => classifyImageBlob(f, f.name));
  const samples = await listSamples();
  const box = $('angio-samples');
  for (const s of samples) {
    const b = document.createElement('button');
    b.type = 'button';
    b.title = `${s.name}${s.label ? ` (${s.label})` : ''}`;
    b.dataset.sample = s.name;
    const img = document.createElement('img');
    img.src = s.url;
    img.alt = s.name;
    img.loading = 'lazy';
    const cap = document.createElement('span');
    cap.textContent = s.label || s.name;
    b.append(img, cap);
    b.addEventListener('click', async () => {
      const t0 = performance.now();
      try {
        const res = await fetch(s.url);
        if (!res.ok) throw new Error(`The sample ${s.name} could not be loaded (${res.status}).`);
        await classifyImageBlob(await res.blob(), s.name, t0);
      } catch (err) {
        showError($('angio-error'), err instanceof TypeError ? new Error('The server is not reachable.') : err);
      }
    });
    box.append(b);
  }
}

// ---------------------------------------------------------------- start
async function main() {
  try {
    await init();
  } catch (err) {
    setStatus(`The WebAssembly module could not be loaded (${err.message}). Run scripts/build-web.sh and reload.`, true);
    throw err;
  }
  $('version').textContent = wasm.version();
  setKey(wasm.Key.generate());
  setupKeyPanel();
  setupDigit();
  for (const task of ['mnist', 'angio']) $(`model-${task}`).addEventListener('change', showModelInfo);
  setStatus('Key generated in your browser. Contacting the server…');
  await loadModels();
  if (app.serverUp) setStatus(`Ready: key generated in your browser; the server lists ${app.models.length} model(s).`);
  setupOwnModel(app);
  await setupAngio();
}

app.ready = main();
