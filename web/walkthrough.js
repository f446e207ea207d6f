// The security walkthrough: every step runs real wasm code (crates/wasm/src/attack.rs → more_core::attack) on the
// user's own drawn digit, the digit from the main page (sessionStorage['more.lastDigit']) or an uploaded frame.
// The attacks only ever receive the wire bytes the server would receive; the key is used only to show what the
// legitimate owner gets, for comparison.
//
// For tests, `window.walkthrough` exposes `ready` (a promise), `run()` (runs every step, resolves to the results),
// `results` (per step) and `state` (input levels, recovered levels, ...).

import init, * as wasm from './pkg/more_wasm.js';
import { infer, listModels } from './api.js';
import { DrawingPad } from './draw.js';
import { runBfvPatientStep, runBfvStep, showSchemeCosts } from './bfv-walkthrough.js';
import { drawGray, formatBytes, showBars, showPlanes, softmax } from './render.js';
import { $, FALLBACK, setStatus, setupDropZone, showError, withFallback } from './ui.js';

const wt = { ready: null, results: {}, state: {}, run: () => runAll() };
window.walkthrough = wt;

const st = {
  task: 'mnist', raw: null, w: 28, h: 28, key: null, models: { mnist: FALLBACK.mnist, angio: FALLBACK.angio },
  pixelA: null, pixelB: null, source: '',
};

// ------------------------------------------------------------------ small helpers
const fmt = (v, p = 5) => (Number.isFinite(v) ? (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toPrecision(p)) : String(v));

const fail = (err) => showError($('wt-error'), err);

function matrix(table, m) {
  table.replaceChildren();
  for (const row of [[m[0], m[1]], [m[2], m[3]]]) {
    const tr = table.insertRow();
    for (const v of row) tr.insertCell().textContent = fmt(v);
  }
}

function facts(table, rows) {
  table.replaceChildren();
  for (const [k, v, cls] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    const td = tr.insertCell();
    td.textContent = v;
    if (cls) td.className = cls;
  }
}

function verdict(el, ok, text) {
  el.textContent = text;
  el.classList.toggle('ok', ok === true);
  el.classList.toggle('bad', ok === false);
}

function timed(f) {
  const t0 = performance.now();
  const out = f();
  return [out, performance.now() - t0];
}

const ms = (t) => (t <= 0 ? '< 0.1 ms (below the browser timer resolution)' : t < 1 ? `${(t * 1000).toFixed(0)} µs` : `${t.toFixed(2)} ms`);

function norm() {
  const pre = st.models[st.task].preprocessing;
  const scale = pre.scale ?? 1 / 255;
  const mean = pre.mean && pre.mean.length ? pre.mean[0] : 0;
  const std = pre.std && pre.std.length ? pre.std[0] : 1;
  return { scale, mean, std, lo: (0 - mean) / std, hi: (255 * scale - mean) / std };
}

/** Normalised value → grey level 0..255 of the input. */
function toLevel(v) {
  const { lo, hi } = norm();
  return ((v - lo) / (hi - lo)) * 255;
}

function pixelName(i) {
  return `(${i % st.w}, ${Math.floor(i / st.w)})`;
}

// ------------------------------------------------------------------ input
let pad;

function setRaw(raw, task, source) {
  st.raw = Float32Array.from(raw);
  st.task = task;
  [st.h, st.w] = task === 'mnist' ? [28, 28] : (st.models.angio.preprocessing.resize || [128, 128]);
  st.source = source;
  let best = 0;
  for (let i = 1; i < st.raw.length; i++) if (st.raw[i] > st.raw[best]) best = i;
  st.pixelA = best;
  // A second pixel: a mid-grey ink pixel if there is one, else the first corner.
  let mid = 0;
  for (let i = 0; i < st.raw.length; i++) {
    if (st.raw[i] > 40 && st.raw[i] < 215 && i !== best) { mid = i; break; }
  }
  st.pixelB = mid;
  $('wt-input-size').textContent = `${st.w}×${st.h}`;
  $('wt-source').textContent = source;
  drawGray($('wt-input'), st.raw, st.w, st.h);
}

function fromDrawing() {
  if (pad.empty) throw new Error('Nothing is drawn yet: draw a digit first.');
  const img = pad.imageData();
  const pre = st.models.mnist.preprocessing;
  const raw = wasm.preprocessImageRaw(pre.kind || 'mnist-digit', img.data, img.width, img.height, 28, 28);
  setRaw(raw, 'mnist', 'Your drawing, preprocessed exactly as the main page does it.');
}

async function fromFile(file) {
  const bitmap = await createImageBitmap(file).catch(() => { throw new Error(`${file.name} could not be read as a PNG or JPEG image.`); });
  if (bitmap.width > 8192 || bitmap.height > 8192) throw new Error(`${file.name} is too large.`);
  const c = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  bitmap.close();
  const pre = st.models.angio.preprocessing;
  const [rh, rw] = pre.resize || [128, 128];
  const raw = wasm.preprocessImageRaw(pre.kind || 'angio-frame', data.data, data.width, data.height, rh, rw);
  setRaw(raw, 'angio', `${file.name}: grayscale, box-resized to ${rw}×${rh} as for the angiography model.`);
}

// ------------------------------------------------------------------ steps
function stepKey() {
  matrix($('wt-key'), st.key.matrix());
  $('wt-kappa').textContent = st.key.conditionNumber().toFixed(3);
  return { kappa: st.key.conditionNumber() };
}

function encryptInput() {
  const { scale, mean, std } = norm();
  st.x = wasm.normalize(st.raw, scale, new Float32Array([mean]), new Float32Array([std]));
  const model = st.models[st.task];
  const shape = model.input_shape && model.input_shape.reduce((a, b) => a * b, 1) === st.x.length ? model.input_shape : [1, st.h, st.w];
  st.shape = shape;
  st.wire = st.key.encrypt(st.x, new Uint32Array(shape));
}

function stepPixel() {
  const a = st.pixelA;
  const m = st.x[a];
  const c1 = wasm.wirePlanes(st.key.encrypt(new Float32Array([m]), new Uint32Array([1])));
  const w2 = st.key.encrypt(new Float32Array([m]), new Uint32Array([1]));
  const c2 = wasm.wirePlanes(w2);
  $('px-a-label').textContent = `${pixelName(a)} (grey level ${st.raw[a].toFixed(0)})`;
  $('px-a-value').textContent = fmt(m);
  matrix($('px-c1'), c1);
  matrix($('px-c2'), c2);
  const dec = st.key.decrypt(w2)[0];
  $('px-dec').textContent = `${fmt(dec)} (error ${fmt(Math.abs(dec - m), 2)})`;
  return { m, c1: Array.from(c1), c2: Array.from(c2), decrypted: dec };
}

function stepHomomorphic() {
  const [a, b] = [st.pixelA, st.pixelB];
  const [wire, t] = timed(() => wasm.homomorphicPair(st.wire, a, b));
  const planes = wasm.wirePlanes(wire); // [c00 s, c00 p, c01 s, c01 p, ...]
  matrix($('hm-sum'), [planes[0], planes[2], planes[4], planes[6]]);
  matrix($('hm-prod'), [planes[1], planes[3], planes[5], planes[7]]);
  const [sum, prod] = st.key.decrypt(wire);
  const [ma, mb] = [st.x[a], st.x[b]];
  $('hm-a').textContent = pixelName(a);
  $('hm-b').textContent = pixelName(b);
  facts($('hm-table'), [
    ['m₁, m₂', `${fmt(ma)}, ${fmt(mb)}`],
    ['decrypt(C₁ + C₂)', `${fmt(sum)}  (m₁ + m₂ = ${fmt(ma + mb)})`],
    ['decrypt(C₁ · C₂)', `${fmt(prod)}  (m₁ · m₂ = ${fmt(ma * mb)})`],
    ['server time', ms(t)],
  ]);
  const ok = Math.abs(sum - (ma + mb)) < 1e-3 && Math.abs(prod - ma * mb) < 1e-3;
  return { sum, prod, expectedSum: ma + mb, expectedProd: ma * mb, ok };
}

function stepServer() {
  const planes = wasm.wirePlanes(st.wire);
  showPlanes($('sv-planes'), planes, st.w, st.h);
  const hex = Array.from(st.wire.slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
  facts($('sv-table'), [
    ['media type', 'application/x-more-tensor'],
    ['shape', JSON.stringify(Array.from(wasm.wireShape(st.wire)))],
    ['bytes sent', `${formatBytes(st.wire.length)} (plaintext f32: ${formatBytes(4 * st.x.length)})`],
    ['first bytes', hex],
    ['key sent?', 'no — and the next steps do not need it'],
  ]);
  $('cmp-more-bytes').textContent = `${formatBytes(st.wire.length)} for ${st.x.length} values`;
  return { bytes: st.wire.length, values: st.x.length };
}

function stepEigen() {
  const a = st.pixelA;
  const [e, t] = timed(() => wasm.attackEigenvalues(st.wire, a));
  const { ciphertext: c, trace: tr, det, high, low } = e;
  const m = st.x[a];
  const pixelIsHigh = Math.abs(high - m) <= Math.abs(low - m);
  const pixel = pixelIsHigh ? high : low;
  const partner = pixelIsHigh ? low : high;
  facts($('eg-table'), [
    ['ciphertext of pixel ' + pixelName(a), `[[${fmt(c[0])}, ${fmt(c[1])}], [${fmt(c[2])}, ${fmt(c[3])}]]`],
    ['trace C = m + r', fmt(tr)],
    ['det C = m · r', fmt(det)],
    ['eigenvalues', `${fmt(high)} and ${fmt(low)}`],
    ['your pixel', `${fmt(pixel)} → grey level ${toLevel(pixel).toFixed(2)} (you drew ${st.raw[a].toFixed(2)})`, 'hit'],
    ['its random partner r', fmt(partner)],
    ['time', ms(t)],
  ]);
  const ok = Math.abs(pixel - m) < 1e-3 * (norm().hi - norm().lo);
  verdict($('eg-verdict'), ok, ok
    ? 'One of the two eigenvalues is your pixel. Which one is a coin flip per pixel — step 6 settles it for all pixels at once.'
    : 'Unexpected: neither eigenvalue matches the pixel.');
  return { high, low, pixel, partner, ok };
}

function levelsOf(values) {
  return Array.from(values, (v) => toLevel(v));
}

function compareImage(values) {
  // Compare in grey levels with the input the page encrypted.
  let maxErr = 0;
  let same8 = 0;
  for (let i = 0; i < st.raw.length; i++) {
    const l = toLevel(values[i]);
    maxErr = Math.max(maxErr, Math.abs(l - st.raw[i]));
    if (Math.round(l) === Math.round(st.raw[i])) same8++;
  }
  return { maxErr, same8, n: st.raw.length, equal: same8 === st.raw.length && maxErr < 0.01 };
}

function stepRecover() {
  const { lo, hi } = norm();
  const [rec, t] = timed(() => wasm.attackRecoverImage(st.wire, st.h, st.w, lo, hi));
  const values = rec.values();
  const noise = rec.noise();
  drawGray($('rc-original'), st.raw, st.w, st.h);
  drawGray($('rc-recovered'), levelsOf(values), st.w, st.h);
  let nlo = Infinity;
  let nhi = -Infinity;
  for (const v of noise) { nlo = Math.min(nlo, v); nhi = Math.max(nhi, v); }
  drawGray($('rc-noise'), noise, st.w, st.h, nlo, nhi);
  const cmp = compareImage(values);
  const ev = rec.eigenvectors();
  const s = st.key.matrix();
  // |cos| between recovered eigenvectors and the key's columns (1 = same direction).
  const cos = (v, c) => Math.abs(v[0] * c[0] + v[1] * c[1]) / Math.hypot(...v) / Math.hypot(...c);
  const c0 = [s[0], s[2]];
  const c1 = [s[1], s[3]];
  facts($('rc-table'), [
    ['pixels identical (8-bit)', `${cmp.same8} of ${cmp.n}`, cmp.same8 === cmp.n ? 'hit' : ''],
    ['largest error', `${cmp.maxErr.toExponential(2)} grey levels`],
    ['lane choice confidence', rec.confidence.toFixed(3)],
    ['eigenvector 1 vs key column 1', `|cos| = ${cos([ev[0], ev[1]], c0).toFixed(9)}`],
    ['eigenvector 2 vs key column 2', `|cos| = ${cos([ev[2], ev[3]], c1).toFixed(9)}`],
    ['time (whole image)', ms(t)],
  ]);
  $('cmp-attack-ms').textContent = `${ms(t)} for this ${st.w}×${st.h} image`;
  const el = $('rc-verdict');
  el.dataset.equal = String(cmp.equal);
  verdict(el, cmp.equal, cmp.equal
    ? `The server has your image: all ${cmp.n} pixels, to ${cmp.maxErr.toExponential(1)} grey levels, in ${ms(t)} — without the key.`
    : `Recovered ${cmp.same8} of ${cmp.n} pixels exactly (max error ${cmp.maxErr.toFixed(3)} levels).`);
  const result = { ...cmp, confidence: rec.confidence, ms: t, recovered: levelsOf(values) };
  rec.free?.();
  return result;
}

function stepKnown() {
  // The attacker knows the corners are background (grey level 0). Of the four corners it picks the one whose
  // lanes are furthest apart (computable without the key), for precision.
  const { lo } = norm();
  const corners = [0, st.w - 1, st.w * (st.h - 1), st.w * st.h - 1].filter((i) => st.raw[i] === 0);
  const known = corners.length ? corners : [st.pixelA];
  const value = corners.length ? lo : st.x[st.pixelA];
  let best = known[0];
  let gap = -1;
  for (const i of known) {
    const e = wasm.attackEigenvalues(st.wire, i);
    if (e.high - e.low > gap) { gap = e.high - e.low; best = i; }
  }
  const [stolen, t] = timed(() => wasm.attackKeyFromKnownPixel(st.wire, best, value));
  matrix($('kn-stolen'), stolen.matrix());
  const dec = stolen.decrypt(st.wire);
  drawGray($('kn-image'), levelsOf(dec), st.w, st.h);
  const cmp = compareImage(dec);
  const [tl, t2] = timed(() => wasm.attackLinearRelation(st.wire, best, value));
  const cmpTl = compareImage(tl);
  // The stolen key also decrypts anything else encrypted under your key, e.g. a new pixel.
  const probe = 0.123;
  const other = stolen.decrypt(st.key.encrypt(new Float32Array([probe]), new Uint32Array([1])))[0];
  facts($('kn-table'), [
    ['known plaintext', `pixel ${pixelName(best)} = ${fmt(value)} (${corners.length ? 'black corner' : 'your brightest pixel'})`],
    ['pixels identical with S′', `${cmp.same8} of ${cmp.n} (max error ${cmp.maxErr.toExponential(2)} levels)`, cmp.equal ? 'hit' : ''],
    ['Tsaban–Lifshitz, same pair', `${cmpTl.same8} of ${cmpTl.n} (max error ${cmpTl.maxErr.toExponential(2)} levels)`],
    ['a new ciphertext of 0.123', `S′ decrypts it to ${fmt(other)}`],
    ['time', `${ms(t)} (key), ${ms(t2)} (relation)`],
  ]);
  stolen.free?.();
  const ok = cmp.equal && Math.abs(other - probe) < 1e-4;
  verdict($('kn-verdict'), ok, ok
    ? 'S′ is not your S — its columns are rescaled — but it decrypts everything encrypted under your key.'
    : 'Key recovery did not reproduce the image exactly.');
  return { ...cmp, relation: cmpTl, other, ok };
}

function stepLeaks() {
  const { lo } = norm();
  const [mask, t] = timed(() => wasm.attackInkMask(st.wire, lo));
  drawGray($('lk-mask'), Array.from(mask, (b) => 255 * b), st.w, st.h);
  let right = 0;
  for (let i = 0; i < mask.length; i++) if ((mask[i] === 1) === (st.raw[i] !== 0)) right++;
  const bg = Array.from(st.raw.keys()).filter((i) => st.raw[i] === 0).slice(0, 2);
  const rows = [
    ['ink mask agrees with your input', `${right} of ${mask.length} pixels`, right === mask.length ? 'hit' : ''],
    ['time', ms(t)],
  ];
  let equalBg = null;
  if (bg.length === 2) {
    const e = wasm.attackEquality(st.wire, bg[0], bg[1]);
    equalBg = e.equal;
    rows.push([`pixels ${pixelName(bg[0])} and ${pixelName(bg[1])} equal?`, `${equalBg ? 'yes' : 'no'} (det(C₁ − C₂) = ${fmt(e.det, 3)})`]);
  }
  const e2 = wasm.attackEquality(st.wire, st.pixelA, st.pixelB);
  rows.push([`pixels ${pixelName(st.pixelA)} and ${pixelName(st.pixelB)} equal?`, `${e2.equal ? 'yes' : 'no'} (det(C₁ − C₂) = ${fmt(e2.det, 3)})`]);
  facts($('lk-table'), rows);
  return { agree: right, n: mask.length, equalBackground: equalBg, equalAB: e2.equal };
}

async function stepAnswer() {
  const model = st.models[st.task];
  if (!model.id) {
    verdict($('an-verdict'), null, 'No model for this task on the server (or the server is not reachable): nothing to classify. The attack would run on the encrypted answer exactly as on the input.');
    facts($('an-table'), []);
    return { skipped: true };
  }
  const { lo, hi } = norm();
  const { answer } = await infer(model.id, st.wire);
  const [leak, t] = timed(() => wasm.attackOutputs(st.wire, answer, st.h, st.w, lo, hi));
  const k = model.labels.length || leak.values.length;
  const values = leak.values.slice(leak.values.length - k);
  const serverClass = leak.argmax;
  const owner = Array.from(st.key.decrypt(answer));
  const ownerValues = owner.slice(owner.length - k);
  const ownerClass = ownerValues.indexOf(Math.max(...ownerValues));
  const probs = model.output_kind === 'probabilities' ? values : softmax(values);
  showBars($('an-bars'), model.labels, probs);
  const label = (i) => model.labels[i] ?? String(i);
  let maxDiff = 0;
  for (let i = 0; i < k; i++) maxDiff = Math.max(maxDiff, Math.abs(values[i] - ownerValues[i]));
  facts($('an-table'), [
    ['model', model.id],
    ['the server reads', `class ${label(serverClass)} (${(100 * probs[serverClass]).toFixed(1)}%)`, 'hit'],
    ['you decrypt', `class ${label(ownerClass)}`],
    ['largest score difference', maxDiff.toExponential(2)],
    ['time', ms(t)],
  ]);
  const ok = serverClass === ownerClass;
  verdict($('an-verdict'), ok, ok
    ? `The server knows the answer is “${label(serverClass)}” — with every score — before your page decrypts it.`
    : 'The server read a different class than you decrypted.');
  return { serverClass, ownerClass, ok, maxDiff };
}

// ------------------------------------------------------------------ orchestration
// Runs are queued: a call made while one is running (e.g. a stroke ends during the server round trip) starts
// after it, and `wt.results` only ever holds a complete run.
let queue = Promise.resolve();

function runAll() {
  queue = queue.then(runOnce, runOnce);
  return queue;
}

async function runOnce() {
  $('wt-error').hidden = true;
  try {
    if (!st.raw) fromDrawing();
    const results = {};
    results.key = stepKey();
    encryptInput();
    results.pixel = stepPixel();
    results.homomorphic = stepHomomorphic();
    results.server = stepServer();
    results.eigen = stepEigen();
    results.recover = stepRecover();
    results.known = stepKnown();
    results.leaks = stepLeaks();
    try {
      results.answer = await stepAnswer();
    } catch (err) {
      results.answer = { error: err.message };
      verdict($('an-verdict'), false, err.message);
    }
    wt.results = results;
    wt.state = { task: st.task, w: st.w, h: st.h, input: Array.from(st.raw), recovered: results.recover.recovered };
    document.body.dataset.done = String((Number(document.body.dataset.done) || 0) + 1);
    setStatus(`All steps ran on your ${st.task === 'mnist' ? 'digit' : 'frame'}.`);
  } catch (err) {
    fail(err);
  }
  return wt.results;
}

async function setup() {
  await init();
  $('version').textContent = wasm.version();
  st.key = wasm.Key.generate(10);
  try {
    const models = await listModels();
    for (const task of ['mnist', 'angio']) {
      const m = models.find((x) => x.task === task && x.scheme !== 'bfv');
      if (m) st.models[task] = withFallback(task, m);
    }
    showSchemeCosts(models);
  } catch { /* server not reachable: local steps still run */ }
  $('bfv-run').addEventListener('click', () => runBfvStep(wasm, st).catch((err) => {
    $('bfv-verdict').textContent = `BFV: ${err.message}`;
  }));
  // The WBC page's last patient (stored there in this tab's session), for step 10.
  let patient = null;
  try { patient = JSON.parse(sessionStorage.getItem('more.lastPatient') || 'null'); } catch { /* none */ }
  if (patient && Array.isArray(patient.names) && Array.isArray(patient.values)) {
    $('bfv-run-patient').hidden = false;
    $('bfv-patient-hint').hidden = true;
    $('bfv-run-patient').addEventListener('click', () => runBfvPatientStep(wasm, st, patient).catch((err) => {
      $('bfv-verdict').textContent = `BFV: ${err.message}`;
    }));
  }
  pad = new DrawingPad($('wt-draw'), {
    lineWidth: 20,
    onStrokeEnd: () => {
      if (!$('wt-auto').checked) return;
      try { fromDrawing(); runAll(); } catch (err) { fail(err); }
    },
  });
  wt.pad = pad;
  $('wt-clear').addEventListener('click', () => pad.clear());
  $('wt-run').addEventListener('click', () => {
    try { fromDrawing(); } catch (err) { if (!st.raw) { fail(err); return; } }
    runAll();
  });
  $('wt-newkey').addEventListener('click', () => { st.key = wasm.Key.generate(10); if (st.raw) runAll(); });
  $('wt-input').addEventListener('click', (e) => {
    if (!st.raw) return;
    const r = e.target.getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * st.w);
    const y = Math.floor(((e.clientY - r.top) / r.height) * st.h);
    st.pixelA = Math.min(st.w * st.h - 1, y * st.w + x);
    runAll();
  });
  setupDropZone($('wt-drop'), $('wt-file'), async (f) => {
    try { await fromFile(f); await runAll(); } catch (err) { fail(err); }
  });
  let last = null;
  try { last = JSON.parse(sessionStorage.getItem('more.lastDigit') || 'null'); } catch { /* none */ }
  if (Array.isArray(last) && last.length === 784) {
    const btn = $('wt-last');
    btn.hidden = false;
    btn.addEventListener('click', () => { setRaw(last, 'mnist', 'The digit you drew on the main page.'); runAll(); });
    setRaw(last, 'mnist', 'The digit you drew on the main page (draw a new one here to replace it).');
    await runAll();
  }
  setStatus(st.raw ? 'All steps ran on the digit from the main page.' : 'Ready: draw a digit (or drop an angiogram frame) to start.');
}

wt.ready = setup().catch((err) => {
  setStatus(`Could not start: ${err.message}`, true);
  throw err;
});
