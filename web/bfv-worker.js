// BFV off the main thread: key generation (~0.3 s natively, longer in wasm), encryption and decryption run
// here, in the more-wasm-bfv module (web/pkg-bfv, built by scripts/build-web.sh). The secret keys live only
// in this worker; what it posts back is public: evaluation-key messages, ciphertext messages, decrypted
// answers. The large messages (7.7 MB of keys, 1.6 MB per image) are also uploaded from here (`args.post`):
// a POST of megabytes from the page's thread showed up as main-thread tasks of 150–400 ms.
//
// A page may hold two sessions at once, each with its own secret key, named by `args.kind`:
//   'digit'       BfvClient: one digit per set of ciphertexts, the single-image keys (rotations);
//   'regression'  BfvRegressionClient: one patient per slot, the batch key (relinearisation only), built
//                 from the model's listed `scaling` (args.scaling at keygen).

import init, { BfvClient, BfvRegressionClient, bfvParameters } from './pkg-bfv/more_wasm_bfv.js';
import { postBfv } from './api.js';

const clients = { digit: null, regression: null };
const ready = init();

/** The session's client, or an error saying that its keys were not made yet. */
function clientOf(kind) {
  if (!(kind in clients)) throw new Error(`unknown BFV session kind ${kind}`);
  if (!clients[kind]) throw new Error(`no ${kind} BFV key yet (keygen first)`);
  return clients[kind];
}

/**
 * POSTs `bytes` (made here) to `url` when the caller asked for it: { ms, body (the answer's bytes), serverTiming }.
 * The server's refusals arrive as the error of the call, with their status and code.
 */
async function upload(url, bytes) {
  if (!url) return undefined;
  const t0 = performance.now();
  const res = await postBfv(url, bytes);
  const body = new Uint8Array(await res.arrayBuffer());
  return { ms: performance.now() - t0, body, serverTiming: res.headers.get('server-timing') || '' };
}

/** The buffers of a result's byte arrays, handed over instead of copied. */
const buffers = (result) => [result.message, result.upload?.body].filter(Boolean).map((b) => b.buffer);

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  const kind = args.kind || 'digit';
  try {
    await ready;
    let result;
    const t0 = performance.now();
    if (op === 'keygen') {
      let keys;
      if (kind === 'regression') {
        clients.regression = new BfvRegressionClient(args.scaling);
        keys = clients.regression.batchKeys();
      } else {
        clients.digit = new BfvClient();
        keys = clients.digit.evalKeys();
      }
      result = { keyBytes: keys.length, parameters: bfvParameters(), ms: performance.now() - t0 };
      result.upload = await upload(args.post, keys);
    } else if (op === 'encrypt' || op === 'encryptPatient') {
      const message = op === 'encrypt' ? clientOf('digit').encrypt(args.pixels, args.levels)
        : clientOf('regression').encrypt(Float64Array.from(args.raw));
      result = { ms: performance.now() - t0 };
      result.upload = await upload(args.post, message);
      result.message = message;
    } else if (op === 'decrypt') {
      result = { logits: Array.from(clientOf('digit').decrypt(args.message, args.classes)) };
    } else if (op === 'decryptPatient') {
      result = clientOf('regression').decrypt(args.message);
    } else if (op === 'secretKeyForTest') {
      result = { bytes: clientOf(kind).secretKeyBytesForTest() };
    } else {
      throw new Error(`unknown operation ${op}`);
    }
    result.ms ??= performance.now() - t0; // the computation alone when an upload followed it
    self.postMessage({ id, ok: true, result }, buffers(result));
  } catch (err) {
    self.postMessage({ id, ok: false, error: String(err && err.message || err), status: err?.status, code: err?.code });
  }
};
