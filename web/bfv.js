// The page's BFV client: loads the BFV worker (and its wasm) only when first used, generates keys once,
// uploads the public evaluation keys once (POST /api/v1/bfv/keys), then per digit: encrypt in the worker,
// POST the ciphertexts, decrypt the answer in the worker. Returns the answer with the time split and bytes.
import { postBfv } from './api.js';

let worker = null;
let seq = 0;
const pending = new Map();
let session = null; // { keyId, keyBytes, keygenMs, uploadKeysMs, parameters }

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
    // forever, and start a new worker (and a new key session) next time.
    const fail = (e) => {
      const why = new Error(`the BFV worker failed: ${e.message || 'it could not be loaded'}`);
      for (const p of pending.values()) p.reject(why);
      pending.clear();
      worker = null;
      session = null;
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


/** Key generation and upload, once per page (and again if the server forgot the keys). */
async function ensureSession(model) {
  if (session) return session;
  const { keys, parameters, ms: keygenMs } = await call('keygen');
  const t0 = performance.now();
  const res = await postBfv(model.keys_url, keys);
  const { key_id: keyId } = await res.json();
  session = { keyId, keyBytes: keys.length, keygenMs, uploadKeysMs: performance.now() - t0, parameters };
  return session;
}

/**
 * Classifies a preprocessed digit (28x28 values 0..255) under BFV with the listed BFV model.
 * Returns { label, index, logits, times: { keygen, upload keys, encrypt, upload, server, decrypt }, bytes,
 * keyBytes, answerBytes, parameters }. Key generation and key upload are counted on the first call only.
 */
export async function classifyBfv(model, raw) {
  const first = !session;
  const s = await ensureSession(model);
  const pixels = Float32Array.from(raw, (v) => v / 255);
  const { message, ms: encryptMs } = await call('encrypt', { pixels, levels: model.input_levels });
  const t0 = performance.now();
  let res;
  try {
    res = await postBfv(`${model.infer_url}?key_id=${s.keyId}`, message);
  } catch (err) {
    session = null; // keys expired or the server restarted: a new session next time
    throw err;
  }
  const answer = new Uint8Array(await res.arrayBuffer());
  const roundTrip = performance.now() - t0;
  const m = /compute;dur=([0-9.]+)/.exec(res.headers.get('server-timing') || '');
  const server = m ? Number(m[1]) : roundTrip;
  const { logits, ms: decryptMs } = await call('decrypt', { message: answer });
  const index = logits.indexOf(Math.max(...logits));
  const times = {
    ...(first ? { keygen: s.keygenMs, 'upload keys': s.uploadKeysMs } : {}),
    encrypt: encryptMs,
    upload: Math.max(0, roundTrip - server),
    server,
    decrypt: decryptMs,
  };
  return { label: model.labels[index] ?? String(index), index, logits, times, bytes: message.length, message,
    keyBytes: s.keyBytes, answerBytes: answer.length, parameters: s.parameters };
}

/** The secret key's bytes, for the test that checks none of them is ever sent. */
export async function secretKeyBytesForTest() {
  return (await call('secretKeyForTest')).bytes;
}
