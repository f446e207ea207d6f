// BFV off the main thread: key generation (~0.3 s natively, longer in wasm), encryption and decryption run
// here, in the more-wasm-bfv module (web/pkg-bfv, built by scripts/build-web.sh). The secret keys live only
// in this worker; what it posts back is public: evaluation-key messages, ciphertext messages, decrypted
// answers.
//
// A page may hold two sessions at once, each with its own secret key, named by `args.kind`:
//   'digit'       BfvClient: one digit per set of ciphertexts, the single-image keys (rotations);
//   'regression'  BfvRegressionClient: one patient per slot, the batch key (relinearisation only), built
//                 from the model's listed `scaling` (args.scaling at keygen).

import init, { BfvClient, BfvRegressionClient, bfvParameters } from './pkg-bfv/more_wasm_bfv.js';

const clients = { digit: null, regression: null };
const ready = init();

/** The session's client, or an error saying that its keys were not made yet. */
function clientOf(kind) {
  if (!(kind in clients)) throw new Error(`unknown BFV session kind ${kind}`);
  if (!clients[kind]) throw new Error(`no ${kind} BFV key yet (keygen first)`);
  return clients[kind];
}

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  const kind = args.kind || 'digit';
  try {
    await ready;
    let result;
    const t0 = performance.now();
    if (op === 'keygen') {
      if (kind === 'regression') {
        clients.regression = new BfvRegressionClient(args.scaling);
        result = { keys: clients.regression.batchKeys() };
      } else {
        clients.digit = new BfvClient();
        result = { keys: clients.digit.evalKeys() };
      }
      result.parameters = bfvParameters();
    } else if (op === 'encrypt') {
      result = { message: clientOf('digit').encrypt(args.pixels, args.levels) };
    } else if (op === 'decrypt') {
      result = { logits: Array.from(clientOf('digit').decrypt(args.message)) };
    } else if (op === 'encryptPatient') {
      result = { message: clientOf('regression').encrypt(Float64Array.from(args.raw)) };
    } else if (op === 'decryptPatient') {
      result = clientOf('regression').decrypt(args.message);
    } else if (op === 'secretKeyForTest') {
      result = { bytes: clientOf(kind).secretKeyBytesForTest() };
    } else {
      throw new Error(`unknown operation ${op}`);
    }
    result.ms = performance.now() - t0;
    self.postMessage({ id, ok: true, result });
  } catch (err) {
    self.postMessage({ id, ok: false, error: String(err && err.message || err) });
  }
};
