// BFV beside MORE on the main page: a drawn digit gets the same class under both schemes, the BFV column
// shows its time split and bytes, and no secret-key byte of either scheme leaves the page.

import { drawStrokes } from './strokes.mjs';

const SEVEN = [[[78, 62], [140, 60], [202, 60], [180, 110], [158, 160], [138, 210], [126, 240]]];

function indexOf(hay, needle) {
  return needle.length && hay.length >= needle.length ? hay.indexOf(needle) : -1;
}

async function bfvBesideMore(ctx) {
  const models = await ctx.models();
  // The digit classifier (the server also lists the angiogram views' and the WBC surrogate's BFV models).
  const bfv = models.find((m) => m.scheme === 'bfv' && m.task === 'mnist');
  if (!bfv) ctx.skip('the server lists no BFV digit model');
  const page = await ctx.newPage();
  const requests = [];
  page.on('request', (req) => requests.push({ url: req.url(), body: req.postDataBuffer() || Buffer.alloc(0) }));
  await page.goto(ctx.baseUrl);
  await page.evaluate(() => window.moreApp.ready);
  await page.check('#bfv-enable');
  await page.click('#draw-clear');
  await drawStrokes(page, '#draw', SEVEN);
  await page.waitForFunction(() => (window.moreApp.bfvResults || []).length > 0
    || !document.getElementById('bfv-error').hidden, null, { timeout: 170_000 });
  const err = await page.locator('#bfv-error').evaluate((e) => (e.hidden ? '' : e.textContent));
  ctx.assert(!err, `BFV error: ${err}`);
  const more = await page.evaluate(() => window.moreApp.results.at(-1));
  const b = await page.evaluate(() => {
    const r = window.moreApp.bfvResults.at(-1);
    return { label: r.label, times: r.times, bytes: r.bytes, keyBytes: r.keyBytes, answerBytes: r.answerBytes };
  });
  ctx.log(`MORE: ${more.label}, BFV: ${b.label}; BFV times ${JSON.stringify(b.times)}`);
  ctx.assert(more.label === '7' && b.label === '7', `MORE says ${more.label}, BFV says ${b.label}; both should say 7`);
  for (const [k, v] of Object.entries(b.times)) ctx.figure(`bfv_browser_${k.replace(/ /g, '_')}_ms`, Math.round(v));
  ctx.figure('bfv_ciphertext_bytes', b.bytes);
  ctx.figure('bfv_eval_key_bytes', b.keyBytes);
  await ctx.screenshot(page, 'bfv-beside-more');

  // The secret key (fhe.rs serialisation, held by the worker): no 32-byte window of it in any request.
  const sk = Buffer.from(await page.evaluate(async () => Array.from(await (await import('./web/bfv.js')).secretKeyBytesForTest())));
  ctx.assert(sk.length > 1000, `secret key of ${sk.length} bytes`);
  const keyUploads = requests.filter((r) => r.url.includes('/api/v1/bfv/keys'));
  ctx.assert(keyUploads.length === 1, `${keyUploads.length} key uploads`);
  for (const r of requests) {
    for (let i = 0; i + 32 <= sk.length; i += 64) {
      ctx.assert(indexOf(r.body, sk.subarray(i, i + 32)) === -1, `request ${r.url} contains secret-key bytes ${i}..${i + 32}`);
    }
  }
  ctx.log(`${requests.length} requests checked against the BFV secret key (${sk.length} bytes)`);
}

async function walkthroughStep10(ctx) {
  const models = await ctx.models();
  if (!models.some((m) => m.scheme === 'bfv' && m.task === 'mnist')) ctx.skip('the server lists no BFV digit model');
  const page = await ctx.newPage();
  await page.goto(`${ctx.baseUrl}web/walkthrough.html`);
  // The drawing pad and the button's handler exist once the page's setup is done (wasm loaded, models
  // listed): strokes drawn before that are lost, and on a loaded machine that is seconds.
  await page.waitForFunction(() => window.walkthrough && window.walkthrough.ready);
  await page.evaluate(() => window.walkthrough.ready);
  await drawStrokes(page, '#wt-draw', SEVEN);
  await page.waitForTimeout(500);
  await page.click('#bfv-run');
  // Done, failed ("BFV: …"), or refused before starting (no digit, no BFV model): any of them ends the wait.
  await page.waitForFunction(() => window.bfvStep || /BFV:|BFV runs on digits|no BFV model/.test(document.getElementById('bfv-verdict').textContent),
    null, { timeout: 170_000 });
  const r = await page.evaluate(() => window.bfvStep);
  ctx.assert(r, `no BFV result: ${await page.locator('#bfv-verdict').innerText()}`);
  ctx.log(`walkthrough under BFV: ${r.label}, attack correlation with the digit ${r.correlation.toFixed(3)}`);
  ctx.assert(r.label === '7', `BFV says ${r.label}`);
  ctx.assert(Math.abs(r.correlation) < 0.3, `the attack on BFV correlates ${r.correlation} with the digit`);
  // Both costs side by side: this digit's latency (above) and the batch figures the model file records.
  const batch = `${await page.locator('#cmp-more-batch').innerText()} | ${await page.locator('#cmp-bfv-batch').innerText()}`;
  const facts = await page.locator('#bfv-facts').innerText();
  ctx.log(`step 10, many at once: ${batch}`);
  ctx.assert(/^10,000 at once: .* ms per image/.test(batch) && /\| 10,000 at once \(one image per slot\): .*× MORE/.test(batch),
    `comparison row: ${batch}`);
  ctx.assert(/this one digit/.test(facts) && /images at once under BFV/.test(facts), `live table: ${facts}`);
  await page.locator('#step-compare').scrollIntoViewIfNeeded();
  await ctx.screenshot(page, 'walkthrough-step10-bfv');
  await page.locator('#step-compare').screenshot({ path: `${ctx.root}/tests/e2e/screenshots/walkthrough-step10-compare.png` });
}

export default [
  { name: 'main page: same class under MORE and BFV, no secret-key byte sent', run: bfvBesideMore },
  { name: 'walkthrough step 10: the digit under BFV, the attack of steps 5-6 yields noise', run: walkthroughStep10 },
];
