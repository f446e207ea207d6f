// "Use your own model" on the main page: ONNX networks exported by scikit-learn and PyTorch
// (crates/onnx/fixtures, made by make.py with onnxruntime's outputs on the first 1,000 MNIST test images) are
// imported in the page's wasm, uploaded, and classify MNIST test image 0, put on the drawing canvas, on
// ciphertexts: the class must be the reference runtime's. A flat-input network ([784]) and a convolutional
// one ([1, 28, 28]) check that the page shapes the encrypted tensor to the model's own input shape. Then a
// file that is not ONNX is refused in plain words, and the open panel passes axe.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { checkAxe } from './axe.mjs';

const FIXTURES = ['torch-mlp', 'torch-cnn-bn'];

/** MNIST test image `i` (28x28 bytes) from the shared data. */
function mnistTest(ctx, i) {
  const file = path.join(ctx.dataDir, 'mnist/t10k-images-idx3-ubyte.gz');
  if (!fs.existsSync(file)) ctx.skip(`${file} is missing`);
  const raw = zlib.gunzipSync(fs.readFileSync(file));
  return Array.from(raw.subarray(16 + 784 * i, 16 + 784 * (i + 1)));
}

/** The reference runtime's class for test image `i` ([1000, 10] f32 little-endian outputs). */
function referenceClass(file, i) {
  const b = fs.readFileSync(file);
  const row = Array.from({ length: 10 }, (_, k) => b.readFloatLE(4 * (10 * i + k)));
  return row.indexOf(Math.max(...row));
}

/** Puts a 28x28 image on the 280x280 drawing canvas (each pixel a 10x10 square) as if it had been drawn. */
async function putDigit(page, pixels) {
  await page.evaluate((px) => {
    const pad = window.moreApp.pad;
    pad.clear();
    const ctx2d = pad.canvas.getContext('2d');
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = px[28 * y + x];
        ctx2d.fillStyle = `rgb(${v},${v},${v})`;
        ctx2d.fillRect(10 * x, 10 * y, 10, 10);
      }
    }
    // Not empty, without redrawing the strokes (which would paint over the image).
    pad.strokes.push([]);
  }, pixels);
}

export default [
  {
    name: 'ONNX networks imported in the page classify MNIST test image 0 on ciphertexts as onnxruntime does',
    async run(ctx) {
      const dir = path.join(ctx.root, 'crates/onnx/fixtures');
      if (!fs.existsSync(path.join(dir, 'fixtures.json'))) ctx.skip(`${dir}/fixtures.json is missing (crates/onnx/fixtures/make.py)`);
      const digit = mnistTest(ctx, 0);
      const page = await ctx.newPage();
      await page.goto(ctx.baseUrl, { waitUntil: 'networkidle' });
      await page.evaluate(() => window.moreApp.ready);
      await page.click('#own-model summary');
      for (const name of FIXTURES) {
        const want = String(referenceClass(path.join(dir, `${name}.expected.f32`), 0));
        await page.setInputFiles('#own-file', path.join(dir, `${name}.onnx`));
        // The fields default to the bundled digit model's preprocessing; the fixtures were made on pixels
        // scaled to [0, 1], written here as a user would.
        await page.fill('#own-scale', '0.00392157');
        await page.fill('#own-mean', '0');
        await page.fill('#own-std', '1');
        await putDigit(page, digit);
        const before = await page.evaluate(() => window.moreApp.results.length);
        await page.click('#own-import');
        await page.waitForFunction((n) => window.moreApp.results.length > n || !document.getElementById('own-error').hidden
          || !document.getElementById('digit-error').hidden, before, { timeout: 60_000 });
        const errors = (await page.locator('#own-error:not([hidden]), #digit-error:not([hidden])').allInnerTexts()).filter(Boolean);
        ctx.assert(!errors.length, `${name}: ${errors.join(' | ')}`);
        const own = await page.evaluate(() => window.moreApp.ownModel);
        const r = await page.evaluate(() => window.moreApp.results.at(-1));
        ctx.log(`${name}: input ${JSON.stringify(own.report.inputShape)}, ${own.report.parameters} parameters, `
          + `operators ${own.report.operators.join(' ')}, imported in ${own.importMs.toFixed(1)} ms; `
          + `class ${r.label} (p = ${r.probs[r.index].toFixed(3)}), onnxruntime ${want}`);
        ctx.figure(`own_model_import_ms_${name}`, +own.importMs.toFixed(1));
        ctx.assert(own.id.startsWith('upload-') && r.model === own.id, `${name}: answered by ${r.model}, uploaded ${own.id}`);
        ctx.assert(await page.locator('#model-mnist').inputValue() === own.id, `${name}: not chosen in the picker`);
        ctx.assert(r.label === want, `${name}: the page says ${r.label} for MNIST test image 0, onnxruntime ${want}`);
        // Uploaded models are not listed by the server.
        ctx.assert(!(await ctx.models()).some((m) => m.id === own.id), `${name}: the uploaded model is listed`);
        await ctx.screenshot(page, `own-model-${name}`);
      }
      // Not ONNX: refused in plain words, the page keeps working.
      await page.setInputFiles('#own-file', { name: 'notes.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from('these are not protobuf bytes\xff\xff') });
      await page.click('#own-import');
      await page.waitForSelector('#own-error:not([hidden])', { timeout: 30_000 });
      const message = await page.locator('#own-error').innerText();
      ctx.log(`not ONNX: ${message}`);
      ctx.assert(/could not be imported/.test(message), message);
      await ctx.screenshot(page, 'own-model-refused');
      await checkAxe(ctx, page, 'index_own_model');
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
    },
  },
];
