// The BFV column beside a MORE answer on the main page: the same preprocessed input (a drawn digit, or an
// angiogram frame averaged to 28x28), classified under BFV (web/bfv.js), with its answer, time split and bytes.
// Only imported code; the BFV wasm loads on first use. One panel per task, each with its own element ids
// (`<prefix>-result`, `-prediction`, `-params`, `-timing`, `-bytes`, `-error`, and `-input` if it has one).

import { classifyBfv } from './bfv.js';
import { drawGray, formatBytes, showTiming } from './render.js';

const $ = (id) => document.getElementById(id);

/**
 * A BFV panel for `task`: returns `classify(app)`, which classifies `input(app)` (28x28 grey levels 0..255, or
 * null when there is nothing to classify yet) with the server's BFV model for the task, shows it, and records
 * it in `app[results]`. One run at a time: a call during a run makes one more run afterwards, on the latest
 * input.
 */
function bfvPanel({ task, prefix, input, results }) {
  const el = (part) => $(`${prefix}-${part}`);
  let busy = false;
  let again = false;

  async function classifyOnce(app) {
    const model = app.models.find((m) => m.scheme === 'bfv' && m.task === task);
    const err = el('error');
    err.hidden = true;
    const raw = input(app);
    if (!model || !raw) {
      if (!model) { err.textContent = 'This server offers no BFV model for this task.'; err.hidden = false; }
      return null;
    }
    el('result').hidden = false;
    const prediction = el('prediction');
    prediction.parentElement.classList.add('stale');
    if (el('input')) drawGray(el('input'), raw, 28, 28);
    try {
      const start = performance.now();
      const r = await classifyBfv(model, raw);
      const end = performance.now();
      const total = end - start;
      prediction.textContent = r.label;
      prediction.dataset.label = r.label;
      prediction.parentElement.classList.remove('stale');
      const p = r.parameters;
      el('params').textContent = `N = ${p.ring_degree}, log2 q = ${p.ciphertext_modulus_bits}, t = ${p.plaintext_modulus}, ${p.security_bits}-bit`;
      showTiming(el('timing'), Object.entries(r.times), total);
      el('bytes').textContent = `sent ${formatBytes(r.bytes)} of ciphertexts (${model.input_ciphertexts}), `
        + `received ${formatBytes(r.answerBytes)}; evaluation keys uploaded once: ${formatBytes(r.keyBytes)}`;
      (app[results] ||= []).push({ ...r, total, start, end });
      prediction.dataset.seq = String(app[results].length);
      return r;
    } catch (e) {
      err.textContent = `BFV: ${e.message}`;
      err.hidden = false;
      return null;
    }
  }

  return async function classify(app) {
    if (busy) { again = true; return null; }
    busy = true;
    try {
      return await classifyOnce(app);
    } finally {
      busy = false;
      if (again) { again = false; classify(app); }
    }
  };
}

/** The drawn digit (`app.lastDigit`) under BFV; results in `app.bfvResults`. */
export const classifyDigitBfv = bfvPanel({ task: 'mnist', prefix: 'bfv', input: (app) => app.lastDigit, results: 'bfvResults' });

/** The angiogram frame averaged to 28x28 (`app.lastAngioBfvInput`) under BFV; results in `app.angioBfvResults`. */
export const classifyAngioBfv = bfvPanel({
  task: 'angio', prefix: 'angio-bfv', input: (app) => app.lastAngioBfvInput, results: 'angioBfvResults',
});
