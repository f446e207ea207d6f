// Whole-body circulation panel: sliders → (a) the real 0D model simulated live in wasm (more-hemo),
// (b) the parameters normalised (more-imaging's rule, through wasm), MORE-encrypted in wasm, sent to the
// server's wbc-mlp surrogate, and the encrypted answer decrypted and un-scaled here, and (c) when the server
// lists it, the same patient under BFV with wbc-bfv-square: scaled, encrypted and decrypted in a worker
// (web/bfv.js) with the scaling the server lists, never the weights. No key leaves the page.
import init, {
  Key, normalize, wbcParameterNames, wbcParameterLabels, wbcParameterRanges, wbcOutputNames, wbcOutputUnits,
  wbcSimulate,
} from './pkg/more_wasm.js';
import { infer, listModels } from './api.js';
import { predictBfv } from './bfv.js';
import { formatBytes, showTiming } from './render.js';
import { $, setStatus } from './ui.js';

const MODEL_ID = 'wbc-mlp';
const BFV_MODEL_ID = 'wbc-bfv-square';

const OUTPUT_LABELS = {
  systolic_pressure: 'Systolic pressure', diastolic_pressure: 'Diastolic pressure', mean_pressure: 'Mean pressure',
  stroke_volume: 'Stroke volume', cardiac_output: 'Cardiac output', ejection_fraction: 'Ejection fraction',
};

const state = {
  key: null, model: null, modelError: '', names: [], outputs: [], units: [], sliders: [], seq: 0, timer: 0,
  // BFV: the listed model (or null), one run at a time, `bfvWanted` the latest inputs waiting for it.
  bfvModel: null, bfvBusy: false, bfvWanted: null, bfvResults: [],
};
// For the tests and the curious: the BFV results so far ({ seq, raw, outputs, times, bytes, ... }).
window.wbcPage = { bfvResults: state.bfvResults };

// Table columns.
const COL = { name: 0, sim: 1, more: 2, moreDiff: 3, bfv: 4, bfvSim: 5, bfvMore: 6 };

const status = (text, bad = false) => setStatus(text, bad, 'wbc-status');

function fmt(v, digits = 1) { return Number.isFinite(v) ? v.toFixed(digits) : '–'; }

/** Fixed-point with an explicit sign, and no "-0.00". */
function signed(v, digits) {
  if (!Number.isFinite(v)) return '–';
  const t = Math.abs(v).toFixed(digits);
  return Number(t) === 0 ? t : `${v < 0 ? '−' : '+'}${t}`;
}

function buildSliders() {
  const names = wbcParameterNames();
  const labels = wbcParameterLabels();
  const r = wbcParameterRanges();
  state.names = names;
  const box = $('wbc-sliders');
  box.replaceChildren();
  state.sliders = names.map((name, i) => {
    const [min, max, def] = [r[3 * i], r[3 * i + 1], r[3 * i + 2]];
    const div = document.createElement('div');
    div.className = 'slider';
    const id = `wbc-${name}`;
    div.innerHTML = `<label for="${id}"><span></span><output></output></label>
      <input type="range" id="${id}" name="${name}" min="${min}" max="${max}" step="${10 ** Math.floor(Math.log10((max - min) / 100))}" value="${def}">`;
    div.querySelector('span').textContent = labels[i];
    const input = div.querySelector('input');
    const out = div.querySelector('output');
    const digits = max >= 100 ? 0 : max >= 10 ? 1 : 2;
    const show = () => { out.textContent = Number(input.value).toFixed(digits); };
    show();
    input.addEventListener('input', () => { show(); schedule(); });
    box.append(div);
    return { input, show, min, max, def };
  });
}

function values() { return state.sliders.map((s) => Number(s.input.value)); }

function buildTable() {
  state.outputs = wbcOutputNames();
  state.units = wbcOutputUnits();
  const body = $('wbc-table').querySelector('tbody');
  body.replaceChildren();
  state.outputs.forEach((name, i) => {
    const tr = document.createElement('tr');
    tr.dataset.output = name;
    tr.innerHTML = '<td></td><td class="sim pending">–</td><td class="enc pending">–</td><td class="diff">–</td>'
      + '<td class="bfv pending">–</td><td class="bfv diff">–</td><td class="bfv diff">–</td>';
    tr.cells[0].textContent = `${OUTPUT_LABELS[name] || name} (${state.units[i]})`;
    body.append(tr);
  });
}

function row(i) { return $('wbc-table').querySelector('tbody').rows[i]; }

/** Shows `val` in a value cell, for the inputs of update number `seq`. */
function setCell(c, val, seq) {
  c.textContent = fmt(val, 1);
  c.dataset.value = String(val);
  c.dataset.seq = String(seq);
  c.classList.remove('pending');
  c.classList.toggle('stale', seq !== state.seq);
}

/** Cell `c`'s value if it was computed for the inputs of update number `seq`, else NaN. */
function valueAt(c, seq) {
  return c.dataset.value && c.dataset.seq === String(seq) ? Number(c.dataset.value) : NaN;
}

/** Relative difference of `a` against `b` in percent, or '–' when one of them is missing. */
function relative(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) ? `${signed((100 * (a - b)) / b, 2)}%` : '–';
}

/** The difference columns: only between values computed for the same (the latest) inputs. */
function updateDiffs() {
  state.outputs.forEach((_, i) => {
    const c = row(i).cells;
    const s = valueAt(c[COL.sim], state.seq);
    const e = valueAt(c[COL.more], state.seq);
    const b = valueAt(c[COL.bfv], state.seq);
    c[COL.moreDiff].textContent = relative(e, s);
    c[COL.bfvSim].textContent = relative(b, s);
    c[COL.bfvMore].textContent = relative(b, e);
  });
}

function plot(sim) {
  const t = sim.time();
  const pa = sim.aorticPressure();
  const plv = sim.lvPressure();
  const W = 820; const H = 300; const L = 56; const R = 20; const T = 16; const B = 40;
  const tMax = t[t.length - 1];
  const pMax = Math.ceil(Math.max(...pa, ...plv) / 20) * 20;
  const x = (v) => L + (v / tMax) * (W - L - R);
  const y = (v) => T + (1 - v / pMax) * (H - T - B);
  const path = (ys) => Array.from(ys, (v, i) => `${i ? 'L' : 'M'}${x(t[i]).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  let grid = '';
  for (let p = 0; p <= pMax; p += 20) {
    grid += `<line x1="${L}" x2="${W - R}" y1="${y(p)}" y2="${y(p)}" stroke="#e3e6ea"/><text x="${L - 6}" y="${y(p) + 4}" text-anchor="end">${p}</text>`;
  }
  for (let s = 0; s <= tMax + 1e-9; s += 0.1) {
    grid += `<text x="${x(s)}" y="${H - B + 16}" text-anchor="middle">${s.toFixed(1)}</text>`;
  }
  $('wbc-plot').innerHTML = `<svg viewBox="0 0 ${W} ${H}" font-size="12" font-family="sans-serif" role="img"
    aria-label="aortic pressure waveform" id="wbc-waveform">
    <rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fff" stroke="#888"/>${grid}
    <path d="${path(plv)}" fill="none" stroke="#e63946" stroke-width="2"/>
    <path id="wbc-aortic-path" d="${path(pa)}" fill="none" stroke="#1d3557" stroke-width="2.5"/>
    <text x="${W / 2}" y="${H - 4}" text-anchor="middle">time (s)</text>
    <text transform="translate(14,${H / 2}) rotate(-90)" text-anchor="middle">pressure (mmHg)</text>
    <line x1="${W - 190}" x2="${W - 170}" y1="${T + 16}" y2="${T + 16}" stroke="#1d3557" stroke-width="2.5"/><text x="${W - 165}" y="${T + 20}">aorta</text>
    <line x1="${W - 190}" x2="${W - 170}" y1="${T + 34}" y2="${T + 34}" stroke="#e63946" stroke-width="2"/><text x="${W - 165}" y="${T + 38}">left ventricle</text>
  </svg>`;
}

function runSimulation(v, seq) {
  const t0 = performance.now();
  let sim;
  try {
    sim = wbcSimulate(new Float64Array(v));
  } catch (e) {
    state.outputs.forEach((_, i) => { row(i).cells[1].textContent = 'error'; });
    status(`Simulation failed: ${e.message}`, true);
    return null;
  }
  const ms = performance.now() - t0;
  const out = sim.outputs();
  out.forEach((val, i) => setCell(row(i).cells[COL.sim], val, seq));
  plot(sim);
  const beats = sim.beats();
  sim.free();
  document.body.dataset.wbcSim = 'done';
  return { ms, beats };
}

/**
 * The wbc-mlp model's description (or null, with the reason in `state.modelError`) and the listed BFV
 * regression model (or null).
 */
async function loadModels() {
  let list;
  try {
    list = await listModels();
  } catch (e) {
    state.modelError = e.message;
    return { model: null, bfvModel: null };
  }
  const m = list.find((x) => x.id === MODEL_ID);
  const bfvModel = list.find((x) => x.id === BFV_MODEL_ID && x.scheme === 'bfv' && x.output_kind === 'regression') || null;
  if (!m) return { model: null, bfvModel };
  const pre = m.preprocessing;
  return {
    model: {
      id: m.id, mean: pre.mean, std: pre.std, scale: pre.scale,
      outScale: pre.output_scale, outOffset: pre.output_offset, labels: m.labels,
    },
    bfvModel,
  };
}

async function runEncrypted(v, seq) {
  const m = state.model;
  if (!m) return null;
  const n = v.length;
  const x = normalize(new Float32Array(v), m.scale, new Float32Array(m.mean), new Float32Array(m.std));
  const t0 = performance.now();
  const wire = state.key.encrypt(x, new Uint32Array([1, n]));
  const t1 = performance.now();
  const { answer } = await infer(m.id, wire);
  const t2 = performance.now();
  const y = state.key.decrypt(answer);
  const t3 = performance.now();
  if (seq !== state.seq) return null; // a newer request is on its way
  state.outputs.forEach((name, i) => {
    const j = m.labels.length ? m.labels.indexOf(name) : i;
    const val = j >= 0 && j < y.length ? y[j] * (m.outScale[j] ?? 1) + (m.outOffset[j] ?? 0) : NaN;
    setCell(row(i).cells[COL.more], val, seq);
  });
  $('wbc-cipher').textContent = `Sent ${wire.length} bytes of ciphertext (${n} values, 4 planes), received ${answer.length} bytes.`;
  document.body.dataset.wbcEnc = 'done';
  return { encrypt: t1 - t0, roundTrip: t2 - t1, decrypt: t3 - t2 };
}

async function update() {
  const seq = ++state.seq;
  const v = values();
  // For the walkthrough's step 10 (the same tab's session only: nothing leaves the browser).
  try { sessionStorage.setItem('more.lastPatient', JSON.stringify({ names: state.names, values: v })); } catch { /* private mode */ }
  const sim = runSimulation(v, seq);
  let enc = null;
  try {
    enc = await runEncrypted(v, seq);
  } catch (e) {
    state.outputs.forEach((_, i) => { row(i).cells[COL.more].textContent = 'error'; });
    document.body.dataset.wbcEnc = 'error';
    status(`Encrypted prediction failed: ${e.message}`, true);
  }
  if (seq !== state.seq) return; // a newer update runs (and asks for BFV) on newer values
  // BFV after MORE (a few ms): its run then overlaps no other work of this page's main thread.
  scheduleBfv(v, seq);
  updateDiffs();
  const parts = [];
  if (sim) parts.push(`live simulation ${fmt(sim.ms, 0)} ms (${sim.beats} beats to periodic steady state)`);
  if (enc) parts.push(`encrypt ${fmt(enc.encrypt, 1)} ms, server round trip ${fmt(enc.roundTrip, 0)} ms, decrypt ${fmt(enc.decrypt, 1)} ms`);
  $('wbc-timing').textContent = parts.join(' · ');
  if (!state.model) {
    status(state.modelError ? `${state.modelError} Showing the live simulation only.`
      : `The server offers no ${MODEL_ID} model: showing the live simulation only.`, true);
  } else if (enc) {
    status(`Key κ(S) = ${state.key.conditionNumber().toFixed(2)}. Prediction from ${MODEL_ID}, decrypted in this page.`);
  }
}

// ---- BFV ----

/** The patient's parameters in the BFV model's input order (by name, from the sliders' values). */
function bfvInputs(v) {
  return state.bfvModel.input_names.map((name) => {
    const i = state.names.indexOf(name);
    if (i < 0) throw new Error(`the BFV model's input ${name} has no slider on this page`);
    return v[i];
  });
}

/**
 * Asks for a BFV prediction of the inputs of update `seq`. One run at a time: a request during a run
 * replaces any request still waiting (latest wins), and the run loop takes it when the current run ends.
 */
function scheduleBfv(v, seq) {
  if (!state.bfvModel) return;
  state.bfvWanted = { v, seq };
  state.outputs.forEach((_, i) => row(i).cells[COL.bfv].classList.add('stale'));
  if (!state.bfvBusy) runBfvLoop();
}

async function runBfvLoop() {
  state.bfvBusy = true;
  try {
    while (state.bfvWanted) {
      const { v, seq } = state.bfvWanted;
      state.bfvWanted = null;
      await runBfv(v, seq);
    }
  } finally {
    state.bfvBusy = false;
  }
}

async function runBfv(v, seq) {
  const m = state.bfvModel;
  const err = $('wbc-bfv-error');
  $('wbc-bfv-state').textContent = state.bfvResults.length ? '(computing…)'
    : '(computing: the first run also makes the keys and uploads the evaluation key)';
  document.body.dataset.wbcBfv = 'running';
  try {
    const raw = bfvInputs(v);
    const start = performance.now();
    const r = await predictBfv(m, raw);
    const end = performance.now();
    const outputs = state.outputs.map((name) => {
      const j = m.labels.indexOf(name);
      return j >= 0 ? r.outputs[j] : NaN;
    });
    outputs.forEach((val, i) => setCell(row(i).cells[COL.bfv], val, seq));
    updateDiffs();
    const p = r.parameters;
    $('wbc-bfv-params').textContent = `N = ${p.ring_degree}, log2 q = ${p.ciphertext_modulus_bits}, `
      + `t = ${p.plaintext_modulus}, ${p.security_bits}-bit security`;
    showTiming($('wbc-bfv-timing'), Object.entries(r.times), end - start);
    $('wbc-bfv-bytes').textContent = `Sent ${formatBytes(r.bytes)} of ciphertexts (${m.input_ciphertexts}, one `
      + `patient in one slot), received ${formatBytes(r.answerBytes)} (${m.output_ciphertexts}: `
      + `${m.scaling.output_limbs} limbs per output); evaluation key uploaded once: ${formatBytes(r.keyBytes)}.`;
    $('wbc-bfv-state').textContent = `(${BFV_MODEL_ID}, ${Math.round(end - start)} ms)`;
    err.hidden = true;
    state.bfvResults.push({ seq, raw, outputs, times: r.times, bytes: r.bytes, answerBytes: r.answerBytes,
      keyBytes: r.keyBytes, start, end });
    document.body.dataset.wbcBfv = 'done';
  } catch (e) {
    state.outputs.forEach((_, i) => { row(i).cells[COL.bfv].textContent = 'error'; });
    err.textContent = `BFV: ${e.message}`;
    err.hidden = false;
    $('wbc-bfv-state').textContent = '(failed)';
    document.body.dataset.wbcBfv = 'error';
  }
}

/** The BFV panel before the first run: what the server offers, the model's recorded error. */
function describeBfv() {
  const m = state.bfvModel;
  if (!m) {
    $('wbc-bfv-state').textContent = state.modelError ? '(the server is not reachable)'
      : `(the server offers no ${BFV_MODEL_ID} model)`;
    state.outputs.forEach((_, i) => { row(i).cells[COL.bfv].textContent = 'n/a'; });
    document.body.dataset.wbcBfv = 'absent';
    return;
  }
  const mre = m.labels.map((name) => m.metrics[`bfv_test_mre_${name}`]).filter(Number.isFinite);
  if (mre.length) {
    $('wbc-bfv-mre').textContent = `${(100 * Math.min(...mre)).toFixed(2)}–${(100 * Math.max(...mre)).toFixed(2)}%`;
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(update, 120);
}

async function main() {
  try {
    await init();
  } catch (e) {
    status(`Could not load the WebAssembly module: ${e.message}`, true);
    return;
  }
  state.key = Key.generate();
  buildSliders();
  buildTable();
  $('wbc-reset').addEventListener('click', () => {
    state.sliders.forEach((s) => { s.input.value = s.def; s.show(); });
    schedule();
  });
  $('wbc-random').addEventListener('click', () => {
    state.sliders.forEach((s) => { s.input.value = s.min + Math.random() * (s.max - s.min); s.show(); });
    schedule();
  });
  ({ model: state.model, bfvModel: state.bfvModel } = await loadModels());
  describeBfv();
  await update();
}

main();
