// BFV off the main thread: key generation (~0.3 s natively, longer in wasm), encryption and decryption run
// here, in the more-wasm-bfv module (web/pkg-bfv, built by scripts/build-web.sh). The secret key lives only
// in this worker; what it posts back is public: the evaluation-key message, ciphertext messages, logits.

import init, { BfvClient, bfvParameters } from './pkg-bfv/more_wasm_bfv.js';

let client = null;
const ready = init();

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    await ready;
    let result;
    const t0 = performance.now();
    if (op === 'keygen') {
      client = new BfvClient();
      const keys = client.evalKeys();
      result = { keys, parameters: bfvParameters() };
    } else if (op === 'encrypt') {
      result = { message: client.encrypt(args.pixels, args.levels) };
    } else if (op === 'decrypt') {
      result = { logits: Array.from(client.decrypt(args.message)) };
    } else if (op === 'secretKeyForTest') {
      result = { bytes: client.secretKeyBytesForTest() };
    } else {
      throw new Error(`unknown operation ${op}`);
    }
    result.ms = performance.now() - t0;
    self.postMessage({ id, ok: true, result });
  } catch (err) {
    self.postMessage({ id, ok: false, error: String(err && err.message || err) });
  }
};
