// The page's BFV client: loads the BFV worker (and its wasm) only when first used, generates keys once per
// session, uploads the public evaluation keys once (POST /api/v1/bfv/keys), then per input: encrypt, POST the
// ciphertexts, decrypt the answer. All of it runs in the worker (web/bfv-worker.js), uploads included, so no
// megabyte-sized message passes through the page's thread. Returns the answer with the time split and bytes.
//
// Two kinds of session, each with its own secret key in the worker (a page may hold both): 'digit' for the
// classifiers (digits and angiogram views: the same parameters, single-image keys, 7.7 MB) and 'regression'
// for the WBC surrogate (the batch key, 0.4 MB).


let worker = null;
let seq = 0;
const pending = new Map();
const sessions = new Map(); // kind → { keyId, keyBytes, keygenMs, uploadKeysMs, parameters }

function call(op, args = {}, transfer = []) {
  if (!worker) {
    worker = new Worker(new URL('./bfv-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => {
      const { id, ok, result, error, status, code } = e.data;
      const p = pending.get(id);
      pending.delete(id);
      if (ok) p.resolve(result); else p.reject(Object.assign(new Error(error), { status, code }));
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

/**
 * Key generation (`keygen` with `args`) and upload (by the worker: the keys never pass through this thread),
 * once per session kind (and again if the server forgot).
 */
async function ensureSession(kind, model, args) {
  if (sessions.has(kind)) return sessions.get(kind);
  const { keyBytes, parameters, ms: keygenMs, upload } = await call('keygen', { kind, ...args, post: model.keys_url });
  const { key_id: keyId } = JSON.parse(new TextDecoder().decode(upload.body));
  const session = { keyId, keyBytes, keygenMs, uploadKeysMs: upload.ms, parameters };
  sessions.set(kind, session);
  return session;
}

/** The server no longer holds the session's keys (expired, restarted) or holds keys of the other kind. */
const keysGone = (err) => err.status === 404 || (err.status === 422 && err.code === 'wrong_keys');

/**
 * One inference in a session: keys (first time), encrypt in the worker (`encrypt` = [op, args]), POST to
 * the model's infer URL, decrypt in the worker (`decrypt` = [op, args]). If the server has forgotten the keys, one
 * new session (new secret key, new upload) and one more try. Returns { answer (the worker's decrypt
 * result), times, bytes, message, keyBytes, answerBytes, parameters }; key generation and upload are in
 * `times` only for the call that made them.
 */
async function infer(kind, model, keygenArgs, encrypt, decrypt, retry = true) {
  const [[encryptOp, encryptArgs], [decryptOp, decryptArgs]] = [encrypt, decrypt];
  const fresh = !sessions.has(kind);
  const s = await ensureSession(kind, model, keygenArgs);
  let message;
  let encryptMs;
  let upload;
  try {
    // Encrypted and uploaded by the worker; the answer comes back from it.
    ({ message, ms: encryptMs, upload } = await call(encryptOp, { kind, ...encryptArgs, post: `${model.infer_url}?key_id=${s.keyId}` }));
  } catch (err) {
    sessions.delete(kind); // keys expired or the server restarted: a new session next time
    if (retry && keysGone(err)) return infer(kind, model, keygenArgs, encrypt, decrypt, false);
    throw err;
  }
  const answerBytes = upload.body;
  const roundTrip = upload.ms;
  const m = /compute;dur=([0-9.]+)/.exec(upload.serverTiming);
  const server = m ? Number(m[1]) : roundTrip;
  const answerLength = answerBytes.length; // the bytes are handed to the worker, not copied
  const { ms: decryptMs, ...answer } = await call(decryptOp, { kind, ...decryptArgs, message: answerBytes }, [answerBytes.buffer]);
  const times = {
    ...(fresh ? { keygen: s.keygenMs, 'upload keys': s.uploadKeysMs } : {}),
    encrypt: encryptMs,
    upload: Math.max(0, roundTrip - server),
    server,
    decrypt: decryptMs,
  };
  return { answer, times, bytes: message.length, message, keyBytes: s.keyBytes, answerBytes: answerLength,
    parameters: s.parameters };
}

/**
 * Classifies a preprocessed 28x28 input (grey levels 0..255: a digit, or an angiogram frame averaged to 28x28)
 * under BFV with the listed BFV classifier; its `labels` give the class count the answer is decrypted with.
 * Digits and angiograms share one session: the same parameters and single-image keys serve both.
 * Returns { label, index, logits, times: { keygen, upload keys, encrypt, upload, server, decrypt }, bytes,
 * keyBytes, answerBytes, parameters }. Key generation and key upload are counted on the first call only.
 */
export async function classifyBfv(model, raw) {
  const pixels = Float32Array.from(raw, (v) => v / 255);
  const { answer, ...r } = await infer('digit', model, {}, ['encrypt', { pixels, levels: model.input_levels }],
    ['decrypt', { classes: model.labels.length }]);
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
    ['encryptPatient', { raw: Array.from(raw) }], ['decryptPatient', {}]);
  return { ...answer, ...r };
}

/** A session's secret-key bytes (`kind` 'digit' or 'regression'), for the tests that check none is sent. */
export async function secretKeyBytesForTest(kind = 'digit') {
  return (await call('secretKeyForTest', { kind })).bytes;
}
