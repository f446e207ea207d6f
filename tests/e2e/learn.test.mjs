// The lesson (web/learn.html) as a student goes through it: every widget runs (real wasm), every exercise is
// answered wrong first (the page says so) and then right (the page says so and marks the step done); the
// hidden letter is read off the attack's output canvas; the class challenge is created by the teacher in the
// page's teacher panel (a wrong token refused, then the right one), downloaded and attacked in the page, its
// recovered image verified by the server and its phrase submitted; progress survives a reload. Steps 1-8 with the
// API unreachable; keyboard-only use, and a 390x844 phone screen (no sideways scrolling).
// Screenshots: learn-*.png.

import { checkAxe } from './axe.mjs';

// Right answers (as docs/teaching.md lists them) and one wrong attempt for each exercise.
const ANSWERS = {
  'by-hand': { kind: 'numbers', right: [1, 4, -2, 7], wrong: [1, 4, 2, 7] },
  homomorphic: { kind: 'numbers', right: [5, 6], wrong: [5, 5] },
  relu: { kind: 'choice', right: 1, wrong: 0 },
  'trace-det': { kind: 'numbers', right: [2, 1], wrong: [3, 2] },
  eigenbasis: { kind: 'text', right: null, wrong: 'X' },
  'known-value': { kind: 'numbers', right: [7], wrong: [6] },
  equality: { kind: 'choice', right: 0, wrong: 1 },
  lattice: { kind: 'choice', right: 3, wrong: 0 },
};

async function openLesson(ctx, page) {
  await page.goto(new URL('web/learn.html', ctx.baseUrl).href);
  await page.evaluate(() => window.lesson.ready);
}

async function answer(page, id, kind, value) {
  if (kind === 'numbers') {
    for (let i = 0; i < value.length; i++) await page.fill(`#ex-${id}-${i}`, String(value[i]));
  } else if (kind === 'choice') {
    await page.check(`#ex-${id}-${value}`);
  } else {
    await page.fill(`#ex-${id}-0`, value);
  }
  await page.click(`#check-${id}`);
  return page.$eval(`#fb-${id}`, (e) => ({ text: e.textContent, good: e.classList.contains('good') }));
}

/** Reads the hidden letter from the data-lane canvas: which 3x3 cells of the 5x7 grid are bright. */
async function readGlyph(page) {
  return page.$eval('#w5-img', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const rows = [];
    for (let gy = 0; gy < 7; gy++) {
      let row = '';
      for (let gx = 0; gx < 5; gx++) row += d[4 * ((gy * 3 + 1) * c.width + gx * 3 + 1)] > 127 ? '#' : '.';
      rows.push(row);
    }
    return rows;
  });
}
// The student's own alphabet card: a few letters they might expect.
const LETTERS = {
  K: ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
  X: ['#...#', '#...#', '.#.#.', '..#..', '.#.#.', '#...#', '#...#'],
  H: ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
};

export default [
  {
    name: 'a student does every exercise: wrong, then right; progress is kept',
    async run(ctx) {
      const { assert } = ctx;
      const page = await ctx.newPage();
      await openLesson(ctx, page);
      await page.evaluate(() => localStorage.clear());
      await page.reload();
      await page.evaluate(() => window.lesson.ready);
      assert((await page.textContent('#progress-text')).startsWith('0 of 9'), 'fresh progress');
      // KaTeX typeset the maths (no raw TeX left, MathML present for screen readers).
      assert((await page.$$('.katex math')).length > 20, 'KaTeX rendered the formulas');

      // Every widget runs.
      for (const id of ['w1', 'w2', 'w3', 'w4', 'w6', 'w7', 'w8']) {
        await page.click(`#${id}-go`);
        const out = await page.textContent(`#${id}-out`);
        assert(out.trim().length > 10, `${id} shows a result: ${out}`);
      }
      assert((await page.textContent('#w2-out')).includes('decrypts to -0.5') && (await page.textContent('#w2-out')).includes('decrypts to -3'), await page.textContent('#w2-out'));
      assert((await page.textContent('#w6-out')).includes('0.2, 0.9, 0.5, 0.1'), await page.textContent('#w6-out'));
      assert((await page.textContent('#w7-out')).includes('equal'), await page.textContent('#w7-out'));
      await page.click('#w5-go');
      const glyph = await readGlyph(page);
      const letter = Object.entries(LETTERS).find(([, g]) => g.join() === glyph.join())?.[0];
      assert(letter, `the recovered image is a letter: ${glyph.join('/')}`);
      ANSWERS.eigenbasis.right = letter;
      ctx.log(`hidden letter read from the attack's canvas: ${letter}`);

      for (const [id, a] of Object.entries(ANSWERS)) {
        const wrong = await answer(page, id, a.kind, a.wrong);
        assert(!wrong.good && /not/i.test(wrong.text), `${id}: a wrong answer is refused (${wrong.text})`);
        await page.click(`#hint-${id} summary`);
        assert(await page.$eval(`#hint-${id}`, (d) => d.open), `${id}: the hint opens`);
        const right = await answer(page, id, a.kind, a.right);
        assert(right.good, `${id}: the right answer is accepted (${right.text})`);
        await page.click(`#solution-${id} summary`);
      }
      await ctx.screenshot(page, 'learn-exercises');
      for (const id of ['by-hand', 'eigenbasis']) {
        await page.locator(`#step-${id}`).screenshot({ path: `${ctx.root}/tests/e2e/screenshots/learn-step-${id}.png` });
      }

      // The class challenge: the teacher creates one; the student downloads, attacks and submits.
      const api = new URL('api/v1/challenges', ctx.baseUrl).href;
      const auth = { authorization: `Bearer ${ctx.teacherToken}` };
      const bad = await fetch(api, { method: 'POST', headers: { authorization: 'Bearer wrong' } });
      assert(bad.status === 401, `a wrong token is refused: ${bad.status}`);
      // The teacher uses the page's panel: a wrong token is refused, the right one creates the challenge.
      await page.click('#teacher summary');
      await page.fill('#t-token', 'not-the-token');
      await page.click('#t-new');
      await page.waitForFunction(() => /refused/.test(document.getElementById('t-out').textContent));
      await page.fill('#t-token', ctx.teacherToken);
      await page.click('#t-new');
      await page.waitForFunction(() => /created/.test(document.getElementById('t-out').textContent));
      const id = await page.inputValue('#ch-id');
      assert(/^[0-9a-f]{12}$/.test(id), `the panel filled in the new id: ${id}`);
      await page.click('#ch-load');
      await page.waitForFunction(() => /Recovered/.test(document.getElementById('ch-out').textContent));
      // The canvas the page drew, posted as the image answer: the server confirms the recovery.
      const pixels = await page.$eval('#ch-img', (c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from({ length: c.width * c.height }, (_, i) => d[4 * i] / 255);
      });
      const verdict = await (await fetch(`${api}/${id}/answers`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Canvas check', answer: pixels }),
      })).json();
      assert(verdict.correct === true, 'the image the page recovered is the secret image');
      await page.fill('#ch-name', 'Student One');
      await page.fill('#ch-phrase', 'AAAAA');
      await page.click('#check-challenge');
      await page.waitForFunction(() => document.getElementById('fb-challenge').textContent.length > 0);
      assert(/not correct/.test(await page.textContent('#fb-challenge')), 'a wrong phrase is refused');
      // The student reads the phrase off the image; the test takes it from the teacher's list.
      const list = await (await fetch(`${api}/${id}/answers`, { headers: auth })).json();
      await page.fill('#ch-phrase', list.phrase);
      await page.click('#check-challenge');
      await page.waitForFunction(() => document.getElementById('fb-challenge').classList.contains('good'));
      const after = await (await fetch(`${api}/${id}/answers`, { headers: auth })).json();
      assert(after.solved.some((s) => s.name === 'Student One'), JSON.stringify(after.solved));
      await page.click('#t-list');
      await page.waitForFunction(() => /Student One/.test(document.getElementById('t-out').textContent));
      await page.locator('#step-challenge').screenshot({ path: `${ctx.root}/tests/e2e/screenshots/learn-challenge.png` });

      assert((await page.textContent('#progress-text')).startsWith('9 of 9'), await page.textContent('#progress-text'));
      await page.reload();
      await page.evaluate(() => window.lesson.ready);
      assert((await page.textContent('#progress-text')).startsWith('9 of 9'), 'progress survives a reload');
      assert((await page.$$('#toc a.done')).length === 9, 'every step is marked done in the contents');
      await checkAxe(ctx, page, 'learn_done');
      // The one expected error: the browser logs the 401 answer to the wrong teacher token.
      const errors = page.errors.filter((e) => !/status of 401/.test(e));
      assert(errors.length === 0, `page errors: ${page.errors.join('; ')}`);
    },
  },
  {
    name: 'offline: with every API request failing, steps 1-8 still run and check',
    async run(ctx) {
      const { assert } = ctx;
      const page = await ctx.newPage();
      const blocked = [];
      await page.route('**/api/**', (route) => { blocked.push(route.request().url()); return route.abort(); });
      await openLesson(ctx, page);
      for (const id of ['w1', 'w2', 'w3', 'w4', 'w6', 'w7', 'w8']) {
        await page.click(`#${id}-go`);
        assert((await page.textContent(`#${id}-out`)).trim().length > 10, `${id} runs offline`);
      }
      assert((await answer(page, 'known-value', 'numbers', [7])).good, 'an exercise is checked offline');
      assert(blocked.length === 0, `steps 1-8 made no API request: ${blocked.join(', ')}`);
      await page.fill('#ch-id', 'abc123');
      await page.click('#ch-load');
      await page.waitForFunction(() => /Could not load/.test(document.getElementById('ch-out').textContent));
      assert(blocked.length > 0, 'the challenge step is the one that needs the server, and says so when it fails');
    },
  },
  {
    name: 'keyboard only: skip link, contents, an exercise, its hint',
    async run(ctx) {
      const { assert } = ctx;
      const page = await ctx.newPage();
      await openLesson(ctx, page);
      await page.evaluate(() => localStorage.clear());
      await page.keyboard.press('Tab');
      assert(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'the first Tab reaches the skip link');
      // Tab on until the first exercise's first box, typing nothing with the mouse.
      let seen = 0;
      for (; seen < 120; seen++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate(() => document.activeElement.id === 'ex-by-hand-0')) break;
      }
      assert(seen < 120, 'Tab reaches the first exercise');
      for (const v of ['1', '4', '-2', '7']) {
        await page.keyboard.type(v);
        await page.keyboard.press('Tab');
      }
      assert(await page.evaluate(() => document.activeElement.id === 'check-by-hand'), 'Tab goes from the last box to Check');
      await page.keyboard.press('Enter');
      assert(await page.$eval('#fb-by-hand', (e) => e.classList.contains('good')), 'Enter checks the answer');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      assert(await page.$eval('#hint-by-hand', (d) => d.open), 'Enter opens the hint');
      const focusVisible = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== 'none');
      assert(focusVisible, 'the focused control shows an outline');
      await ctx.screenshot(page, 'learn-keyboard');
    },
  },
  {
    name: 'a 390x844 phone screen: no sideways scrolling, exercises usable',
    async run(ctx) {
      const { assert } = ctx;
      const context = await ctx.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      try {
        const page = await context.newPage();
        await openLesson(ctx, page);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert(overflow <= 1, `the page is ${overflow}px wider than the screen`);
        await page.fill('#ex-trace-det-0', '2');
        await page.fill('#ex-trace-det-1', '1');
        await page.tap('#check-trace-det');
        assert(await page.$eval('#fb-trace-det', (e) => e.classList.contains('good')), 'an exercise works by touch');
        await page.screenshot({ path: `${ctx.root}/tests/e2e/screenshots/learn-phone.png` });
        await page.locator('#step-eigenbasis').screenshot({ path: `${ctx.root}/tests/e2e/screenshots/learn-phone-step5.png` });
      } finally {
        await context.close();
      }
    },
  },
];
