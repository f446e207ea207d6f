// The training page (web/train.html) against the real server: the page simulates patients (or fetches the
// server's sample digits), encrypts inputs and targets, the server trains on the ciphertexts, the page
// follows the live loss, decrypts the model and compares it with the same network trained in the page on
// the same plaintext. Stated tolerance: the held-out mean relative error of the decrypted model within 10%
// (relative) of the plaintext model's, their predictions within 1e-2 (standardised units); for digits, test
// accuracies within 5 points and the same answer on at least 90% of the test digits.

import fs from 'node:fs/promises';

import { checkAxe } from './axe.mjs';

const result = (page) => page.evaluate(() => ({ ...document.getElementById('train-result').dataset }));

async function open(ctx) {
  const page = await ctx.newPage();
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST') posts.push({ url: r.url(), type: r.headers()['content-type'], size: (r.postDataBuffer() || []).length });
  });
  await page.goto(new URL('web/train.html', ctx.baseUrl).href);
  await page.waitForFunction(() => document.getElementById('train-status').textContent.startsWith('Ready'), null, { timeout: 30_000 });
  return { page, posts };
}

/** Skips a test that needs the server's sample digits when it offers none (no MNIST in the data directory). */
async function needDigits(ctx) {
  const res = await fetch(new URL('api/v1/training/samples/mnist?count=1', ctx.baseUrl));
  if (res.status === 404) ctx.skip('the server offers no sample digits (no ../shared/data/mnist)');
}

async function finish(ctx, page) {
  await page.waitForFunction(() => document.getElementById('train-result').dataset.done === 'true'
    || !document.getElementById('train-error').hidden, null, { timeout: 150_000 });
  const error = await page.locator('#train-error').isVisible() ? await page.locator('#train-error').textContent() : '';
  ctx.assert(!error, `training failed: ${error}`);
  return result(page);
}

export default [
  {
    name: 'patients: the decrypted model matches the plaintext model trained in the page',
    run: async (ctx) => {
      const { page, posts } = await open(ctx);
      await page.fill('#wbc-count', '80');
      await page.click('#wbc-generate');
      await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 60_000 });
      ctx.log(await page.locator('#wbc-summary').textContent());
      await page.fill('#epochs', '30');
      await page.click('#train');
      const r = await finish(ctx, page);
      ctx.log(await page.locator('#result-summary').textContent());
      ctx.log(await page.locator('#result-figures').textContent());
      const [enc, plain] = [Number(r.encryptedMetric), Number(r.plainMetric)];
      ctx.assert(Number.isFinite(enc) && Number.isFinite(plain) && plain > 0, `MREs ${r.encryptedMetric}, ${r.plainMetric}`);
      ctx.assert(Math.abs(enc - plain) / plain <= 0.1, `MRE ${enc} (encrypted) vs ${plain} (plaintext): more than 10% apart`);
      ctx.assert(Number(r.maxPredictionDiff) < 1e-2, `predictions differ by ${r.maxPredictionDiff}`);
      ctx.assert(Number(r.heldOut) === 16 && Number(r.rows) === 64, `split ${r.rows} / ${r.heldOut}`);
      // Both loss curves are complete, and the server's decrypted loss follows the page's.
      const rows = await page.$$eval('#epoch-table tbody tr', (trs) => trs.map((tr) => [Number(tr.cells[1].textContent), Number(tr.cells[3].textContent)]));
      ctx.assert(rows.length === 30, `${rows.length} epochs in the table`);
      for (const [s, p] of rows) ctx.assert(Math.abs(s - p) <= 0.05 * p + 1e-3, `epoch loss ${s} (server) vs ${p} (page)`);
      ctx.assert(rows[29][0] < rows[0][0] / 3, `the loss did not fall: ${rows[0][0]} → ${rows[29][0]}`);
      ctx.assert(await page.locator('#loss-chart svg polyline').count() === 2, 'two loss curves');
      // The server's model gives its weights away without the key.
      ctx.assert(Number(r.readoutDiff) < 1e-4, `read-out weights differ by ${r.readoutDiff}`);
      // Only the encrypted job went to the server, once.
      ctx.assert(posts.length === 1 && posts[0].url.endsWith('/api/v1/jobs') && posts[0].type === 'application/x-more-training-job',
        `posts: ${JSON.stringify(posts)}`);
      ctx.assert(posts[0].size === Number(r.uploadBytes), `uploaded ${posts[0].size} bytes, page says ${r.uploadBytes}`);
      ctx.figure('train_wbc80_encrypted_mre', enc);
      ctx.figure('train_wbc80_plain_mre', plain);
      ctx.figure('train_wbc80_ms_to_model', Number(r.toModelMs));
      // The decrypted model can be saved as a model file.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#model-download')]);
      const saved = await fs.readFile(await download.path());
      ctx.assert(saved.subarray(0, 8).toString() === 'MORENN01' && download.suggestedFilename() === 'wbc-mlp-trained-encrypted.morenn',
        `saved ${download.suggestedFilename()}: ${saved.subarray(0, 8)}`);
      await ctx.screenshot(page, 'train-wbc');
      await checkAxe(ctx, page, 'train (results shown)');
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
    },
  },
  {
    name: 'patients saved as CSV load back, and a bad file is refused with a clear message',
    run: async (ctx) => {
      const { page } = await open(ctx);
      await page.fill('#wbc-count', '30');
      await page.click('#wbc-generate');
      await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 60_000 });
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#wbc-save')]);
      const csv = await fs.readFile(await download.path(), 'utf8');
      const lines = csv.trim().split('\n');
      ctx.assert(lines.length === 31 && lines[0].split(',').length === 13, `saved CSV: ${lines.length} lines, header ${lines[0]}`);
      // A fresh page reads the file back: the same 30 patients, split 24 / 6.
      const other = (await open(ctx)).page;
      await other.setInputFiles('#wbc-file', { name: 'patients.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
      await other.waitForFunction(() => /patients from patients\.csv/.test(document.getElementById('wbc-summary').textContent), null, { timeout: 10_000 });
      const summary = await other.locator('#wbc-summary').textContent();
      ctx.assert(summary.startsWith('30 patients') && summary.includes('24 for training, 6 kept aside'), summary);
      ctx.assert(!(await other.locator('#train').isDisabled()), 'ready to train on the loaded patients');
      await other.fill('#epochs', '3');
      await other.click('#train');
      const r = await finish(ctx, other);
      ctx.assert(Math.abs(Number(r.encryptedMetric) - Number(r.plainMetric)) <= 0.1 * Number(r.plainMetric), JSON.stringify(r));
      // A file that is not a patients table.
      await other.setInputFiles('#wbc-file', { name: 'notes.csv', mimeType: 'text/csv', buffer: Buffer.from('a,b\n1,2\n') });
      await other.waitForFunction(() => !document.getElementById('train-error').hidden, null, { timeout: 10_000 });
      const msg = await other.locator('#train-error').textContent();
      ctx.assert(msg.includes('patients file') && msg.includes('header'), `bad file message: ${msg}`);
      ctx.assert(page.errors.length === 0 && other.errors.length === 0, `page errors: ${[...page.errors, ...other.errors].join('; ')}`);
    },
  },
  {
    name: 'digits: the server\'s sample digits, trained encrypted, match the plaintext run',
    run: async (ctx) => {
      await needDigits(ctx);
      const { page } = await open(ctx);
      await page.check('input[name=task][value=mnist]');
      await page.fill('#mnist-count', '400');
      await page.fill('#mnist-test-count', '500');
      await page.click('#mnist-fetch');
      await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 60_000 });
      ctx.assert(await page.locator('#mnist-strip canvas').count() === 16, 'the first digits are shown');
      await page.fill('#epochs', '1');
      await page.click('#train');
      const r = await finish(ctx, page);
      ctx.log(await page.locator('#result-summary').textContent());
      const up = await page.locator('#upload-progress').evaluate((p) => [p.value, p.max]);
      ctx.assert(up[0] === up[1] && up[1] === Number(r.uploadBytes), `upload progress ${up} for ${r.uploadBytes} bytes`);
      const [enc, plain] = [Number(r.encryptedMetric), Number(r.plainMetric)];
      ctx.assert(enc > 0.2 && plain > 0.2, `accuracies ${enc}, ${plain}: not trained`);
      ctx.assert(Math.abs(enc - plain) <= 0.05, `accuracy ${enc} (encrypted) vs ${plain} (plaintext)`);
      ctx.assert(Number(r.argmaxAgreement) >= 0.9, `same answer on only ${r.argmaxAgreement}`);
      ctx.assert(Number(r.readoutDiff) < 1e-4, `read-out weights differ by ${r.readoutDiff}`);
      await ctx.screenshot(page, 'train-mnist');
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
    },
  },
  {
    name: 'a running job can be cancelled, and settings over the server\'s limits are refused',
    run: async (ctx) => {
      await needDigits(ctx);
      const { page, posts } = await open(ctx);
      await page.check('input[name=task][value=mnist]');
      await page.fill('#mnist-count', '2000');
      await page.fill('#mnist-test-count', '100');
      await page.click('#mnist-fetch');
      await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 60_000 });
      await page.fill('#epochs', '999');
      await page.click('#train');
      await page.waitForFunction(() => !document.getElementById('train-error').hidden, null, { timeout: 10_000 });
      const limit = await page.locator('#train-error').textContent();
      ctx.assert(/Epochs must be 1 to \d+/.test(limit), `limit message: ${limit}`);
      ctx.assert(posts.length === 0, 'nothing is sent when the settings are refused');
      // The server's own refusals reach the user in words (here a body without a header line).
      const refused = await page.evaluate(async () => {
        const api = await import('./api.js');
        try { await api.createJob('application/x-more-training-job', new Uint8Array([1, 2, 3])); return 'accepted'; } catch (e) { return `${e.status} ${e.code}: ${e.message}`; }
      });
      ctx.assert(/^400 malformed: The server could not read the request \(.*header line/.test(refused), `refusal: ${refused}`);
      posts.length = 0;
      // The browser logs that refused request as a console error: expected here.
      const expected = page.errors.filter((e) => /status of 400/.test(e));
      ctx.assert(expected.length === 1 && page.errors.length === 1, `page errors: ${page.errors.join('; ')}`);
      page.errors.length = 0;
      await page.fill('#epochs', '20');
      await page.click('#train');
      await page.waitForFunction(() => Number(document.getElementById('step-progress').value) > 0, null, { timeout: 60_000 });
      await page.click('#cancel');
      await page.waitForFunction(() => !document.getElementById('train-error').hidden, null, { timeout: 30_000 });
      const msg = await page.locator('#train-error').textContent();
      ctx.assert(msg.includes('cancelled'), `cancel message: ${msg}`);
      ctx.assert(!(await page.locator('#train').isDisabled()), 'the page is ready again');
      const id = (await result(page)).jobId;
      const status = await fetch(new URL(`api/v1/jobs/${id}`, ctx.baseUrl));
      ctx.assert(id && status.status === 404, `job ${id} after cancelling: ${status.status}`);
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
    },
  },
];
