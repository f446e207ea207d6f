// "Use your own model" on the main page: an ONNX file picked by the user is imported in WebAssembly
// (more-wasm's importOnnx, i.e. more-onnx, from web/pkg-onnx, loaded on first use) into a more-nn model file, the import's report is shown, the file is
// uploaded (POST /api/v1/models) and the uploaded model joins the page's model picker, so the drawn digit or
// the chosen angiogram is classified with it on ciphertexts exactly as with the bundled models.
//
// The server sees the uploaded model; only inputs and answers are encrypted (and MORE ciphertexts are
// breakable): the panel says so.

import { uploadModel } from './api.js';
import { formatBytes } from './render.js';
import { $, showError } from './ui.js';

const MAX_ONNX_BYTES = 64 << 20;

// The module with the ONNX import (more-wasm built with its `onnx` feature), loaded on first use: it is as
// large as the page's own module.
let importer = null;
async function onnxModule() {
  if (!importer) {
    importer = import('./pkg-onnx/more_wasm.js').then(async (m) => { await m.default(); return m; });
    importer.catch(() => { importer = null; });
  }
  return importer;
}

/** The task's bundled model whose preprocessing the import starts from: the first listed for the task. */
function bundledFor(app, task) {
  return app.models.find((m) => m.task === task && m.scheme !== 'bfv' && !m.id.startsWith('upload-'));
}

/** Numbers from a field: one, or several separated by commas or spaces. */
function numbers(id, name) {
  const text = $(id).value.trim();
  const values = text.split(/[\s,]+/).filter(Boolean).map(Number);
  if (!values.length || values.some((v) => !Number.isFinite(v))) {
    throw new Error(`The ${name} must be a number (or numbers separated by commas), not "${text}".`);
  }
  return values;
}

/** Fills scale, mean and std from the task's bundled model (or raw 0–1 pixels when the server lists none). */
function fillDefaults(app) {
  const m = bundledFor(app, $('own-task').value);
  const pre = m ? m.preprocessing : { scale: 1 / 255, mean: [0], std: [1] };
  $('own-scale').value = String(+pre.scale.toPrecision(7));
  $('own-mean').value = (pre.mean.length ? pre.mean : [0]).join(', ');
  $('own-std').value = (pre.std.length ? pre.std : [1]).join(', ');
}

function row(table, name, value) {
  const tr = table.insertRow();
  const th = document.createElement('th');
  th.scope = 'row';
  th.textContent = name;
  tr.append(th);
  tr.insertCell().textContent = value;
}

/** The import's report (and, once uploaded, the server's id and time to live) as a table. */
function showReport(file, r, uploaded) {
  const box = $('own-report');
  box.replaceChildren();
  const table = document.createElement('table');
  const list = (xs) => (xs.length ? xs.join(', ') : 'none');
  row(table, 'file', `${file.name} (${formatBytes(file.size)}), ${r.producer}, opset ${r.opset}`);
  row(table, 'operators read', list(r.operators));
  row(table, 'folded into linear layers', list(r.folded));
  row(table, 'dropped (no-ops at inference)', list(r.dropped));
  row(table, 'network', r.architecture);
  row(table, 'parameters', r.parameters.toLocaleString('en-US'));
  row(table, 'input shape', JSON.stringify(r.inputShape));
  row(table, 'output', `${r.outputLen} ${r.outputKind}`);
  row(table, 'on MORE ciphertexts', r.ringOnly
    ? 'ring-only layers (the server still reads the 2x2 structure in its coefficient form)'
    : 'uses the 2x2 structure (reads the eigenvalues: the server could read the values)');
  row(table, 'BFV', r.bfvOk ? 'could run under BFV (polynomial layers only)' : `not under BFV: ${r.bfvReason}`);
  row(table, 'model file', formatBytes(r.bytes));
  if (uploaded) {
    const hours = uploaded.expiresInS / 3600;
    row(table, 'on the server', `uploaded; kept ${hours >= 1 ? `${+hours.toFixed(1)} h` : `${Math.round(uploaded.expiresInS / 60)} min`} after its last use; now chosen in the picker above`);
  }
  box.append(table);
}

/**
 * Sets up the panel. `app` is the main page's state (`app.models`, `app.pad`) and `app.addModel(listing)`,
 * which adds a model to the picker and chooses it; `app.classifyDigit()` runs the drawn digit again.
 */
export function setupOwnModel(app) {
  const button = $('own-import');
  const file = $('own-file');
  const ready = () => { button.disabled = !file.files.length; };
  file.addEventListener('change', ready);
  $('own-task').addEventListener('change', () => fillDefaults(app));
  fillDefaults(app);
  ready();
  app.importOwnModel = async () => {
    const err = $('own-error');
    err.hidden = true;
    const f = file.files[0];
    if (!f) return null;
    button.disabled = true;
    try {
      if (f.size > MAX_ONNX_BYTES) throw new Error(`${f.name} is too large (${formatBytes(f.size)}; at most ${formatBytes(MAX_ONNX_BYTES)}).`);
      const task = $('own-task').value;
      const bundled = bundledFor(app, task);
      const options = {
        task,
        modelId: f.name.replace(/\.onnx$/i, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 64) || 'my-model',
        kind: bundled ? bundled.preprocessing.kind : (task === 'mnist' ? 'mnist-digit' : 'angio-frame'),
        resize: bundled ? bundled.preprocessing.resize : null,
        scale: numbers('own-scale', 'scale')[0],
        mean: numbers('own-mean', 'mean'),
        std: numbers('own-std', 'std'),
        labels: bundled ? bundled.labels : [],
      };
      const bytes = new Uint8Array(await f.arrayBuffer());
      const t0 = performance.now();
      let imported;
      try {
        imported = (await onnxModule()).importOnnx(bytes, options);
      } catch (e) {
        throw new Error(`${f.name} could not be imported: ${e.message}`);
      }
      const importMs = performance.now() - t0;
      showReport(f, imported.report, null);
      const uploaded = await uploadModel(imported.model);
      showReport(f, imported.report, uploaded);
      app.addModel(uploaded.model);
      const result = { importMs, report: imported.report, id: uploaded.id, model: uploaded.model };
      app.ownModel = result;
      if (task === 'mnist' && app.pad && !app.pad.empty) await app.classifyDigit();
      return result;
    } catch (e) {
      showError(err, e);
      return null;
    } finally {
      ready();
    }
  };
  button.addEventListener('click', () => app.importOwnModel());
}
