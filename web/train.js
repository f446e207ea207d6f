// Training on encrypted data through the server (web/train.html). The page is the data owner: it makes the
// data set (simulated patients, or the server's sample digits), encrypts inputs and targets under a fresh
// key held in wasm memory (more-wasm-train), posts the ciphertexts as a training job, follows the job's
// Server-Sent Events (decrypting each epoch's encrypted loss), downloads and decrypts the trained model,
// and compares it with the same network trained here on the same plaintext (train-worker.js). Results are
// also written to #train-result's data attributes, for tests and for anyone scripting the page.

import init, {
  MnistSamples, ModelReadout, TrainedModel, TrainingOwner, WbcData, wbcLatinHypercube, wbcParameterCount,
} from './pkg-train/more_wasm_train.js';
import { $, setStatus, showError } from './ui.js';
import { createJob, deleteJob, jobModel, mnistSamples, serverUrl, trainingInfo } from './api.js';
import { formatBytes } from './render.js';

const HELD_OUT = 0.2;
const OUTPUTS = 6;

// Settings per task: the CLI's defaults (`more train wbc`, `more train mnist`), fewer epochs for digits.
const DEFAULTS = {
  wbc: { network: 'wbc-mlp', epochs: 200, batch_size: 32, lr: 0.003, lr_decay: 0.98 },
  mnist: { network: 'mnist-cnn-relu', epochs: 3, batch_size: 64, lr: 0.002, lr_decay: 0.85 },
};

// What each network does on ciphertexts: ring-only or the 2x2 structure.
const OPERATIONS = {
  'wbc-mlp': 'On ciphertexts: dense layers and the mean squared error are ring-only; tanh uses the 2x2 structure (spectral formula).',
  'mnist-cnn-relu': 'On ciphertexts: convolutions and dense layers are ring-only; ReLU and the softmax, exp and log of cross-entropy use the 2x2 structure.',
  'mnist-cnn-square': 'On ciphertexts: every layer is ring-only (square activations); the exp and log of cross-entropy use the 2x2 structure.',
};
const ADAM = 'Adam\'s square root and reciprocal use the 2x2 structure.';

const state = {
  task: 'wbc',
  info: null, // GET /api/v1/training
  wbc: null, // WbcData
  mnist: null, // { train: MnistSamples, test: MnistSamples }
  job: null,
  events: null,
  abortFollow: null, // rejects the job being followed (cancel)
  busy: false,
};

const worker = () => new Worker(new URL('train-worker.js', import.meta.url), { type: 'module' });
let nextCall = 1;

/** Runs `op` in `w`; `onProgress(message)` sees its progress messages. */
function call(w, op, args, transfer = [], onProgress = () => {}) {
  const id = nextCall++;
  return new Promise((resolve, reject) => {
    const listen = (e) => {
      const m = e.data;
      if (m.id !== id) return;
      if (m.type === 'progress') { onProgress(m); return; }
      w.removeEventListener('message', listen);
      if (m.type === 'result') resolve(m); else reject(new Error(m.error));
    };
    w.addEventListener('message', listen);
    w.addEventListener('error', (e) => reject(new Error(`the worker failed: ${e.message || 'could not load'}`)), { once: true });
    w.postMessage({ id, op, args }, transfer);
  });
}

const fmt = (v, digits = 4) => (Number.isFinite(v) ? Number(v).toPrecision(digits) : '—');
const pct = (v, digits = 3) => `${(100 * v).toFixed(digits)}%`;
const secs = (ms) => `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;

function setResult(values) {
  for (const [k, v] of Object.entries(values)) $('train-result').dataset[k] = String(v);
}

// ---- 1. Data -------------------------------------------------------------------------------------------

async function simulatePatients() {
  const count = Math.round(Number($('wbc-count').value));
  const seed = Math.round(Number($('wbc-seed').value));
  if (!(count >= 20 && count <= 5000)) throw new Error('Choose between 20 and 5,000 patients.');
  if (!(seed >= 0)) throw new Error('The seed must be a whole number ≥ 0.');
  const np = wbcParameterCount();
  const params = wbcLatinHypercube(count, BigInt(seed));
  const workers = Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 4, count));
  const per = Math.ceil(count / workers);
  const done = new Array(workers).fill(0);
  const bar = $('wbc-progress');
  bar.max = count;
  bar.value = 0;
  const t0 = performance.now();
  const pool = [];
  const parts = [];
  for (let w = 0; w < workers; w++) {
    const from = w * per;
    const n = Math.min(per, count - from);
    if (n <= 0) break;
    const wk = worker();
    pool.push(wk);
    const slice = params.slice(from * np, (from + n) * np);
    parts.push(call(wk, 'simulate', { params: slice, count: n }, [slice.buffer], (m) => {
      done[w] = m.done;
      const total = done.reduce((a, b) => a + b, 0);
      bar.value = total;
      $('wbc-summary').textContent = `Simulated ${total.toLocaleString()} of ${count.toLocaleString()} patients…`;
    }));
  }
  let results;
  try { results = await Promise.all(parts); } finally { pool.forEach((wk) => wk.terminate()); }
  const outputs = new Float64Array(count * OUTPUTS);
  let at = 0;
  let failed = 0;
  for (const r of results) {
    outputs.set(r.outputs, at);
    at += r.outputs.length;
    failed += r.failed;
  }
  if (state.wbc) state.wbc.free();
  state.wbc = new WbcData(params, outputs, HELD_OUT, BigInt(seed));
  const ms = performance.now() - t0;
  $('wbc-summary').textContent = `${count.toLocaleString()} patients simulated in ${secs(ms)} (${workers} workers)`
    + `${failed ? `, ${failed} did not converge and are left out` : ''}: ${state.wbc.trainRows()} for training, `
    + `${state.wbc.heldOutRows()} kept aside.`;
  offerPatients(ms);
}

/** After a new patient table: the summary line's figures and the link to save the table as CSV. */
function offerPatients(ms) {
  const link = $('wbc-save');
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([state.wbc.toCsv()], { type: 'text/csv' }));
  link.download = `patients-${state.wbc.trainRows() + state.wbc.heldOutRows()}.csv`;
  link.hidden = false;
  setResult({ simulateMs: ms.toFixed(0) });
}

const MAX_CSV_BYTES = 32 << 20;

async function loadPatients(file) {
  if (file.size > MAX_CSV_BYTES) throw new Error(`${file.name} is ${formatBytes(file.size)}; the page reads at most ${formatBytes(MAX_CSV_BYTES)}.`);
  const seed = Math.round(Number($('wbc-seed').value));
  if (!(seed >= 0)) throw new Error('The seed must be a whole number ≥ 0.');
  const t0 = performance.now();
  const data = WbcData.fromCsv(await file.text(), HELD_OUT, BigInt(seed));
  if (state.wbc) state.wbc.free();
  state.wbc = data;
  $('wbc-summary').textContent = `${(data.trainRows() + data.heldOutRows()).toLocaleString()} patients from ${file.name}: `
    + `${data.trainRows()} for training, ${data.heldOutRows()} kept aside.`;
  offerPatients(performance.now() - t0);
}

function drawDigits(samples) {
  const strip = $('mnist-strip');
  strip.textContent = '';
  const labels = samples.labels();
  for (let i = 0; i < Math.min(16, samples.len()); i++) {
    const c = document.createElement('canvas');
    c.width = 28;
    c.height = 28;
    c.setAttribute('role', 'img');
    c.setAttribute('aria-label', `digit ${labels[i]}`);
    const img = c.getContext('2d').createImageData(28, 28);
    samples.pixels(i).forEach((p, j) => {
      img.data.set([255 - p, 255 - p, 255 - p, 255], 4 * j);
    });
    c.getContext('2d').putImageData(img, 0, 0);
    strip.append(c);
  }
}

async function fetchDigits() {
  const count = Math.round(Number($('mnist-count').value));
  const testCount = Math.round(Number($('mnist-test-count').value));
  if (!(count >= 10 && count <= 10000 && testCount >= 10 && testCount <= 10000)) {
    throw new Error('Choose between 10 and 10,000 training and test digits.');
  }
  $('mnist-summary').textContent = 'Fetching the sample digits…';
  const t0 = performance.now();
  const [train, test] = await Promise.all([mnistSamples('train', count), mnistSamples('test', testCount)]);
  if (state.mnist) { state.mnist.train.free(); state.mnist.test.free(); }
  state.mnist = { train: MnistSamples.parse(train), test: MnistSamples.parse(test) };
  drawDigits(state.mnist.train);
  $('mnist-summary').textContent = `${state.mnist.train.len().toLocaleString()} training digits (${formatBytes(train.length)}) `
    + `and ${state.mnist.test.len().toLocaleString()} test digits in ${secs(performance.now() - t0)}.`;
}

// ---- 2. Settings --------------------------------------------------------------------------------------

function networksFor(task) {
  const all = (state.info && state.info.networks) || [];
  return all.filter((n) => (task === 'wbc' ? n.input_shape.length === 1 : n.input_shape.length === 3));
}

function showTask() {
  state.task = document.querySelector('input[name=task]:checked').value;
  $('wbc-data').hidden = state.task !== 'wbc';
  $('mnist-data').hidden = state.task !== 'mnist';
  const d = DEFAULTS[state.task];
  const select = $('network');
  select.textContent = '';
  for (const n of networksFor(state.task)) select.append(new Option(n.id, n.id, n.id === d.network, n.id === d.network));
  $('epochs').value = d.epochs;
  $('batch-size').value = d.batch_size;
  $('lr').value = d.lr;
  showNetwork();
  updateButtons();
}

function showNetwork() {
  const n = networksFor(state.task).find((x) => x.id === $('network').value);
  $('network-info').textContent = n ? `${n.description}. ${OPERATIONS[n.id] || ''} ${ADAM}` : '';
}

function haveData() {
  return state.task === 'wbc' ? !!state.wbc : !!state.mnist;
}

function updateButtons() {
  const enabled = !!(state.info && state.info.enabled);
  $('train').disabled = state.busy || !enabled || !haveData() || !$('network').value;
  $('cancel').disabled = !state.job;
  $('wbc-generate').disabled = state.busy;
  $('mnist-fetch').disabled = state.busy;
  $('wbc-file').disabled = state.busy;
  document.querySelectorAll('input[name=task]').forEach((r) => { r.disabled = state.busy; });
}

function readRequest() {
  const limits = (state.info && state.info.limits) || {};
  const epochs = Math.round(Number($('epochs').value));
  const batch = Math.round(Number($('batch-size').value));
  const lr = Number($('lr').value);
  const seed = Math.round(Number($('seed').value));
  const maxEpochs = limits.max_epochs || 200;
  const maxBatch = limits.max_batch_size || 512;
  if (!(epochs >= 1 && epochs <= maxEpochs)) throw new Error(`Epochs must be 1 to ${maxEpochs} (the server's limit).`);
  if (!(batch >= 1 && batch <= maxBatch)) throw new Error(`The batch size must be 1 to ${maxBatch} (the server's limit).`);
  if (!(lr > 0 && lr <= 1)) throw new Error('The learning rate must be in (0, 1].');
  if (!(seed >= 0)) throw new Error('The seed must be a whole number ≥ 0.');
  return {
    network: $('network').value, epochs, batch_size: batch, lr, lr_decay: DEFAULTS[state.task].lr_decay,
    optimizer: 'adam', seed,
  };
}

// ---- 3. The loss chart and the epoch table --------------------------------------------------------------

const series = { server: [], page: [] };

function drawChart(epochs) {
  const W = 760; const H = 260; const L = 60; const R = 180; const T = 14; const B = 34;
  const all = [...series.server, ...series.page].filter((v) => Number.isFinite(v) && v > 0);
  const chart = $('loss-chart');
  if (!all.length) { chart.textContent = ''; return; }
  let lo = Math.min(...all); let hi = Math.max(...all);
  const log = hi / lo > 20;
  const f = log ? Math.log10 : (v) => v;
  if (!log) lo = 0;
  if (f(hi) === f(lo)) hi = lo * 1.1 + 1e-9;
  const x = (i) => L + (i / Math.max(1, epochs - 1)) * (W - L - R);
  const y = (v) => T + (1 - (f(v) - f(lo)) / (f(hi) - f(lo))) * (H - T - B);
  const line = (vals, cls) => (vals.length ? `<polyline class="${cls}" points="${vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>` : '');
  const mid = log ? Math.sqrt(lo * hi) : (lo + hi) / 2;
  const ticks = [lo, mid, hi]
    .map((v) => `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v, 3)}</text>`).join('');
  const last = (s) => (s.length ? fmt(s[s.length - 1], 4) : '—');
  chart.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="loss-title">
    <title id="loss-title">Training loss per epoch${log ? ' (log scale)' : ''}: server ${series.server.length} epochs, last ${last(series.server)}; page ${series.page.length} epochs, last ${last(series.page)}</title>
    <line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>
    ${ticks}
    <text x="${L}" y="${H - 8}">epoch 1</text><text x="${W - R}" y="${H - 8}" text-anchor="end">epoch ${epochs}</text>
    ${line(series.server, 'server')}${line(series.page, 'page')}
    <line class="server" x1="${W - R + 12}" y1="${T + 8}" x2="${W - R + 40}" y2="${T + 8}"/><text x="${W - R + 46}" y="${T + 12}">server, encrypted</text>
    <line class="page" x1="${W - R + 12}" y1="${T + 28}" x2="${W - R + 40}" y2="${T + 28}"/><text x="${W - R + 46}" y="${T + 32}">page, plaintext</text>
  </svg>`;
}

function tableRow(epoch) {
  const body = $('epoch-table').tBodies[0];
  let row = body.querySelector(`tr[data-epoch="${epoch}"]`);
  if (!row) {
    row = body.insertRow();
    row.dataset.epoch = epoch;
    row.insertCell().textContent = epoch;
    for (let i = 0; i < 4; i++) row.insertCell().textContent = '…';
  }
  return row;
}

// ---- 4. Train -----------------------------------------------------------------------------------------

function followJob(job, owner, onEpoch) {
  return new Promise((resolve, reject) => {
    const es = new EventSource(serverUrl(job.events_url));
    state.events = es;
    const data = (e) => JSON.parse(e.data);
    const stop = () => { es.close(); if (state.events === es) state.events = null; state.abortFollow = null; };
    state.abortFollow = (err) => { stop(); reject(err); };
    es.addEventListener('queued', (e) => {
      const d = data(e);
      if (typeof d.ahead === 'number') {
        const text = d.ahead === 0
          ? 'Your job is next in the server\'s queue.'
          : `Your job waits in the server's queue: ${d.ahead.toLocaleString()} ${d.ahead === 1 ? 'job' : 'jobs'} ahead (clients take turns).`;
        setStatus(text, false, 'train-status');
      }
    });
    es.addEventListener('started', (e) => {
      const d = data(e);
      $('step-progress').max = d.steps_per_epoch;
      setStatus(`The server is training on ${d.rows.toLocaleString()} encrypted rows…`, false, 'train-status');
    });
    es.addEventListener('step', (e) => {
      const d = data(e);
      $('step-progress').max = d.steps;
      $('step-progress').value = d.step;
    });
    es.addEventListener('epoch', (e) => {
      const d = data(e);
      try { onEpoch(d.epoch, owner.decryptLoss(d.loss), d.seconds); } catch (err) { stop(); reject(err); }
    });
    es.addEventListener('resumed', () => {
      series.server.length = 0;
      setStatus('The server restarted and trains the job again from the start.', false, 'train-status');
    });
    es.addEventListener('done', (e) => { stop(); resolve(data(e)); });
    es.addEventListener('failed', (e) => { stop(); const d = data(e); reject(new Error(`Training failed on the server: ${d.message}`)); });
    es.addEventListener('cancelled', () => { stop(); reject(new Error('The job was cancelled.')); });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) { stop(); reject(new Error('Lost the connection to the server while it was training.')); }
    };
  });
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
}

function showWbcResult(enc, plain, predDiff) {
  const table = $('result-table');
  table.tHead.innerHTML = '<tr><th scope="col">output</th><th scope="col">trained on encrypted data<br><span class="hint">MRE · MAE</span></th>'
    + '<th scope="col">trained on plaintext<br><span class="hint">MRE · MAE</span></th></tr>';
  const body = table.tBodies[0];
  body.textContent = '';
  enc.names.forEach((name, k) => {
    const r = body.insertRow();
    r.insertCell().textContent = name;
    r.insertCell().textContent = `${pct(enc.mean_rel[k])} · ${fmt(enc.mean_abs[k], 3)} ${enc.units[k]}`;
    r.insertCell().textContent = `${pct(plain.mean_rel[k])} · ${fmt(plain.mean_abs[k], 3)} ${plain.units[k]}`;
  });
  const r = body.insertRow();
  r.className = 'total';
  r.insertCell().textContent = 'mean relative error';
  r.insertCell().textContent = pct(enc.mre);
  r.insertCell().textContent = pct(plain.mre);
  const rel = Math.abs(enc.mre - plain.mre) / plain.mre;
  $('result-summary').textContent = `On the ${enc.n} patients kept aside: mean relative error ${pct(enc.mre)} for the `
    + `model trained on encrypted data vs ${pct(plain.mre)} for the plaintext one (relative difference ${pct(rel, 2)}); `
    + `their predictions differ by at most ${fmt(predDiff, 2)} (standardised units).`;
  setResult({ task: 'wbc', encryptedMetric: enc.mre, plainMetric: plain.mre, relativeDifference: rel, maxPredictionDiff: predDiff, heldOut: enc.n });
}

function showMnistResult(encAcc, plainAcc, agree, n) {
  const table = $('result-table');
  table.tHead.innerHTML = '<tr><th scope="col"></th><th scope="col">trained on encrypted data</th><th scope="col">trained on plaintext</th></tr>';
  const body = table.tBodies[0];
  body.textContent = '';
  const r = body.insertRow();
  r.insertCell().textContent = `test accuracy (${n.toLocaleString()} digits)`;
  r.insertCell().textContent = pct(encAcc, 2);
  r.insertCell().textContent = pct(plainAcc, 2);
  $('result-summary').textContent = `On ${n.toLocaleString()} test digits: ${pct(encAcc, 2)} for the model trained on `
    + `encrypted digits vs ${pct(plainAcc, 2)} for the plaintext one; they give the same answer on ${pct(agree, 2)} of them.`;
  setResult({ task: 'mnist', encryptedMetric: encAcc, plainMetric: plainAcc, argmaxAgreement: agree, heldOut: n });
}

function showReadout(encrypted, decrypted) {
  const readout = ModelReadout.read(encrypted);
  const w = decrypted.weights();
  const d = [0, 1].map((i) => maxDiff(readout.candidate(i), w));
  const best = d[0] <= d[1] ? 0 : 1;
  $('readout-summary').textContent = `Without the key, from the ${formatBytes(encrypted.length)} encrypted model alone: candidate `
    + `${'AB'[best]} equals the model you decrypted to within ${fmt(d[best], 2)} on each of its ${w.length.toLocaleString()} `
    + `weights (candidate ${'AB'[1 - best]}, the noise lane's shadow model, differs by up to ${fmt(d[1 - best], 3)}). `
    + 'The server could read the trained model as soon as it had trained it.';
  setResult({ readoutDiff: d[best], readoutOtherDiff: d[1 - best], weights: w.length });
  readout.free();
}

/** A link to save the decrypted model as a model file (it can be loaded by the `more` command). */
function offerDownload(model, network) {
  const link = $('model-download');
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([model.toBytes()], { type: 'application/octet-stream' }));
  link.download = `${network}-trained-encrypted.morenn`;
  link.hidden = false;
}

async function train() {
  $('train-error').hidden = true;
  let request;
  try { request = readRequest(); } catch (err) { showError($('train-error'), err); return; }
  state.busy = true;
  updateButtons();
  series.server.length = 0;
  series.page.length = 0;
  $('epoch-table').tBodies[0].textContent = '';
  $('loss-chart').textContent = '';
  $('result-table').tHead.textContent = '';
  $('result-table').tBodies[0].textContent = '';
  $('result-summary').textContent = 'Training…';
  $('readout-summary').textContent = 'Runs when the model arrives.';
  $('model-download').hidden = true;
  for (const k of Object.keys($('train-result').dataset)) if (k !== 'simulateMs') delete $('train-result').dataset[k];

  // The task, data and settings of this run, fixed now: the page's choices may change while it trains.
  const task = state.task;
  const wbc = state.wbc;
  const mnist = state.mnist;
  let inputs; let targets; let rows;
  if (task === 'wbc') {
    inputs = wbc.trainInputs(); targets = wbc.trainTargets(); rows = wbc.trainRows();
  } else {
    inputs = mnist.train.inputs(); targets = mnist.train.targets(); rows = mnist.train.len();
  }
  const t0 = performance.now();
  const owner = new TrainingOwner();
  const plainWorker = worker();
  try {
    setStatus('Encrypting inputs and targets under a fresh key…', false, 'train-status');
    await new Promise((r) => setTimeout(r, 0));
    const body = owner.jobBody(request, inputs, targets);
    const encryptMs = performance.now() - t0;
    const maxUpload = state.info.limits && state.info.limits.max_upload_bytes;
    if (maxUpload && body.length > maxUpload) {
      const fits = Math.floor(rows * (maxUpload / body.length));
      throw new Error(`The encrypted data set is ${formatBytes(body.length)}; this server accepts at most ${formatBytes(maxUpload)} `
        + `per job. Use at most about ${fits.toLocaleString()} rows.`);
    }
    $('encrypt-info').textContent = `${rows.toLocaleString()} rows encrypted in ${secs(encryptMs)} under a fresh key `
      + `(condition number ${owner.conditionNumber().toFixed(2)}; it stays in this page): ${formatBytes(body.length)} to upload.`;
    const epochs = request.epochs;
    const plainRun = call(plainWorker, 'train', { request, inputs, targets }, [inputs.buffer, targets.buffer], (m) => {
      series.page[m.epoch - 1] = m.loss;
      const row = tableRow(m.epoch);
      row.cells[3].textContent = fmt(m.loss, 5);
      row.cells[4].textContent = (m.ms / 1000).toFixed(3);
      drawChart(epochs);
    });
    plainRun.catch(() => {}); // awaited below; this only keeps an early failure from being reported twice
    setStatus(`Uploading ${formatBytes(body.length)} of ciphertexts…`, false, 'train-status');
    const tUp = performance.now();
    const upload = $('upload-progress');
    upload.max = body.length;
    upload.value = 0;
    state.job = await createJob(state.info.media_type, body, (sent) => {
      upload.value = sent;
      setStatus(`Uploading ciphertexts: ${formatBytes(sent)} of ${formatBytes(body.length)}…`, false, 'train-status');
    });
    upload.value = body.length;
    const uploadMs = performance.now() - tUp;
    setResult({ jobId: state.job.id });
    updateButtons();
    const serverEpochS = [];
    const done = await followJob(state.job, owner, (epoch, loss, seconds) => {
      series.server[epoch - 1] = loss;
      serverEpochS[epoch - 1] = seconds;
      const row = tableRow(epoch);
      row.cells[1].textContent = fmt(loss, 5);
      row.cells[2].textContent = seconds.toFixed(3);
      drawChart(epochs);
    });
    setStatus('Downloading and decrypting the trained model…', false, 'train-status');
    const encrypted = await jobModel(done.model_url || state.job.model_url);
    state.job = null;
    updateButtons();
    const decrypted = owner.decryptModel(encrypted);
    const toModelMs = performance.now() - t0;
    setStatus('Waiting for the plaintext run in this page…', false, 'train-status');
    const plainResult = await plainRun;
    const plain = TrainedModel.fromBytes(plainResult.model);
    if (task === 'wbc') {
      const enc = wbc.errors(decrypted);
      const pl = wbc.errors(plain);
      const x = wbc.heldOutInputs();
      showWbcResult(enc, pl, maxDiff(decrypted.predict(x), plain.predict(x)));
    } else {
      const [enc, pl] = [decrypted.classify(mnist.test), plain.classify(mnist.test)];
      showMnistResult(enc.accuracy(), pl.accuracy(), enc.agreement(pl), mnist.test.len());
      enc.free();
      pl.free();
    }
    const mean = (v) => v.reduce((s, x) => s + x, 0) / Math.max(1, v.length);
    const serverS = mean(serverEpochS);
    const pageS = mean(plainResult.epochMs) / 1000;
    $('result-figures').textContent = `${secs(toModelMs)} from "train" to the decrypted model (encryption ${secs(encryptMs)}, `
      + `upload of ${formatBytes(body.length)} ${secs(uploadMs)}); time per epoch ${serverS.toFixed(3)} s on the server on ciphertexts vs `
      + `${pageS.toFixed(3)} s in this page on plaintext (${(serverS / pageS).toFixed(1)}x); encrypted model ${formatBytes(encrypted.length)}.`;
    setResult({
      epochs, rows, uploadBytes: body.length, modelBytes: encrypted.length, encryptMs: encryptMs.toFixed(0),
      uploadMs: uploadMs.toFixed(0), toModelMs: toModelMs.toFixed(0), serverEpochS: serverS, pageEpochS: pageS,
    });
    offerDownload(decrypted, request.network);
    showReadout(encrypted, decrypted);
    decrypted.free();
    plain.free();
    setStatus('Done: the server trained on ciphertexts only; the page decrypted the model.', false, 'train-status');
    $('train-result').dataset.done = 'true';
  } catch (err) {
    showError($('train-error'), err);
    setStatus('Training did not finish.', true, 'train-status');
    if (state.job) { deleteJob(state.job.id).catch(() => {}); state.job = null; }
  } finally {
    plainWorker.terminate();
    owner.free();
    state.busy = false;
    updateButtons();
  }
}

async function cancel() {
  if (!state.job) return;
  const id = state.job.id;
  state.job = null;
  updateButtons();
  await deleteJob(id);
  if (state.abortFollow) state.abortFollow(new Error('You cancelled the job; the server deleted it and its data.'));
}

// ---- Start --------------------------------------------------------------------------------------------

async function main() {
  await init();
  document.querySelectorAll('input[name=task]').forEach((r) => r.addEventListener('change', showTask));
  $('network').addEventListener('change', showNetwork);
  const guard = (fn, el) => async () => {
    $(el).hidden = true;
    state.busy = true;
    updateButtons();
    try { await fn(); } catch (err) { showError($(el), err); } finally { state.busy = false; updateButtons(); }
  };
  $('wbc-generate').addEventListener('click', guard(simulatePatients, 'train-error'));
  $('mnist-fetch').addEventListener('click', guard(fetchDigits, 'train-error'));
  $('wbc-file').addEventListener('change', () => {
    const file = $('wbc-file').files[0];
    if (file) guard(() => loadPatients(file), 'train-error')();
  });
  $('train').addEventListener('click', () => { train(); });
  $('cancel').addEventListener('click', () => { cancel().catch((err) => showError($('train-error'), err)); });
  try {
    state.info = await trainingInfo();
    if (!state.info.enabled) {
      setStatus('This server does not train (it was started with --no-training). The data steps still run here.', true, 'train-status');
    } else {
      setStatus('Ready: make a data set (step 1), then train (step 2).', false, 'train-status');
    }
  } catch (err) {
    setStatus(`${err.message} The data steps still run here.`, true, 'train-status');
  }
  showTask();
}

main().catch((err) => {
  setStatus(`The page could not start: ${err.message || err}`, true, 'train-status');
});
