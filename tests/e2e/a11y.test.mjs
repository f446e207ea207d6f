// Every page passes axe-core's WCAG 2.1 A/AA rules with zero violations, once its content has rendered:
// the main page (models listed), the walkthrough (steps ready), the whole-body-circulation page and the
// lesson (its first step open, and every step's hint and solution shown), the training page (ready; its
// results are checked after a run in train.test.mjs).

import { checkAxe } from './axe.mjs';

const PAGES = [
  { label: 'index', url: '', ready: () => document.querySelectorAll('select option, [data-model]').length > 0 || document.readyState === 'complete' },
  { label: 'walkthrough', url: 'web/walkthrough.html', ready: () => !!window.walkthrough },
  { label: 'wbc', url: 'web/wbc.html', ready: () => document.readyState === 'complete' },
  { label: 'learn', url: 'web/learn.html', ready: () => !!(window.lesson && window.lesson.ready) },
  { label: 'train', url: 'web/train.html', ready: () => /^(Ready|This server)/.test(document.getElementById('train-status').textContent) },
];

export default PAGES.map((p) => ({
  name: `${p.label} has no WCAG 2.1 A/AA violations`,
  async run(ctx) {
    const page = await ctx.newPage();
    await page.goto(new URL(p.url, ctx.baseUrl).href, { waitUntil: 'networkidle' });
    await page.waitForFunction(p.ready, null, { timeout: 30_000 });
    if (p.label === 'walkthrough') await page.evaluate(() => window.walkthrough.ready);
    if (p.label === 'learn') {
      await page.evaluate(() => window.lesson.ready);
      // Open every hint and solution so that their text is checked too.
      await page.evaluate(() => document.querySelectorAll('details').forEach((d) => { d.open = true; }));
    }
    await page.waitForTimeout(300);
    await checkAxe(ctx, page, p.label);
    ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
  },
}));
