// Page helpers shared by the pages (index.html → app.js, walkthrough.html → walkthrough.js, wbc.html →
// wbc.js, learn.html → learn.js, train.html → train.js): element lookup, the status line, error boxes,
// the file drop zone and the model descriptions used when the server is not reachable.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * Models the pages fall back to when the server is not reachable, so that the local steps (key,
 * preprocessing, encryption, the attacks) still run. The normalisation is that of the shipped models
 * (models/*.morenn); `id: null` means "nothing to send to the server".
 */
export const FALLBACK = Object.freeze({
  mnist: { id: null, task: 'mnist', input_shape: [1, 28, 28], labels: [...'0123456789'], output_kind: 'logits',
    preprocessing: { kind: 'mnist-digit', resize: null, scale: 1 / 255, mean: [0.1307], std: [0.3081] } },
  angio: { id: null, task: 'angio', input_shape: [1, 128, 128], labels: ['LCA', 'RCA'], output_kind: 'logits',
    preprocessing: { kind: 'angio-frame', resize: [128, 128], scale: 1 / 255, mean: [0.5], std: [0.25] } },
});

/** A server model for `task` with the fallback's values for whatever it leaves out. */
export function withFallback(task, model) {
  const base = FALLBACK[task];
  return { ...base, ...model, preprocessing: { ...base.preprocessing, ...model.preprocessing } };
}

/** Shows `text` in the status line (`#status`, or the element `id`); `bad` marks it as a problem. */
export function setStatus(text, bad = false, id = 'status') {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('bad', bad);
}

/** Shows an error's message in `el` (an element that is hidden while there is no error). */
export function showError(el, err) {
  el.textContent = err && err.message ? err.message : String(err);
  el.hidden = false;
}

/**
 * Makes `drop` a drop zone for image files that also opens the file picker `input` with Enter or Space.
 * `onFile(file)` is called with the first file dropped or picked.
 */
export function setupDropZone(drop, input, onFile) {
  input.addEventListener('change', () => {
    const f = input.files[0];
    input.value = '';
    if (f) onFile(f);
  });
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') input.click();
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer.files[0];
    if (f) onFile(f);
  });
}
