#!/usr/bin/env node
// Solves a class challenge of more-server without the key, using only the documented HTTP API
// (docs/api.md) and its own attack code — none of the project's Rust.
//
//   node scripts/solve-challenge.mjs --server http://127.0.0.1:8080 --id ID --name "Ada" [--token TEACHER]
//
// The attack (the shared eigenbasis): a MORE ciphertext is C = S·diag(m, r)·S⁻¹, so every ciphertext of
// one key has the same eigenvectors — the columns of S. One ciphertext with two distinct eigenvalues gives
// both eigenvectors; for any other ciphertext C and eigenvector v, C·v = λ·v, so its value on that lane is
// (C·v)_k / v_k. One lane holds the image, the other the random noise r; the image is the lane whose values
// are all in [0, 1] and on the 8-bit grid k/255. The attack uses the 2x2 structure (eigenvectors of each
// ciphertext matrix), not ring operations. The script prints the recovered image, submits it, and
// with --token prints the teacher's list of answers. Needs Node 18 or newer (global fetch); no packages.

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
if (!args.server || !args.id || !args.name) {
  console.error('usage: node scripts/solve-challenge.mjs --server URL --id CHALLENGE_ID --name NAME [--token TEACHER_TOKEN]');
  process.exit(2);
}
const base = args.server.replace(/\/+$/, '');

async function json(url, init) {
  const r = await fetch(base + url, init);
  const body = await r.json();
  if (!r.ok) throw new Error(`${init?.method || 'GET'} ${url} answered ${r.status}: ${body.message}`);
  return body;
}

/** Parses the wire format (docs/wire-format.md): header, then planes c00, c01, c10, c11. */
function parseTensor(buf) {
  const v = new DataView(buf);
  const magic = String.fromCharCode(...new Uint8Array(buf, 0, 4));
  if (magic !== 'MORE' || v.getUint8(4) !== 1) throw new Error('not a version-1 MORE tensor');
  const size = { 1: 4, 2: 8 }[v.getUint8(5)];
  if (!size) throw new Error(`unknown dtype ${v.getUint8(5)}`);
  const ndim = v.getUint8(6);
  const shape = [];
  for (let i = 0; i < ndim; i++) shape.push(v.getUint32(8 + 4 * i, true));
  const n = shape.reduce((a, b) => a * b, 1);
  const offset = 8 + 4 * ndim;
  if (buf.byteLength !== offset + 4 * n * size) throw new Error('length does not match the shape');
  const planes = [0, 1, 2, 3].map((p) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const at = offset + (p * n + i) * size;
      out[i] = size === 8 ? v.getFloat64(at, true) : v.getFloat32(at, true);
    }
    return out;
  });
  return { shape, n, planes };
}

/** The two eigenvectors of the 2x2 matrix [[a, b], [c, d]] (real, distinct eigenvalues assumed). */
function eigenvectors(a, b, c, d) {
  const t = a + d;
  const disc = Math.sqrt(Math.max(0, t * t - 4 * (a * d - b * c)));
  return [(t + disc) / 2, (t - disc) / 2].map((l) => (Math.abs(b) >= Math.abs(c) ? [b, l - a] : [l - d, c]));
}

/** Every ciphertext's value on the lane of eigenvector v: (C·v)_k / v_k, k the larger component. */
function lane(t, v) {
  const [c00, c01, c10, c11] = t.planes;
  const k = Math.abs(v[0]) >= Math.abs(v[1]) ? 0 : 1;
  const out = new Float64Array(t.n);
  for (let i = 0; i < t.n; i++) {
    out[i] = k === 0 ? (c00[i] * v[0] + c01[i] * v[1]) / v[0] : (c10[i] * v[0] + c11[i] * v[1]) / v[1];
  }
  return out;
}

/** Share of values in [0, 1] and within 0.02 of the 8-bit grid k/255: 1 for the image, ~0 for noise. */
function imageScore(values) {
  let good = 0;
  for (const x of values) if (x > -0.01 && x < 1.01 && Math.abs(x * 255 - Math.round(x * 255)) < 0.02 * 255) good++;
  return good / values.length;
}

const info = await json(`/api/v1/challenges/${encodeURIComponent(args.id)}`);
console.log(`challenge ${info.id}: ${info.shape.join('x')} image, values in [${info.value_range}], tolerance ${info.tolerance}`);
const r = await fetch(base + info.ciphertext_url);
if (!r.ok) throw new Error(`ciphertext: ${r.status}`);
const t = parseTensor(await r.arrayBuffer());

// The ciphertext whose eigenvalues are furthest apart gives the best-conditioned eigenvectors.
let best = 0;
let gap = -1;
for (let i = 0; i < t.n; i++) {
  const [a, b, c, d] = t.planes.map((p) => p[i]);
  const g = (a + d) ** 2 - 4 * (a * d - b * c);
  if (g > gap) [best, gap] = [i, g];
}
const vs = eigenvectors(...t.planes.map((p) => p[best]));
const lanes = vs.map((v) => lane(t, v));
const scores = lanes.map(imageScore);
const image = lanes[scores[0] >= scores[1] ? 0 : 1];
console.log(`lane scores (share of 8-bit values in [0, 1]): ${scores.map((s) => s.toFixed(3)).join(', ')}`);
const answer = Array.from(image, (x) => Math.min(1, Math.max(0, Math.round(x * 255) / 255)));

const [rows, cols] = info.shape;
for (let y = 0; y < rows; y++) {
  console.log(Array.from({ length: cols }, (_, x) => (answer[y * cols + x] > 0.5 ? '#' : '.')).join(''));
}

const verdict = await json(`/api/v1/challenges/${encodeURIComponent(args.id)}/answers`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: args.name, answer }),
});
console.log(`submitted as ${JSON.stringify(args.name)}: correct = ${verdict.correct}`);

if (args.token) {
  const list = await json(`/api/v1/challenges/${encodeURIComponent(args.id)}/answers`, {
    headers: { authorization: `Bearer ${args.token}` },
  });
  console.log(`teacher's list: ${list.solved.length} solved, ${list.answers.length} answers (phrase ${list.phrase})`);
  for (const s of list.solved) console.log(`  solved: ${s.name} at ${s.at} (${s.seconds} s after creation)`);
}
process.exit(verdict.correct ? 0 : 1);
