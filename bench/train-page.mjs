// Drives web/train.html in headless Chromium against a running server and prints the page's figures as one
// JSON line: time per epoch on the server (encrypted) and in the page (plaintext), bytes uploaded, time
// from "train" to the decrypted model, and both models' errors or accuracies.
//
//   target/release/more-server --models models --web . --training-data ../shared/data &
//   node bench/train-page.mjs wbc 1000 200            # task, patients, epochs
//   node bench/train-page.mjs mnist 3000 3 2000       # task, training digits, epochs, test digits
//   URL=http://127.0.0.1:9000/ node bench/train-page.mjs wbc 1000
//
// CHROMIUM sets the browser (default /usr/bin/chromium). Needs tools/node_modules (scripts/setup.sh).

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { chromium } = createRequire(path.join(root, 'tools/package.json'))('playwright-core');
const [task = 'wbc', count = task === 'wbc' ? '1000' : '3000', epochs = task === 'wbc' ? '200' : '3', testCount = '2000'] = process.argv.slice(2);
const base = process.env.URL || 'http://127.0.0.1:8080/';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(new URL('web/train.html', base).href);
  await page.waitForFunction(() => document.getElementById('train-status').textContent.startsWith('Ready'), null, { timeout: 60_000 });
  if (task === 'wbc') {
    await page.fill('#wbc-count', count);
    await page.click('#wbc-generate');
  } else {
    await page.check('input[name=task][value=mnist]');
    await page.fill('#mnist-count', count);
    await page.fill('#mnist-test-count', testCount);
    await page.click('#mnist-fetch');
  }
  await page.waitForFunction(() => !document.getElementById('train').disabled || !document.getElementById('train-error').hidden, null, { timeout: 3_600_000 });
  await page.fill('#epochs', epochs);
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('train-result').dataset.done === 'true'
    || !document.getElementById('train-error').hidden, null, { timeout: 3_600_000 });
  if (await page.locator('#train-error').isVisible()) throw new Error(await page.locator('#train-error').textContent());
  const figures = await page.evaluate(() => ({ ...document.getElementById('train-result').dataset }));
  const out = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Number.isFinite(Number(v)) && v !== '' ? Number(v) : v]));
  console.log(JSON.stringify({ task, count: Number(count), ...out }));
  console.error(await page.locator('#result-summary').textContent());
  console.error(await page.locator('#result-figures').textContent());
  await page.screenshot({ path: path.join(root, `tests/e2e/screenshots/bench-train-${task}.png`), fullPage: true });
} finally {
  await browser.close();
}
