// Walkthrough step 10, live: the walkthrough's digit or angiogram frame under BFV (web/bfv.js), what the server receives, and
// the attack of steps 5–6 (eigenvalues and shared eigenvectors of 2x2 matrices) run on the BFV ciphertext; or
// the WBC page's last patient under BFV, beside the known-value attack that reads the same patient from MORE.
//
// Why the attack yields noise: a BFV ciphertext is a pair of polynomials whose coefficients are uniformly
// random modulo q (ring-LWE); the message is hidden under that randomness, not in an algebraic structure.
// Read as 2x2 matrices, its bytes have no shared eigenvectors and no eigenvalue equal to a pixel.

import { classifyBfv, predictBfv } from './bfv.js';
import { listModels } from './api.js';
import { drawGray, formatBytes } from './render.js';

const $ = (id) => document.getElementById(id);

/** The BFV ciphertext bytes read as `n` 2x2 matrices (4 planes of `n` values in [-1, 1)), in MORE's wire format. */
function asMoreWire(message, h, w) {
  const n = h * w;
  const out = new DataView(new ArrayBuffer(8 + 12 + 16 * n));
  [77, 79, 82, 69, 1, 1, 3, 0].forEach((b, i) => out.setUint8(i, b));
  [1, h, w].forEach((d, i) => out.setUint32(8 + 4 * i, d, true));
  const src = new DataView(message.buffer, message.byteOffset, message.byteLength);
  // Skip the message header and the first blob's framing; take 32-bit words of the polynomial data.
  const start = 64;
  for (let i = 0; i < 4 * n; i++) {
    const u = src.getUint32(start + 4 * i, true);
    out.setFloat32(20 + 4 * i, (u / 2 ** 32) * 2 - 1, true);
  }
  return new Uint8Array(out.buffer);
}

/**
 * The batch packing's figures recorded in the BFV model's metrics by `more bench bfv --batch N --record`
 * (measured on the server's machine), as table rows; none if the model carries none.
 */
export function batchRows(model) {
  const m = model?.metrics ?? {};
  if (!(m.batch_images > 0 && m.batch_server_s > 0)) return [];
  const n = m.batch_images.toLocaleString('en');
  const rows = [
    [`${n} images at once under BFV (one image per slot)`,
      `${m.batch_ms_per_image_amortized.toFixed(1)} ms per image of server time (${m.batch_server_s.toFixed(1)} s for all `
      + `on ${m.batch_threads} cores), ${m.batch_end_to_end_s.toFixed(1)} s end to end; `
      + `${(100 * m.batch_accuracy).toFixed(2)}% correct; ${formatBytes(m.batch_eval_key_bytes)} of keys, `
      + `${formatBytes(m.batch_upload_bytes)} uploaded`],
  ];
  if (m.batch_more_server_s > 0) {
    rows.push([`the same ${n} images under MORE`,
      `${(1e3 * m.batch_more_server_s / m.batch_images).toFixed(3)} ms per image of server time `
      + `(${m.batch_more_server_s.toFixed(2)} s for all): BFV costs ${(m.batch_server_s / m.batch_more_server_s).toFixed(0)}× more`]);
  }
  return rows;
}

/**
 * Fills the comparison table's measured row from the server's BFV model (`models`: GET /api/v1/models): MORE's
 * and BFV's server time for the same images, as `more bench bfv --batch N --record` measured them.
 */
export function showSchemeCosts(models) {
  const m = models.find((x) => x.scheme === 'bfv' && x.task === 'mnist')?.metrics ?? {};
  const [more, bfv] = [$('cmp-more-batch'), $('cmp-bfv-batch')];
  if (!more || !bfv) return;
  if (!(m.batch_images > 0 && m.batch_server_s > 0 && m.batch_more_server_s > 0)) {
    more.textContent = '–';
    bfv.textContent = 'no batch figures recorded for this server\'s BFV model (more bench bfv --batch 10000 --record)';
    return;
  }
  const n = m.batch_images.toLocaleString('en');
  const perImage = (s) => `${(1e3 * s / m.batch_images).toPrecision(2)} ms per image`;
  const accuracy = (a) => (a > 0 ? `, ${(100 * a).toFixed(2)}% correct` : '');
  more.textContent = `${n} at once: ${perImage(m.batch_more_server_s)} (${m.batch_more_server_s.toFixed(2)} s)`
    + `${accuracy(m.batch_more_accuracy)}`;
  bfv.textContent = `${n} at once (one image per slot): ${perImage(m.batch_server_s)} (${m.batch_server_s.toFixed(1)} s `
    + `on ${m.batch_threads} cores, ${(m.batch_server_s / m.batch_more_server_s).toFixed(0)}× MORE), `
    + `${m.batch_end_to_end_s.toFixed(1)} s end to end${accuracy(m.batch_accuracy)}; `
    + `${formatBytes(m.batch_eval_key_bytes)} of keys, ${formatBytes(m.batch_upload_bytes)} uploaded`;
}

function correlation(a, b) {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n;
  const mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0; let saa = 0; let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) ** 2; sbb += (b[i] - mb) ** 2;
  }
  return saa && sbb ? sab / Math.sqrt(saa * sbb) : 0;
}

/**
 * Runs the step on `st` (the walkthrough state: the raw input — a 28x28 digit or a 128x128 angiogram frame, grey
 * levels — its task, wire, w, h); `wasm` is the MORE module. A frame goes to the BFV angiogram model averaged to
 * 28x28 (`angioBfvInput`, the rule that model was trained with); the attack reads the BFV message at the
 * frame's own size.
 */
export async function runBfvStep(wasm, st) {
  const verdict = $('bfv-verdict');
  if (!st.raw || !['mnist', 'angio'].includes(st.task)) {
    verdict.textContent = 'BFV runs on digits and angiogram frames: draw a digit or upload a frame in step 0.';
    return null;
  }
  $('bfv-attack').closest('figure').hidden = false;
  const what = st.task === 'mnist' ? 'digit' : 'frame';
  const model = (await listModels()).find((m) => m.scheme === 'bfv' && m.task === st.task);
  if (!model) { verdict.textContent = `This server offers no BFV model for this ${what}.`; return null; }
  verdict.textContent = 'Running under BFV (key generation and key upload the first time)…';
  const r = await classifyBfv(model, st.task === 'mnist' ? st.raw : wasm.angioBfvInput(st.raw));
  const wire = asMoreWire(r.message, st.h, st.w);
  // On random numbers the attack either yields noise or stops at once: a 2x2 block of a BFV ciphertext often
  // has complex eigenvalues, which no MORE ciphertext has. Both outcomes are shown as they are.
  let values;
  let attackStopped = null;
  try {
    values = Array.from(wasm.attackRecoverImage(wire, st.h, st.w, 0, 1).values());
  } catch (err) {
    values = new Array(st.h * st.w).fill(0);
    attackStopped = `the attack stops at once (${err.message ?? err}): these numbers are not MORE ciphertexts`;
  }
  let lo = Infinity; let hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!(hi > lo)) { lo = 0; hi = 1; }
  drawGray($('bfv-attack'), values.map((v) => (Number.isFinite(v) ? v : lo)), st.w, st.h, lo, hi);
  const corr = correlation(values.map((v) => (Number.isFinite(v) ? v : 0)), Array.from(st.raw));
  const moreBytes = st.wire ? st.wire.length : 0;
  const rows = [
    ['answer under BFV', r.label],
    ['the server receives (MORE)', moreBytes ? `${formatBytes(moreBytes)} per ${what} (${st.w}×${st.h}), no keys` : '–'],
    ['the server receives (BFV)', `${formatBytes(r.bytes)} per ${what}${st.task === 'mnist' ? '' : ' (averaged to 28×28)'} `
      + `(${model.input_ciphertexts} ciphertexts), ${formatBytes(r.keyBytes)} of evaluation keys once`],
    ['first bytes of the BFV message', Array.from(r.message.subarray(0, 24), (b) => b.toString(16).padStart(2, '0')).join(' ')],
    [`time (BFV), this one ${what}`, Object.entries(r.times).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')],
    ...batchRows(model),
    [`steps 5–6 on it: correlation with your ${what}`, attackStopped ?? corr.toFixed(3)],
  ];
  showFacts(rows);
  verdict.textContent = 'The attack that recovers every MORE pixel finds only noise here: a BFV ciphertext is two '
    + 'polynomials with coefficients uniformly random modulo q (ring-LWE), so its numbers have no shared eigenvectors '
    + 'and no eigenvalue equal to a pixel. Reading it needs the secret key — which never left this page.';
  const result = {
    task: st.task, label: r.label, correlation: corr, attackStopped, bytes: r.bytes, keyBytes: r.keyBytes, times: r.times,
  };
  window.bfvStep = result;
  return result;
}

/** Fills the step's facts table with `[label, value]` rows. */
function showFacts(rows) {
  const table = $('bfv-facts');
  table.replaceChildren();
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

/** The largest relative difference between `a` and `b` (same length). */
function worstRelative(a, b) {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]) / Math.max(Math.abs(b[i]), 1e-12)));
}

/**
 * Runs the step on a patient of the WBC page (`patient` = { names, values }: the simulator's parameters as the
 * WBC page stored them). Under BFV: the WBC surrogate's prediction (web/bfv.js `predictBfv`). Under MORE: the
 * same parameters encrypted with the walkthrough's key as the WBC page sends them to `wbc-mlp`, and attack 3
 * of this walkthrough (one known value gives every other one through `C = α·C_known + β·I`, a ring-only
 * relation between ciphertexts) run with the heart rate as the known value — on MORE's ciphertexts, and on
 * the BFV message read as seven 2x2 matrices.
 */
export async function runBfvPatientStep(wasm, st, patient) {
  const verdict = $('bfv-verdict');
  const models = await listModels();
  const bfv = models.find((m) => m.scheme === 'bfv' && m.task === 'wbc');
  const more = models.find((m) => m.scheme !== 'bfv' && m.task === 'wbc');
  if (!bfv || !more) { verdict.textContent = 'This server offers no WBC model under both schemes.'; return null; }
  const byName = (names) => names.map((n) => patient.values[patient.names.indexOf(n)]);
  const raw = bfv.input_names?.length ? byName(bfv.input_names) : patient.values;
  if (raw.some((v) => !Number.isFinite(v))) throw new Error('the stored patient does not have the model\'s parameters');
  verdict.textContent = 'Running the patient under BFV (key generation and key upload the first time)…';
  const r = await predictBfv(bfv, raw);

  // MORE, as the WBC page does it: normalised parameters, one ciphertext each.
  const pre = more.preprocessing;
  const [mean, std] = [new Float32Array(pre.mean), new Float32Array(pre.std)];
  const x = wasm.normalize(new Float32Array(raw), pre.scale, mean, std);
  const wire = st.key.encrypt(x, new Uint32Array([1, x.length]));
  const physical = (z) => Array.from(z, (v, i) => (v * std[i] + mean[i]) / pre.scale);
  const fromMore = physical(wasm.attackLinearRelation(wire, 0, x[0]));
  let fromBfv = null;
  let bfvStopped = null;
  try {
    fromBfv = physical(wasm.attackLinearRelation(asMoreWire(r.message, 1, x.length), 0, x[0]));
  } catch (err) {
    bfvStopped = `the attack stops at once (${err.message ?? err}): these numbers are not MORE ciphertexts`;
  }
  const errMore = worstRelative(fromMore, raw);
  const errBfv = fromBfv ? worstRelative(fromBfv, raw) : Infinity;
  // What no ciphertext at all gives: the training population's average patient. Values read from noise land
  // near it too (the attack's output goes through the same de-normalisation), so it is the fair yardstick.
  const average = physical(new Float32Array(raw.length));
  average[0] = raw[0]; // the heart rate is known to this attacker too
  const errAverage = worstRelative(average, raw);
  const show = (vals) => vals.map((v) => (Math.abs(v) < 1e4 ? v.toPrecision(3) : v.toExponential(1))).join(', ');
  const units = bfv.units ?? [];
  showFacts([
    ['answer under BFV', bfv.labels.map((l, i) => `${l.replace(/_/g, ' ')} ${r.outputs[i].toFixed(1)}${units[i] ? ` ${units[i]}` : ''}`).join('; ')],
    ['the server receives (MORE)', `${formatBytes(wire.length)} per patient (${x.length} values), no keys`],
    ['the server receives (BFV)', `${formatBytes(r.bytes)} per patient (${bfv.input_ciphertexts} ciphertexts, one slot used), `
      + `${formatBytes(r.keyBytes)} of evaluation key once`],
    ['time (BFV), this patient', Object.entries(r.times).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')],
    ['the patient', show(raw)],
    ['attack 3 on MORE, heart rate known', `${show(fromMore)} (largest error ${(100 * errMore).toPrecision(2)}%)`],
    ['attack 3 on BFV, heart rate known', bfvStopped ?? `${show(fromBfv)} (largest error ${(100 * errBfv).toPrecision(3)}%)`],
    ['no ciphertext: the average training patient', `${show(average)} (largest error ${(100 * errAverage).toPrecision(3)}%)`],
  ]);
  $('bfv-attack').closest('figure').hidden = true; // seven numbers, no picture
  verdict.textContent = 'Knowing one parameter (the heart rate is no secret) reads every other one from MORE\'s '
    + 'ciphertexts: each is the known one times a number plus a multiple of the identity. The same relation '
    + 'finds only noise in the BFV ciphertexts, whose coefficients are uniformly random modulo q — numbers no '
    + 'closer to this patient than the average patient is; reading them needs the secret key, which never left '
    + 'this page.';
  const result = {
    task: 'wbc', outputs: r.outputs, labels: bfv.labels, raw, fromMore, fromBfv, errMore, errBfv, errAverage, bfvStopped,
    bytes: r.bytes, keyBytes: r.keyBytes, times: r.times,
  };
  window.bfvPatientStep = result;
  return result;
}
