// The training page's background work, in the more-wasm-train module (web/pkg-train, built by
// scripts/build-web.sh), so the page stays responsive:
//   simulate — one simulation of the whole-body circulation model per patient (a slice of the page's
//              Latin hypercube; several workers share the patients);
//   train    — the comparison run: the same network trained on the same plaintext, one epoch at a time.
// Messages in: { id, op, args } (train's args.request is the page's request object, as TrainingOwner.jobBody
// takes it). Out: { id, type: 'progress' | 'result' | 'error', ... }.
// Nothing here holds a key: the key owner lives in the page.

import init, { PlainTraining, wbcSimulateOutputs } from './pkg-train/more_wasm_train.js';

const ready = init();
const OUTPUTS = 6;

function simulate(id, { params, count }) {
  const perPatient = params.length / count;
  const outputs = new Float64Array(count * OUTPUTS);
  let failed = 0;
  let last = performance.now();
  for (let i = 0; i < count; i++) {
    try {
      outputs.set(wbcSimulateOutputs(params.subarray(i * perPatient, (i + 1) * perPatient)), i * OUTPUTS);
    } catch {
      // A patient whose simulation does not converge is left out by the page (NaN outputs).
      outputs.fill(NaN, i * OUTPUTS, (i + 1) * OUTPUTS);
      failed++;
    }
    const now = performance.now();
    if (now - last > 100 || i === count - 1) {
      self.postMessage({ id, type: 'progress', done: i + 1 });
      last = now;
    }
  }
  self.postMessage({ id, type: 'result', outputs, failed }, [outputs.buffer]);
}

function train(id, { request, inputs, targets }) {
  const run = new PlainTraining(request, inputs, targets);
  const epochs = run.epochs();
  const losses = [];
  const epochMs = [];
  for (;;) {
    const t0 = performance.now();
    const loss = run.nextEpoch();
    if (loss === undefined) break;
    const ms = performance.now() - t0;
    losses.push(loss);
    epochMs.push(ms);
    self.postMessage({ id, type: 'progress', epoch: losses.length, epochs, loss, ms });
  }
  const model = run.model().toBytes();
  run.free();
  self.postMessage({ id, type: 'result', model, losses, epochMs }, [model.buffer]);
}

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    await ready;
    if (op === 'simulate') simulate(id, args);
    else if (op === 'train') train(id, args);
    else throw new Error(`unknown operation ${op}`);
  } catch (err) {
    self.postMessage({ id, type: 'error', error: String((err && err.message) || err) });
  }
};
