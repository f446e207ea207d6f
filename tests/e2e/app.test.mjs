// The main page against the real server: key, digits drawn with the mouse (1, 3, 7), angiogram uploads
// (RCA, LCA), what goes over the wire (never the key; only wire-format ciphertexts), latency and wasm figures.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { drawStrokes } from './strokes.mjs';

// Strokes on the 280x280 drawing canvas, as lists of points (canvas pixels), drawn like a person would.
const curve = (f, n = 24) => Array.from({ length: n + 1 }, (_, i) => f(i / n));
const DIGITS = {
  1: [[[150, 50], [146, 110], [142, 170], [138, 232]]],
  3: [
    curve((t) => {
      // Upper bowl: from the top left, round to the right, back to the middle.
      const a = -Math.PI * 0.85 + t * Math.PI * 1.35;
      return [138 + 48 * Math.cos(a), 95 + 42 * Math.sin(a)];
    }),
    curve((t) => {
      // Lower bowl: from the middle, round to the right, ending bottom left.
      const a = -Math.PI * 0.5 + t * Math.PI * 1.35;
      return [138 + 55 * Math.cos(a), 187 + 48 * Math.sin(a)];
    }),
  ],
  7: [[[78, 62], [140, 60], [202, 60], [180, 110], [158, 160], [138, 210], [126, 240]]],
};

const results = (page) => page.evaluate(() => window.moreApp.results.length);

async function waitForResult(page, before, what) {
  // Done when a new answer is recorded, or an error is shown (the page hides old errors when it starts).
  await page.waitForFunction((n) => (window.moreApp.results.length > n && !window.moreApp.pad.current)
    || !document.getElementById('digit-error').hidden || !document.getElementById('angio-error').hidden, before, { timeout: 30_000 })
    .catch(() => { throw new Error(`no answer for ${what} within 30 s`); });
  const errors = (await page.locator('#digit-error:not([hidden]), #angio-error:not([hidden])').allInnerTexts()).filter(Boolean);
  if (errors.length) throw new Error(`no answer for ${what}: ${errors.join(' | ')}`);
  // Auto-classify may have queued a second run; let it settle.
  await page.waitForTimeout(50);
  return page.evaluate(() => window.moreApp.results.at(-1));
}

async function drawDigit(page, digit) {
  await page.click('#draw-clear');
  const before = await results(page);
  const strokes = DIGITS[digit];
  // Draw all but the last stroke with auto-classify off, so one answer corresponds to the whole digit.
  await page.evaluate(() => { document.getElementById('draw-auto').checked = false; });
  await drawStrokes(page, '#draw', strokes.slice(0, -1));
  await page.evaluate(() => { document.getElementById('draw-auto').checked = true; });
  await drawStrokes(page, '#draw', strokes.slice(-1));
  return waitForResult(page, before, `digit ${digit}`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function indexOf(hay, needle) {
  if (needle.length === 0 || hay.length < needle.length) return -1;
  outer: for (let i = hay.indexOf(needle[0]); i !== -1 && i <= hay.length - needle.length; i = hay.indexOf(needle[0], i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A minimal 8-bit grayscale PNG (for the size-limit check). */
function grayPng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.alloc((width + 1) * height); // filter byte 0 + black pixels
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Every secret the page holds, as byte strings that must never appear in a request. */
function secrets(keyBytes, keyJson) {
  const b = Buffer.from(keyBytes);
  const out = [['key file (56 bytes)', b], ['key JSON', Buffer.from(keyJson)]];
  const f32 = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) {
    const f64 = b.subarray(8 + 8 * i, 16 + 8 * i);
    out.push([`S[${i}] as f64`, f64]);
    out.push([`S[${i}] as text`, Buffer.from(String(f64.readDoubleLE(0)))]);
    f32.writeFloatLE(f64.readDoubleLE(0), 4 * i);
  }
  // S as four f32s in a row. One f32 entry alone is no evidence: a 128x128 frame's 65,536 plane values
  // have the magnitude of S's entries, so one of them equals a given f32 exactly in ~1% of bodies.
  out.push(['S as 4 x f32', f32]);
  out.push(['key base64', Buffer.from(b.toString('base64'))], ['key hex', Buffer.from(b.toString('hex'))]);
  return out;
}

/** Checks that `body` is exactly one wire-format f32 tensor of `n` values whose shape ends with `shape`. */
function checkWire(assert, body, shape, what) {
  assert(body.length >= 8 && body.subarray(0, 4).toString('latin1') === 'MORE', `${what}: body does not start with MORE`);
  assert(body[4] === 1 && body[5] === 1 && body[7] === 0, `${what}: version/dtype/reserved ${body[4]}/${body[5]}/${body[7]}`);
  const ndim = body[6];
  const dims = Array.from({ length: ndim }, (_, i) => body.readUInt32LE(8 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const core = dims.slice(dims.length - shape.length);
  assert(JSON.stringify(core) === JSON.stringify(shape) && (dims.length === shape.length || (dims.length === shape.length + 1 && dims[0] === 1)),
    `${what}: shape ${JSON.stringify(dims)} is not the model's ${JSON.stringify(shape)}`);
  assert(body.length === 8 + 4 * ndim + 16 * n, `${what}: ${body.length} bytes, expected exactly ${8 + 4 * ndim + 16 * n}`);
  for (let i = 8 + 4 * ndim; i < body.length; i += 4) {
    assert(Number.isFinite(body.readFloatLE(i)), `${what}: non-finite value at byte ${i}`);
  }
  return n;
}

/** Records every request of the page: url, method, content type, body. */
function recordRequests(page) {
  const log = [];
  page.on('request', (req) => {
    log.push({ url: req.url(), method: req.method(), type: req.headers()['content-type'] || '', body: req.postDataBuffer() || Buffer.alloc(0) });
  });
  return log;
}

async function open(ctx, { record = true } = {}) {
  const page = await ctx.newPage();
  const requests = record ? recordRequests(page) : [];
  await page.goto(ctx.baseUrl);
  await page.evaluate(() => window.moreApp.ready);
  return { page, requests };
}

function checkRequests(ctx, requests, keyBytes, keyJson, models) {
  const byId = Object.fromEntries(models.map((m) => [m.id, m]));
  let infers = 0;
  for (const r of requests) {
    const url = Buffer.from(decodeURIComponent(r.url));
    for (const [name, s] of secrets(keyBytes, keyJson)) {
      const at = indexOf(r.body, s);
      ctx.assert(at === -1, `request ${r.method} ${r.url} body contains the ${name} at byte ${at}`);
      if (s.length >= 8) ctx.assert(indexOf(url, s) === -1, `request URL ${r.url} contains the ${name}`);
    }
    const m = /\/api\/v1\/models\/([^/]+)\/infer$/.exec(new URL(r.url).pathname);
    if (r.method !== 'GET') {
      ctx.assert(m, `unexpected ${r.method} ${r.url}`);
    }
    if (m) {
      ctx.assert(r.type === 'application/x-more-tensor', `infer content type ${r.type}`);
      const model = byId[decodeURIComponent(m[1])];
      ctx.assert(model, `infer for an unknown model ${m[1]}`);
      checkWire(ctx.assert, r.body, model.input_shape, `infer ${m[1]}`);
      infers++;
    }
  }
  return infers;
}

export default [
  {
    name: 'page loads, key made in the page, models listed, honest banner',
    async run(ctx) {
      const { page } = await open(ctx);
      const key = await page.evaluate(() => Array.from(window.moreApp.keyBytes()));
      ctx.assert(key.length === 56 && Buffer.from(key.slice(0, 8)).toString() === 'MOREKEY1', 'key bytes');
      const kappa = Number(await page.locator('#key-cond').innerText());
      ctx.assert(kappa >= 1 && kappa <= 10, `condition number ${kappa}`);
      const banner = await page.locator('#honesty-banner').innerText();
      ctx.assert(/hides nothing/i.test(banner), 'banner wording');
      ctx.assert(await page.locator('#honesty-banner a[href="web/walkthrough.html"]').count() === 1, 'walkthrough link');
      const models = await ctx.models();
      const mnist = models.filter((m) => m.task === 'mnist' && m.scheme !== 'bfv'); // BFV models have their own column
      ctx.assert(mnist.length > 0, 'the server lists no MNIST model');
      const options = await page.locator('#model-mnist option').allInnerTexts();
      ctx.assert(options.length === mnist.length, `picker shows ${options.length} of ${mnist.length} MNIST models`);
      // The selected model's recorded metrics, accuracies as percentages (from the server's metadata).
      const info = await page.locator('#model-info').innerText();
      const chosenId = await page.locator('#model-mnist').inputValue();
      const chosen = models.find((m) => m.id === chosenId);
      ctx.assert(chosen, `selected model ${chosenId} is not listed`);
      const acc = chosen.metrics.encrypted_test_accuracy ?? chosen.metrics.test_accuracy;
      if (acc !== undefined) ctx.assert(info.includes(`${(100 * acc).toFixed(2)}%`), `metrics panel lacks ${acc} as %: ${info}`);
      // Export (a download), regenerate (another key), import the exported file (the first key again).
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#key-export')]);
      const exported = fs.readFileSync(await download.path());
      ctx.assert(/^\{"version":1/.test(exported.toString()), `exported key file: ${exported.toString().slice(0, 40)}`);
      await page.click('#key-new');
      const key2 = await page.evaluate(() => Array.from(window.moreApp.keyBytes()));
      ctx.assert(Buffer.compare(Buffer.from(key), Buffer.from(key2)) !== 0, 'regenerated key is the same');
      await page.setInputFiles('#key-import', { name: 'more-key.json', mimeType: 'application/json', buffer: exported });
      await page.waitForFunction(() => /imported/.test(document.getElementById('status').textContent));
      const key3 = await page.evaluate(() => Array.from(window.moreApp.keyBytes()));
      ctx.assert(Buffer.compare(Buffer.from(key), Buffer.from(key3)) === 0, 'imported key differs from the exported one');
      await page.setInputFiles('#key-import', { name: 'junk.bin', mimeType: 'application/octet-stream', buffer: Buffer.from('junk') });
      await page.waitForFunction(() => /Could not import/.test(document.getElementById('status').textContent));
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
      await ctx.screenshot(page, 'app-start');
    },
  },
  {
    name: 'draw 1, 3, 7 with the mouse: predicted on ciphertexts; key never sent; bodies are wire tensors',
    async run(ctx) {
      const { page, requests } = await open(ctx);
      const models = await ctx.models();
      const chosen = await page.locator('#model-mnist').inputValue();
      ctx.log(`model ${chosen}`);
      for (const digit of [1, 3, 7]) {
        const r = await drawDigit(page, digit);
        ctx.log(`drew ${digit}: predicted ${r.label} (p = ${r.probs[r.index].toFixed(3)}), ${r.total.toFixed(1)} ms pointer-up → answer`);
        await ctx.screenshot(page, `app-digit-${digit}`);
        ctx.assert(r.label === String(digit), `drew a ${digit}, the model says ${r.label}`);
        const shown = await page.locator('#digit-prediction').innerText();
        ctx.assert(shown === String(digit), `page shows ${shown}`);
      }
      ctx.assert(await page.locator('#digit-planes canvas').count() === 4, 'four ciphertext planes shown');
      // Every model in the picker answers the same drawing (ring-only and analytic ones).
      for (const m of models.filter((x) => x.task === 'mnist' && x.scheme !== 'bfv' && x.id !== chosen)) {
        await page.selectOption('#model-mnist', m.id);
        const before = await results(page);
        await page.click('#digit-classify');
        const r = await waitForResult(page, before, `model ${m.id}`);
        ctx.log(`model ${m.id}: ${r.label}`);
        ctx.assert(r.label === '7', `model ${m.id} says ${r.label} for the 7`);
      }
      const key = await page.evaluate(() => Array.from(window.moreApp.keyBytes()));
      const json = await page.evaluate(() => window.moreApp.getKey().toJson());
      const infers = checkRequests(ctx, requests, key, json, models);
      ctx.log(`${requests.length} requests checked, ${infers} inference bodies are exact wire-format ciphertexts, none contains the key`);
      ctx.assert(infers >= 3, `only ${infers} inference requests seen`);
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
    },
  },
  {
    name: 'touch and pen strokes (pointer events) draw and classify like the mouse',
    async run(ctx) {
      const { page } = await open(ctx);
      for (const pointerType of ['touch', 'pen']) {
        await page.click('#draw-clear');
        const before = await results(page);
        await page.evaluate(({ pointerType, pts }) => {
          const c = document.getElementById('draw');
          const r = c.getBoundingClientRect();
          const ev = (type, [x, y]) => c.dispatchEvent(new PointerEvent(type, {
            pointerId: 7, pointerType, isPrimary: true, bubbles: true, cancelable: true, button: 0,
            clientX: r.left + (x * r.width) / 280, clientY: r.top + (y * r.height) / 280, pressure: 0.5,
          }));
          ev('pointerdown', pts[0]);
          for (let i = 1; i < pts.length; i++) ev('pointermove', pts[i]);
          ev('pointerup', pts.at(-1));
        }, { pointerType, pts: Array.from({ length: 30 }, (_, i) => [150 - i * 0.4, 50 + i * 6]) });
        const r = await waitForResult(page, before, `${pointerType} stroke`);
        ctx.log(`${pointerType}: predicted ${r.label}`);
        ctx.assert(r.label === '1', `a ${pointerType} stroke drawing a 1 was classified as ${r.label}`);
      }
    },
  },
  {
    name: 'without the server: key, preprocessing and encryption still run; the page says why nothing is classified',
    async run(ctx) {
      const page = await ctx.newPage();
      await page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
      await page.goto(ctx.baseUrl);
      await page.evaluate(() => window.moreApp.ready);
      ctx.assert(/not reachable/i.test(await page.locator('#status').innerText()), 'status line');
      ctx.assert((await page.evaluate(() => window.moreApp.keyBytes().length)) === 56, 'no key without the server');
      await page.click('#draw-clear');
      const box = await page.locator('#draw').boundingBox();
      const [first, ...rest] = DIGITS[7][0];
      await page.mouse.move(box.x + first[0], box.y + first[1]);
      await page.mouse.down();
      for (const [x, y] of rest) await page.mouse.move(box.x + x, box.y + y, { steps: 4 });
      await page.mouse.up();
      await page.waitForSelector('#digit-error:not([hidden])');
      const msg = await page.locator('#digit-error').innerText();
      ctx.assert(/not reachable/i.test(msg) && /encryption/i.test(msg), `message: ${msg}`);
      ctx.assert(await page.locator('#digit-planes canvas').count() === 4, 'ciphertext planes not shown offline');
      ctx.assert(/784 values/.test(await page.locator('#digit-bytes').innerText()), 'ciphertext size not shown');
      await ctx.screenshot(page, 'app-offline');
    },
  },
  {
    name: 'errors in plain words; the drawing survives a failed request',
    async run(ctx) {
      const { page } = await open(ctx);
      await page.click('#digit-classify');
      ctx.assert(/draw a digit first/i.test(await page.locator('#digit-error').innerText()), 'empty canvas message');
      await drawDigit(page, 7);
      // Make the next inference fail (server unreachable), then check the message and that the drawing is kept.
      await page.route('**/infer', (route) => route.abort('connectionrefused'));
      await page.click('#digit-classify');
      await page.waitForSelector('#digit-error:not([hidden])');
      const msg = await page.locator('#digit-error').innerText();
      ctx.assert(/not reachable/i.test(msg), `message: ${msg}`);
      ctx.assert(await page.evaluate(() => window.moreApp.pad.strokes.length) === 1, 'drawing lost');
      await page.unroute('**/infer');
      // Unknown model → 404.
      const status = await page.evaluate(async () => (await fetch('api/v1/models/no-such-model/infer', { method: 'POST', headers: { 'content-type': 'application/x-more-tensor' }, body: new Uint8Array(8) })).status);
      ctx.assert(status === 404, `unknown model status ${status}`);
      // A file that is not an image.
      await page.setInputFiles('#angio-file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('not an image') });
      await page.waitForSelector('#angio-error:not([hidden])');
      const m2 = await page.locator('#angio-error').innerText();
      ctx.assert(/could not be read as a PNG or JPEG/.test(m2), `message: ${m2}`);
      // An image larger than 8192 pixels on a side.
      await page.setInputFiles('#angio-file', { name: 'wide.png', mimeType: 'image/png', buffer: grayPng(8200, 2) });
      await page.waitForFunction(() => /wide\.png is too large/.test(document.getElementById('angio-error').textContent));
      // Not an image type at all.
      await page.setInputFiles('#angio-file', { name: 'scan.gif', mimeType: 'image/gif', buffer: Buffer.from('GIF89a') });
      await page.waitForFunction(() => /not a PNG or JPEG/.test(document.getElementById('angio-error').textContent));
      await ctx.screenshot(page, 'app-errors');
    },
  },
  {
    name: 'angiogram decoded by the browser and preprocessed in wasm equals the stored training frame',
    async run(ctx) {
      const { page } = await open(ctx);
      const dir = path.join(ctx.dataDir, 'angio');
      const idx = zlib.gunzipSync(fs.readFileSync(path.join(dir, 'val-images-idx3-ubyte.gz')));
      const ids = fs.readFileSync(path.join(dir, 'val-ids.txt'), 'utf8').split('\n').map((s) => s.trim());
      for (const file of ['val-3-rca.png', 'val-10-lca.png']) {
        await page.setInputFiles('#angio-file', path.join(dir, 'samples', file));
        await page.waitForFunction((f) => document.getElementById('angio-source-caption').textContent.startsWith(f), file);
        await page.waitForFunction(() => document.getElementById('angio-bytes').textContent !== '–');
        const shown = await page.evaluate(() => {
          const c = document.getElementById('angio-input');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          return Array.from({ length: c.width * c.height }, (_, i) => d[4 * i]);
        });
        ctx.assert(shown.length === 128 * 128, `input is ${shown.length} pixels`);
        const row = ids.indexOf(file.split('-')[1]);
        let max = 0;
        for (let i = 0; i < shown.length; i++) max = Math.max(max, Math.abs(shown[i] - idx[16 + row * 16384 + i]));
        ctx.log(`${file}: max |browser input − training frame| = ${max}`);
        ctx.assert(max === 0, `${file}: differs from the training frame by up to ${max} grey levels`);
        await page.evaluate(() => { document.getElementById('angio-bytes').textContent = '–'; });
      }
    },
  },
  {
    name: 'angiograms: one RCA and one LCA sample uploaded and classified',
    async run(ctx) {
      const models = await ctx.models();
      if (!models.some((m) => m.task === 'angio')) ctx.skip('no model with task "angio" is listed yet (models/angio-* not shipped)');
      const { page, requests } = await open(ctx);
      const dir = path.join(ctx.dataDir, 'angio/samples');
      const times = [];
      for (const [file, view] of [['val-3-rca.png', 'RCA'], ['val-1-lca.png', 'LCA']]) {
        const before = await results(page);
        await page.setInputFiles('#angio-file', path.join(dir, file));
        const r = await waitForResult(page, before, file);
        ctx.log(`${file}: predicted ${r.label} (p = ${r.probs[r.index].toFixed(3)}), ${r.total.toFixed(1)} ms`);
        await ctx.screenshot(page, `app-angio-${view.toLowerCase()}`);
        ctx.assert(r.label.toUpperCase() === view, `${file} is ${view}, the model says ${r.label}`);
        times.push(r.total);
      }
      // "PNG or JPEG, any size": the RCA sample re-encoded by the browser as a 300x300 JPEG (quality 0.9).
      const jpeg = Buffer.from(await page.evaluate(async (url) => {
        const bitmap = await createImageBitmap(await (await fetch(url)).blob());
        const canvas = new OffscreenCanvas(300, 300);
        canvas.getContext('2d').drawImage(bitmap, 0, 0, 300, 300);
        const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
        return Array.from(new Uint8Array(await blob.arrayBuffer()));
      }, 'api/v1/samples/val-3-rca.png'));
      ctx.assert(jpeg[0] === 0xff && jpeg[1] === 0xd8, 'the browser did not make a JPEG');
      const before = await results(page);
      await page.setInputFiles('#angio-file', { name: 'rca-300.jpg', mimeType: 'image/jpeg', buffer: jpeg });
      const rj = await waitForResult(page, before, 'rca-300.jpg');
      ctx.log(`rca-300.jpg (300x300 JPEG, ${jpeg.length} bytes): predicted ${rj.label} (p = ${rj.probs[rj.index].toFixed(3)})`);
      ctx.assert(rj.label.toUpperCase() === 'RCA', `the 300x300 JPEG of an RCA frame is classified ${rj.label}`);
      ctx.assert(/300\s*[x×]\s*300/.test(await page.locator('#angio-source-caption').innerText()), 'caption shows the upload size');
      // The sample gallery from GET /api/v1/samples.
      const n = await page.locator('#angio-samples button').count();
      ctx.log(`${n} sample frames offered by the server`);
      if (n) {
        for (let i = 0; i < 5; i++) {
          const before = await results(page);
          await page.locator('#angio-samples button').nth(i % n).click();
          const r = await waitForResult(page, before, 'sample');
          times.push(r.total);
        }
      }
      ctx.figure('angio_end_to_end_median_ms', median(times));
      const key = await page.evaluate(() => Array.from(window.moreApp.keyBytes()));
      const json = await page.evaluate(() => window.moreApp.getKey().toJson());
      checkRequests(ctx, requests, key, json, models);
    },
  },
  {
    name: 'figures: wasm size, keygen, encrypt 784 / 16,384, median draw → answer',
    async run(ctx) {
      const wasmFile = path.join(ctx.root, 'web/pkg/more_wasm_bg.wasm');
      const raw = fs.statSync(wasmFile).size;
      const gz = zlib.gzipSync(fs.readFileSync(wasmFile), { level: 9 }).length;
      ctx.figure('wasm_bytes_raw', raw);
      ctx.figure('wasm_bytes_gzip9', gz);
      // No request recording here: Playwright's body capture slows every request down.
      const { page } = await open(ctx, { record: false });
      const bench = await page.evaluate(() => {
        const { wasm } = window.moreApp;
        const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
        const time = (n, f) => { const ts = []; for (let i = 0; i < n; i++) { const t = performance.now(); f(); ts.push(performance.now() - t); } return med(ts); };
        const key = wasm.Key.generate();
        const x784 = new Float32Array(784).map((_, i) => Math.sin(i));
        const x16k = new Float32Array(16384).map((_, i) => Math.sin(i));
        // performance.now() is coarse (0.1 ms) in some browsers: time batches.
        const keygen = time(20, () => { for (let i = 0; i < 100; i++) wasm.Key.generate().free(); }) / 100;
        const enc784 = time(20, () => { for (let i = 0; i < 10; i++) key.encrypt(x784, new Uint32Array([1, 28, 28])); }) / 10;
        const enc16k = time(10, () => { for (let i = 0; i < 5; i++) key.encrypt(x16k, new Uint32Array([1, 128, 128])); }) / 5;
        const wire = key.encrypt(x16k, new Uint32Array([1, 128, 128]));
        const dec16k = time(10, () => { for (let i = 0; i < 5; i++) key.decrypt(wire); }) / 5;
        return { keygen, enc784, enc16k, dec16k };
      });
      ctx.figure('keygen_ms', bench.keygen);
      ctx.figure('encrypt_784_ms', bench.enc784);
      ctx.figure('encrypt_16384_ms', bench.enc16k);
      ctx.figure('decrypt_16384_ms', bench.dec16k);
      // Measured by the page: pointer-up event → answer drawn (preprocess, encrypt, HTTP, decrypt, render).
      const totals = [];
      const parts = [];
      for (let i = 0; i < 11; i++) {
        const r = await drawDigit(page, 1 + 6 * (i % 2)); // alternate 1 and 7
        totals.push(r.total);
        parts.push(r.times);
        // The breakdown accounts for the time it claims: its parts never add up to more than the total.
        const sum = Object.values(r.times).reduce((a, b) => a + b, 0);
        ctx.assert(sum <= r.total + 0.5, `breakdown ${JSON.stringify(r.times)} sums to ${sum} > total ${r.total}`);
        ctx.assert('browser (network process, page rendering)' in r.times, `no browser share in ${JSON.stringify(r.times)}`);
      }
      ctx.figure('mnist_end_to_end_median_ms', median(totals));
      // Median of each part over the 11 runs.
      const med = Object.fromEntries(Object.keys(parts[0]).map((k) => [k, +median(parts.map((t) => t[k])).toFixed(3)]));
      ctx.figure('mnist_breakdown_median_ms', med);
      await ctx.screenshot(page, 'app-latency');
    },
  },
];

