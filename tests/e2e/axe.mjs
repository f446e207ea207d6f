// axe-core (tools/node_modules/axe-core) in a page: checkAxe(ctx, page, label) injects it by evaluating
// its source through the DevTools protocol (page.evaluate; a <script> tag would be an inline script, which
// the site's Content-Security-Policy rightly refuses) and runs the WCAG 2.1 A and AA rules (tags wcag2a, wcag2aa, wcag21a, wcag21aa) on the
// page as it is now. It throws with every violation (rule, impact, the first offending elements and axe's
// summary) if there is any, and returns the number of rules that passed.

import { readFileSync } from 'node:fs';
import path from 'node:path';

export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

export async function checkAxe(ctx, page, label) {
  const axePath = path.join(ctx.root, 'tools/node_modules/axe-core/axe.min.js');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(readFileSync(axePath, 'utf8'));
  }
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] }),
    WCAG_TAGS,
  );
  const lines = result.violations.map((v) => {
    const nodes = v.nodes.slice(0, 4).map((n) => `      ${n.target.join(' ')}: ${(n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 220)}`);
    return `  ${v.id} (${v.impact}, ${v.nodes.length} element${v.nodes.length === 1 ? '' : 's'}): ${v.help}\n${nodes.join('\n')}`;
  });
  ctx.figure(`axe_violations_${label}`, result.violations.length);
  ctx.assert(result.violations.length === 0, `axe: ${result.violations.length} WCAG 2.1 A/AA violation(s) on ${label}:\n${lines.join('\n')}`);
  return result.passes ? result.passes.length : 0;
}
