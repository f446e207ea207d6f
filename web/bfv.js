// The page's BFV client: loads the BFV worker (and its wasm) only when first used, generates keys once per
// session, uploads the public evaluation keys once (POST /api/v1/bfv/keys), then per input: encrypt in the
// worker, POST the ciphertexts, decrypt the answer in the worker. Returns the answer with the time split
// and bytes.
//
// Two kinds of session, each with its own secret key in the worker (a page may hold both): 'digit' for the
// MNIST classifier (single-image keys, 7.7 MB) and 'regression' for the WBC surrogate (the batch key,
// 0.4 MB).
import { postBfv } from './api.js';

let worker = null;
let seq = 0;
const pending = new Map();
const sessions = new Map(); // kind → { keyId, keyBytes, keygenMs, uploadKeysMs, parameters }

function call(op, args = {}, transfer = []) {
  if (!worker) {
    worker = new Worker(new URL('./bfv-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => {
      const { id, ok, result, error } = e.data;
      const p = pending.get(id);
      pending.delete(id);
      if (ok) p.resolve(result); else p.reject(new Error(error));
    };
    // A worker that fails to load or crashes answers nothing: fail every pending call instead of waiting
    // forever, and start a new worker (and new key sessions: the keys died with it) next time.
    const fail = (e) => {
      const why = new Error(`the BFV worker failed: ${e.message || 'it could not be loaded'}`);
      for (const p of pending.values()) p.reject(why);
      pending.clear();
      worker = null;
      sessions.clear();
    };
    worker.onerror = fail;
    worker.onmessageerror = fail;
  }
  const id = ++seq;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args }, transfer);
  });
}

/** Key generation (`keygen` with `args`) and upload, once per session kind (and again if the server forgot). */
async function ensureSession(kind, model, args) {
  if (sessions.has(kind)) return sessions.get(kind);
  const { keys, parameters, ms: keygenMs } = await call('keygen', { kind, ...args });
  const t0 = performance.now();
  const res = await postBfv(model.keys_url, keys);
  const { key_id: keyId } = await res.json();
  const session = { keyId, keyBytes: keys.length, keygenMs, uploadKeysMs: performance.now() - t0, parameters };
  sessions.set(kind, session);
  return session;
}

/** The server no longer holds the session's keys (expired, restarted) or holds keys of the other kind. */
const keysGone = (err) => err.status === 404 || (err.status === 422 && err.code === 'wrong_keys');

/**
 * One inference in a session: keys (first time), encrypt in the worker (`encrypt` = [op, args]), POST to
 * the model's infer URL, decrypt in the worker (`decryptOp`). If the server has forgotten the keys, one
 * new session (new secret key, new upload) and one more try. Returns { answer (the worker's decrypt
 * result), times, bytes, message, keyBytes, answerBytes, parameters }; key generation and upload are in
 * `times` only for the call that made them.
 */
async function infer(kind, model, keygenArgs, [encryptOp, encryptArgs], decryptOp, retry = true) {
  const fresh = !sessions.has(kind);
  const s = await ensureSession(kind, model, keygenArgs);
  const { message, ms: encryptMs } = await call(encryptOp, { kind, ...encryptArgs });
  const t0 = performance.now();
  let res;
  try {
    res = await postBfv(`${model.infer_url}?key_id=${s.keyId}`, message);
  } catch (err) {
    sessions.delete(kind); // keys expired or the server restarted: a new session next time
    if (retry && keysGone(err)) return infer(kind, model, keygenArgs, [encryptOp, encryptArgs], decryptOp, false);
    throw err;
  }
  const answerBytes = new Uint8Array(await res.arrayBuffer());
  const roundTrip = performance.now() - t0;
  const m = /compute;dur=([0-9.]+)/.exec(res.headers.get('server-timing') || '');
  const server = m ? Number(m[1]) : roundTrip;
  const { ms: decryptMs, ...answer } = await call(decryptOp, { kind, message: answerBytes });
  const times = {
    ...(fresh ? { keygen: s.keygenMs, 'upload keys': s.uploadKeysMs } : {}),
    encrypt: encryptMs,
    upload: Math.max(0, roundTrip - server),
    server,
    decrypt: decryptMs,
  };
  return { answer, times, bytes: message.length, message, keyBytes: s.keyBytes, answerBytes: answerBytes.length,
    parameters: s.parameters };
}

/**
 * Classifies a preprocessed digit (28x28 values 0..255) under BFV with the listed BFV model.
 * Returns { label, index, logits, times: { keygen, upload keys, encrypt, upload, server, decrypt }, bytes,
 * keyBytes, answerBytes, parameters }. Key generation and key upload are counted on the first call only.
 */
export async function classifyBfv(model, raw) {
  const pixels = Float32Array.from(raw, (v) => v / 255);
  const { answer, ...r } = await infer('digit', model, {}, ['encrypt', { pixels, levels: model.input_levels }], 'decrypt');
  const { logits } = answer;
  const index = logits.indexOf(Math.max(...logits));
  return { label: model.labels[index] ?? String(index), index, logits, ...r };
}

/**
 * Predicts one patient's outputs under BFV with a listed regression model (`output_kind: "regression"`,
 * `keys_kind: "batch"`): `raw` holds the patient's parameters in the model's `input_names` order, inside
 * the model's box (`scaling.input_min` … `input_max`; the worker refuses anything else). Returns
 * { outputs (physical, in the model's `labels` order), standardised, limbs, times, bytes, keyBytes,
 * answerBytes, parameters }.
 */
export async function predictBfv(model, raw) {
  const { answer, ...r } = await infer('regression', model, { scaling: model.scaling },
    ['encryptPatient', { raw: Array.from(raw) }], 'decryptPatient');
  return { ...answer, ...r };
}

/** A session's secret-key bytes (`kind` 'digit' or 'regression'), for the tests that check none is sent. */
export async function secretKeyBytesForTest(kind = 'digit') {
  return (await call('secretKeyForTest', { kind })).bytes;
}
