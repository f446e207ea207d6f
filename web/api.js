// The server's HTTP API (docs/api.md): model list, samples, encrypted inference. Errors become
// `ApiError`s whose message is meant for the user, in plain words. URLs are resolved against the site root
// (the directory above web/), so every page can use this module whatever its own location.

export const MEDIA_TYPE = 'application/x-more-tensor';

const ROOT = new URL('../', import.meta.url);

/** The absolute URL of an API path such as `models` or `samples/x.png`. */
export const apiUrl = (path) => new URL(`api/v1/${path}`, ROOT).href;

/** An error to show to the user. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const STATUS_WORDS = {
  400: 'the server could not read the encrypted data',
  404: 'the server does not know this model',
  413: 'the data is too large for the server',
  415: 'the server did not accept the data type',
  422: 'the data does not have the shape this model expects',
  429: 'the server is busy; try again in a moment',
  503: 'the server is overloaded; try again in a moment',
};

// Training jobs: the server's own message says what went wrong; these words lead it.
const JOB_STATUS_WORDS = {
  400: 'the server could not read the request',
  404: 'the server has no such training job or data',
  413: 'the encrypted data set is larger than the server accepts',
  422: 'the server cannot train with these settings',
  429: 'the server already holds as many training jobs as it allows',
  503: 'the server is overloaded; try again in a moment',
};

/** The user's error for an answer's status and (JSON or null) body. */
function errorOf(status, statusText, body, statusWords) {
  const words = statusWords[status] || `the server answered ${status} ${statusText}`;
  const detail = body && body.message ? ` (${body.message})` : '';
  return new ApiError(`${words[0].toUpperCase()}${words.slice(1)}${detail}.`, { status, code: body && body.error });
}

async function errorFrom(res, statusWords = STATUS_WORDS) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  return errorOf(res.status, res.statusText, body, statusWords);
}

/**
 * A fresh `Idempotency-Key` for one logical request that creates something (a job, keys, an answer): sent
 * again unchanged on a retry, it makes the server (any replica) answer the first result instead of creating
 * a second one.
 */
export function idempotencyKey() {
  // getRandomValues, not randomUUID: the latter exists only on https:// and localhost, and a class server
  // is often plain http:// on the school's network.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function request(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new ApiError('The server is not reachable. Is it running? Everything local (key, preprocessing, encryption) still works.', { code: 'network' });
  }
}

/** `GET /api/v1/models` → array of model descriptions. */
export async function listModels() {
  const res = await request(apiUrl('models'), { headers: { accept: 'application/json' } });
  if (!res.ok) throw await errorFrom(res);
  const body = await res.json();
  const list = Array.isArray(body) ? body : (body.models || []);
  return list.map(normalizeModel);
}

/** Accepts the metadata either flat or under `meta`, and fills defaults. */
function normalizeModel(m) {
  const meta = m.meta ? { ...m.meta, ...m } : m;
  const pre = meta.preprocessing || {};
  return {
    ...meta,
    id: meta.id,
    task: meta.task || '',
    input_shape: meta.input_shape || [],
    labels: meta.labels || [],
    output_kind: meta.output_kind || 'logits',
    operations: meta.operations || [],
    metrics: meta.metrics || {},
    preprocessing: {
      kind: pre.kind || '',
      resize: pre.resize || null,
      scale: pre.scale ?? 1,
      mean: pre.mean || [],
      std: pre.std || [],
      output_scale: pre.output_scale || [],
      output_offset: pre.output_offset || [],
    },
  };
}

// Model uploads: the server's message says what it refused; these words lead it.
const UPLOAD_STATUS_WORDS = {
  400: 'the server could not read the model file',
  404: 'this server takes no uploaded models',
  413: 'the model file is larger than the server accepts',
  415: 'the server did not accept the data type',
  422: 'the server cannot run this model',
  503: 'the server holds as many uploaded models as it allows, or is overloaded; try again later',
};

/** The media type of a more-nn model file upload. */
export const MODEL_MEDIA_TYPE = 'application/x-more-model';

/**
 * `POST /api/v1/models` with a model file (.morenn bytes) → `{ id, model, expiresInS }`, `model` being the
 * listing of `GET /api/v1/models/{id}` (normalised like `listModels`). The id is a capability: whoever holds
 * it may use or delete the model, and it is not listed.
 */
export async function uploadModel(bytes) {
  const res = await request(apiUrl('models'), {
    method: 'POST',
    headers: { 'content-type': MODEL_MEDIA_TYPE, accept: 'application/json', 'idempotency-key': idempotencyKey() },
    body: bytes,
  });
  if (!res.ok) throw await errorFrom(res, UPLOAD_STATUS_WORDS);
  const body = await res.json();
  return { id: body.id, model: normalizeModel(body.model), expiresInS: body.expires_in_s };
}

/** `GET /api/v1/samples` → [{ url, name, label }], or [] if the server offers none. */
export async function listSamples() {
  let res;
  try { res = await request(apiUrl('samples')); } catch { return []; }
  if (!res.ok) return [];
  const body = await res.json().catch(() => null);
  const list = Array.isArray(body) ? body : (body && body.samples) || [];
  return list.map((s) => {
    if (typeof s === 'string') return { url: apiUrl(`samples/${encodeURIComponent(s)}`), name: s, label: '' };
    const name = s.name || s.file || s.id || '';
    const given = s.url || s.href;
    const url = given ? new URL(given.replace(/^\//, ''), ROOT).href : apiUrl(`samples/${encodeURIComponent(name)}`);
    return { url, name, label: s.label || s.view || '' };
  });
}

/** Parses `Server-Timing: decode;dur=0.1, compute;dur=1.2, encode;dur=0.05` into { decode: 0.1, ... } (ms). */
export function parseServerTiming(header) {
  const out = {};
  for (const part of (header || '').split(',')) {
    const [name, ...params] = part.trim().split(';');
    if (!name) continue;
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith('dur='));
    if (dur) out[name.trim()] = Number(dur.slice(4));
  }
  return out;
}

/**
 * `POST /api/v1/models/{id}/infer` with a wire-format ciphertext. Returns the encrypted answer and times (ms):
 * `upload` (request sent → first byte of the answer, minus the server's own time), `server` (Server-Timing
 * total), `download` (first → last byte), and `browser` (the rest of the round trip as the page saw it: the
 * browser's network process, and the page rendering the ciphertext planes while the request is in flight).
 * The split uses the request's Resource Timing entry; without one, `upload` is the whole round trip.
 */
export async function infer(modelId, wire) {
  const url = apiUrl(`models/${encodeURIComponent(modelId)}/infer`);
  const t0 = performance.now();
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': MEDIA_TYPE, accept: MEDIA_TYPE },
    body: wire,
  });
  const t1 = performance.now();
  if (!res.ok) throw await errorFrom(res);
  const answer = new Uint8Array(await res.arrayBuffer());
  const t2 = performance.now();
  const serverTiming = parseServerTiming(res.headers.get('server-timing'));
  const server = serverTiming.total ?? Object.values(serverTiming).reduce((a, b) => a + b, 0);
  const entry = performance.getEntriesByName(url).filter((e) => e.startTime >= t0 - 1 && e.requestStart > 0).pop();
  performance.clearResourceTimings(); // the buffer holds 250 entries; a long drawing session would fill it
  let times = { upload: Math.max(0, t1 - t0 - server), server, download: t2 - t1, browser: 0 };
  if (entry && entry.responseEnd >= entry.responseStart) {
    const upload = Math.max(0, entry.responseStart - entry.requestStart - server);
    const download = entry.responseEnd - entry.responseStart;
    times = { upload, server, download, browser: Math.max(0, t2 - t0 - upload - server - download) };
  }
  return { answer, serverTiming, times };
}

/** A server path such as `/api/v1/jobs/x/events` (as job answers give them) as an absolute URL. */
export const serverUrl = (path) => new URL(path.replace(/^\//, ''), ROOT).href;

/** `GET /api/v1/training` → { enabled, networks, limits, media_type }. */
export async function trainingInfo() {
  const res = await request(apiUrl('training'), { headers: { accept: 'application/json' } });
  if (!res.ok) throw await errorFrom(res, JOB_STATUS_WORDS);
  return res.json();
}

/** `GET /api/v1/training/samples/mnist` → the labelled-image body (Uint8Array). */
export async function mnistSamples(split, count, offset = 0) {
  const res = await request(apiUrl(`training/samples/mnist?split=${split}&offset=${offset}&count=${count}`));
  if (!res.ok) throw await errorFrom(res, JOB_STATUS_WORDS);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * `POST /api/v1/jobs` with a training-job body → the job's status (id, events_url, model_url, ...).
 * `onProgress(sent, total)` follows the upload (XMLHttpRequest: fetch reports no upload progress).
 */
export function createJob(mediaType, body, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', apiUrl('jobs'));
    xhr.setRequestHeader('content-type', mediaType);
    xhr.setRequestHeader('accept', 'application/json');
    xhr.setRequestHeader('idempotency-key', idempotencyKey());
    xhr.responseType = 'text';
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onerror = () => reject(new ApiError('The server is not reachable. Is it running?', { code: 'network' }));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300 && body) { resolve(body); return; }
      reject(errorOf(xhr.status, xhr.statusText, body, JOB_STATUS_WORDS));
    };
    xhr.send(body);
  });
}

/** `GET` a job's encrypted model (its `model_url`) → Uint8Array. The server deletes the job afterwards. */
export async function jobModel(modelPath) {
  const res = await request(serverUrl(modelPath));
  if (!res.ok) throw await errorFrom(res, JOB_STATUS_WORDS);
  return new Uint8Array(await res.arrayBuffer());
}

/** `DELETE /api/v1/jobs/{id}`: cancels a queued or running job, or deletes a finished one. */
export async function deleteJob(id) {
  const res = await request(apiUrl(`jobs/${encodeURIComponent(id)}`), { method: 'DELETE' });
  if (!res.ok && res.status !== 404) throw await errorFrom(res, JOB_STATUS_WORDS);
}

/** A JSON answer, or an `ApiError` carrying the server's own message (`what` leads it when there is none). */
async function jsonOrError(res, what) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    throw new ApiError((body && body.message) || `${what}: ${res.status}`, { status: res.status, code: body && body.error });
  }
  return body;
}

/** `GET /api/v1/challenges/{id}` → the challenge's description (shape, value range, ciphertext_url, ...). */
export async function challengeInfo(id) {
  return jsonOrError(await request(apiUrl(`challenges/${encodeURIComponent(id)}`)), 'challenge');
}

/** A challenge's ciphertext (its `ciphertext_url`) → Uint8Array of wire format. */
export async function challengeCiphertext(path) {
  const res = await request(serverUrl(path));
  if (!res.ok) throw new ApiError(`ciphertext: ${res.status}`, { status: res.status });
  return new Uint8Array(await res.arrayBuffer());
}

/** `POST /api/v1/challenges/{id}/answers` with `{name, phrase}` or `{name, answer}` → `{correct, ...}`. */
export async function submitAnswer(id, answer) {
  const res = await request(apiUrl(`challenges/${encodeURIComponent(id)}/answers`), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey() },
    body: JSON.stringify(answer),
  });
  return jsonOrError(res, 'answer');
}

/**
 * A teacher's request (`Authorization: Bearer token`) to an API path such as `challenges` or
 * `challenges/{id}/answers` → its JSON answer. A POST carries an idempotency key.
 */
export async function teacherRequest(path, token, method = 'GET') {
  const headers = { authorization: `Bearer ${token}` };
  if (method === 'POST') headers['idempotency-key'] = idempotencyKey();
  return jsonOrError(await request(apiUrl(path), { method, headers }), 'teacher');
}

/** POSTs a BFV message (`application/octet-stream`: keys or ciphertexts) to a listed URL → the response. */
export async function postBfv(path, body) {
  const headers = { 'Content-Type': 'application/octet-stream', 'Idempotency-Key': idempotencyKey() };
  const res = await request(serverUrl(path), { method: 'POST', headers, body });
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(`BFV server: ${body.message || res.status}`, { status: res.status, code: body.error || '' });
  }
  return res;
}

