// The BFV column beside the MORE answer on the main page: the same preprocessed digit, classified under BFV
// (web/bfv.js), with its answer, time split and bytes. Only imported code; the BFV wasm loads on first use.

import { classifyBfv } from './bfv.js';
import { formatBytes, showTiming } from './render.js';

const $ = (id) => document.getElementById(id);

let busy = false;
let again = false;

/**
 * Classifies `app.lastDigit` under the server's BFV model and shows it; records it in `app.bfvResults`.
 * One at a time: a call during a run makes one more run afterwards, on the latest digit.
 */
export async function classifyDigitBfv(app) {
  if (busy) { again = true; return null; }
  busy = true;
  try {
    return await classifyOnce(app);
  } finally {
    busy = false;
    if (again) { again = false; classifyDigitBfv(app); }
  }
}

async function classifyOnce(app) {
  const model = app.models.find((m) => m.scheme === 'bfv' && m.task === 'mnist');
  const err = $('bfv-error');
  err.hidden = true;
  if (!model || !app.lastDigit) {
    if (!model) { err.textContent = 'This server offers no BFV model.'; err.hidden = false; }
    return null;
  }
  $('bfv-result').hidden = false;
  $('bfv-prediction').parentElement.classList.add('stale');
  try {
    const t0 = performance.now();
    const r = await classifyBfv(model, app.lastDigit);
    const total = performance.now() - t0;
    $('bfv-prediction').textContent = r.label;
    $('bfv-prediction').dataset.label = r.label;
    $('bfv-prediction').parentElement.classList.remove('stale');
    const p = r.parameters;
    $('bfv-params').textContent = `N = ${p.ring_degree}, log2 q = ${p.ciphertext_modulus_bits}, t = ${p.plaintext_modulus}, ${p.security_bits}-bit`;
    showTiming($('bfv-timing'), Object.entries(r.times), total);
    $('bfv-bytes').textContent = `sent ${formatBytes(r.bytes)} of ciphertexts (7), received ${formatBytes(r.answerBytes)}; `
      + `evaluation keys uploaded once: ${formatBytes(r.keyBytes)}`;
    (app.bfvResults ||= []).push({ ...r, total });
    $('bfv-prediction').dataset.seq = String(app.bfvResults.length);
    return r;
  } catch (e) {
    err.textContent = `BFV: ${e.message}`;
    err.hidden = false;
    return null;
  }
}
