// The whole-body circulation panel (web/wbc.html) against the real server: the live simulation (more-hemo in
// wasm) and the encrypted prediction of the wbc-mlp surrogate (parameters encrypted in the page, only
// ciphertexts on the wire, answer decrypted in the page) are both shown, agree, and follow the sliders.

const readTable = (page) => page.evaluate(() => Array.from(document.querySelectorAll('#wbc-table tbody tr'), (tr) => ({
  name: tr.dataset.output,
  sim: Number(tr.cells[1].dataset.value),
  enc: Number(tr.cells[2].dataset.value),
  simText: tr.cells[1].textContent,
  encText: tr.cells[2].textContent,
})));

export default [
  {
    name: 'wbc panel shows the encrypted prediction and the live simulation',
    run: async (ctx) => {
      const models = await ctx.models();
      const list = Array.isArray(models) ? models : (models.models || []);
      ctx.assert(list.some((m) => (m.id || (m.meta && m.meta.id)) === 'wbc-mlp'), 'the server does not list wbc-mlp');
      const page = await ctx.newPage();
      const posts = [];
      page.on('request', (r) => { if (r.method() === 'POST') posts.push({ url: r.url(), type: r.headers()['content-type'], body: r.postDataBuffer() }); });
      await page.goto(new URL('web/wbc.html', ctx.baseUrl).href);
      await page.waitForFunction(() => document.body.dataset.wbcSim === 'done' && document.body.dataset.wbcEnc, null, { timeout: 60_000 });
      ctx.assert(await page.evaluate(() => document.body.dataset.wbcEnc) === 'done',
        `encrypted prediction failed: ${await page.locator('#wbc-status').textContent()}`);
      const rows = await readTable(page);
      ctx.assert(rows.length === 6, `expected 6 outputs, got ${rows.length}`);
      for (const r of rows) {
        ctx.assert(Number.isFinite(r.sim) && Number.isFinite(r.enc), `${r.name}: sim "${r.simText}", enc "${r.encText}"`);
        const rel = Math.abs(r.enc - r.sim) / Math.abs(r.sim);
        ctx.log(`${r.name}: simulation ${r.sim.toFixed(2)}, encrypted prediction ${r.enc.toFixed(2)} (${(100 * rel).toFixed(2)}%)`);
        ctx.assert(rel < 0.1, `${r.name}: prediction ${r.enc} vs simulation ${r.sim}`);
      }
      const sbp = rows.find((r) => r.name === 'systolic_pressure');
      ctx.assert(sbp.sim > 100 && sbp.sim < 140, `default systolic pressure ${sbp.sim}`);
      // The waveform is plotted.
      const d = await page.locator('#wbc-aortic-path').getAttribute('d');
      ctx.assert(d && d.startsWith('M') && !d.includes('NaN') && d.split('L').length > 100, 'aortic pressure path missing');
      // Only a wire-format ciphertext went to the server.
      const infer = posts.filter((p) => p.url.includes('/api/v1/models/wbc-mlp/infer'));
      ctx.assert(infer.length >= 1, 'no inference request');
      ctx.assert(infer.every((p) => p.type === 'application/x-more-tensor'), 'inference body is not a MORE tensor');
      ctx.figure('wbc_ciphertext_bytes', infer[0].body ? infer[0].body.length : 0);
      await ctx.screenshot(page, 'wbc-default');

      // Raise the systemic resistance: both columns follow, mean pressure up.
      const before = rows.find((r) => r.name === 'mean_pressure');
      await page.evaluate(() => { document.body.dataset.wbcEnc = ''; document.body.dataset.wbcSim = ''; });
      await page.locator('#wbc-systemic_resistance').fill('1.1');
      await page.waitForFunction(() => document.body.dataset.wbcSim === 'done' && document.body.dataset.wbcEnc === 'done', null, { timeout: 60_000 });
      const after = (await readTable(page)).find((r) => r.name === 'mean_pressure');
      ctx.log(`mean pressure at R = 1.1: simulation ${after.sim.toFixed(1)} (was ${before.sim.toFixed(1)}), encrypted ${after.enc.toFixed(1)} (was ${before.enc.toFixed(1)})`);
      ctx.assert(after.sim > before.sim + 10 && after.enc > before.enc + 10, 'mean pressure did not rise with resistance');
      ctx.assert(Math.abs(after.enc - after.sim) / after.sim < 0.1, 'prediction and simulation disagree after the change');
      await ctx.screenshot(page, 'wbc-high-resistance');
      ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join(' | ')}`);
    },
  },
];
