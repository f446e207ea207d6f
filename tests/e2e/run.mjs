// Browser end-to-end tests: the REAL server serving the optimised wasm, driven by Debian Chromium through
// playwright-core. Run from the repo root after scripts/build-web.sh:   node tests/e2e/run.mjs [filter]
//
// What it does: builds target/release/more-server if missing (cargo build --release -p more-server), starts
// it on a free 127.0.0.1 port with `--models models --web . --samples ../shared/data/angio/samples
// --jobs-dir <a fresh temporary directory>` (and `--training-data ../shared/data` when it holds mnist/), waits
// for /api/v1/health, launches Chromium (headless), runs every tests/e2e/*.test.mjs (sorted by name;
// an optional command-line filter keeps files whose name contains it), prints "N passed, M failed"
// (and skipped), stops the server and exits 1 on any failure.
//
// ---- Contract for test files (tests/e2e/<name>.test.mjs) ----
// A test file's default export is either
//   - an async function `(ctx) => {...}` (one test named after the file), or
//   - an array of `{ name: string, run: async (ctx) => {...} }` (several tests, run in order).
// A test passes if it returns, fails if it throws. `ctx` gives:
//   ctx.baseUrl            e.g. "http://127.0.0.1:41234/" (the server's root: index.html)
//   ctx.browser            the playwright-core Browser
//   await ctx.newPage()    a fresh context + page (1280x900); page errors and console errors are collected in
//                          page.errors (array of strings); closed automatically after the test
//   await ctx.screenshot(page, name)   full-page PNG to tests/e2e/screenshots/<name>.png (git-ignored)
//   ctx.assert(cond, msg)  throws Error(msg) if !cond
//   ctx.skip(reason)       throws a skip: the test is reported as skipped with the reason (not a failure)
//   ctx.log(...args)       prints indented under the test
//   ctx.figure(key, value) records a measured figure; all figures are printed at the end and written to
//                          tests/e2e/screenshots/figures.json
//   ctx.root, ctx.dataDir  repo root and ../shared/data (absolute paths)
//   await ctx.models()     GET /api/v1/models as parsed JSON (array of models)
//   ctx.teacherToken       the server's teacher token (for the class-challenge routes)
// Each test has a 180 s limit. Environment: CHROMIUM (browser path, default /usr/bin/chromium),
// MORE_SERVER (server binary, default $CARGO_TARGET_DIR/release/more-server, or target/release/more-server),
// E2E_HEADED=1 to watch.

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const dataDir = path.resolve(root, '../shared/data');
const shotDir = path.join(here, 'screenshots');
const require = createRequire(path.join(root, 'tools/package.json'));
const { chromium } = require('playwright-core');

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
const TEST_TIMEOUT_MS = 180_000;
// The teacher token the test server runs with (a fresh one per run).
const TEACHER_TOKEN = `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

class Skip extends Error {}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer() {
  const target = path.resolve(root, process.env.CARGO_TARGET_DIR || 'target');
  const bin = process.env.MORE_SERVER || path.join(target, 'release/more-server');
  if (!process.env.MORE_SERVER) {
    // Always let cargo decide (fast when up to date), so a stale binary is never tested.
    console.log('building the server: cargo build --release -p more-server');
    const r = spawnSync('cargo', ['build', '--release', '-p', 'more-server'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('cargo build --release -p more-server failed');
  }
  if (!fs.existsSync(path.join(root, 'web/pkg/more_wasm_bg.wasm'))) {
    throw new Error('web/pkg is missing: run scripts/build-web.sh first');
  }
  const port = await freePort();
  const jobsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-e2e-jobs-'));
  const args = ['--addr', `127.0.0.1:${port}`, '--models', 'models', '--web', '.', '--samples', path.join(dataDir, 'angio/samples'),
    '--jobs-dir', jobsDir];
  // The training page's sample digits, when the data directory has MNIST (the digit tests skip otherwise).
  if (fs.existsSync(path.join(dataDir, 'mnist'))) args.push('--training-data', dataDir);
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', MORE_TEACHER_TOKEN: TEACHER_TOKEN };
  const proc = spawn(bin, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  const log = [];
  const keep = (d) => { log.push(d.toString()); if (log.length > 2000) log.shift(); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, sig) => { exited = `exited (code ${code}, signal ${sig})`; });
  const baseUrl = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`the server ${exited}:\n${log.join('')}`);
    try {
      const res = await fetch(`${baseUrl}api/v1/health`);
      if (res.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`the server did not answer /api/v1/health within 30 s:\n${log.join('')}`);
    await sleep(100);
  }
  return { proc, baseUrl, log, jobsDir, exited: () => exited };
}

async function main() {
  const filter = process.argv[2] || '';
  const files = fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs') && f.includes(filter)).sort();
  fs.mkdirSync(shotDir, { recursive: true });
  const server = await startServer();
  console.log(`server: ${server.baseUrl} (pid ${server.proc.pid})`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: !process.env.E2E_HEADED,
    args: process.env.E2E_HEADED ? CHROMIUM_FLAGS.slice(1) : CHROMIUM_FLAGS,
  });
  const figures = {};
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    for (const file of files) {
      const mod = await import(path.join(here, file));
      const name = file.replace(/\.test\.mjs$/, '');
      const tests = typeof mod.default === 'function' ? [{ name, run: mod.default }]
        : Array.isArray(mod.default) ? mod.default.map((t) => ({ ...t, name: `${name}: ${t.name}` })) : null;
      if (!tests) {
        console.log(`FAIL ${file}: default export is neither a function nor an array of { name, run }`);
        failed++;
        continue;
      }
      for (const t of tests) {
        const pages = [];
        const ctx = {
          baseUrl: server.baseUrl,
          browser,
          root,
          dataDir,
          teacherToken: TEACHER_TOKEN,
          async newPage() {
            const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
            const page = await context.newPage();
            page.errors = [];
            page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
            page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
            pages.push(context);
            return page;
          },
          async screenshot(page, shot) {
            const file = path.join(shotDir, `${shot}.png`);
            await page.screenshot({ path: file, fullPage: true });
            console.log(`    screenshot ${path.relative(root, file)}`);
          },
          assert(cond, msg) { if (!cond) throw new Error(msg); },
          skip(reason) { throw new Skip(reason); },
          log: (...a) => console.log('   ', ...a),
          figure(key, value) { figures[key] = value; console.log(`    figure ${key} = ${typeof value === 'number' && !Number.isInteger(value) ? +value.toPrecision(4) : JSON.stringify(value)}`); },
          async models() {
            const body = await (await fetch(`${server.baseUrl}api/v1/models`)).json();
            return Array.isArray(body) ? body : body.models || [];
          },
        };
        const t0 = Date.now();
        try {
          let timer;
          await Promise.race([
            t.run(ctx),
            new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${TEST_TIMEOUT_MS / 1000} s`)), TEST_TIMEOUT_MS); }),
          ]).finally(() => clearTimeout(timer));
          passed++;
          console.log(`ok   ${t.name} (${Date.now() - t0} ms)`);
        } catch (e) {
          if (e instanceof Skip) {
            skipped++;
            console.log(`skip ${t.name}: ${e.message}`);
          } else {
            failed++;
            console.log(`FAIL ${t.name} (${Date.now() - t0} ms): ${e && e.stack ? e.stack : e}`);
          }
        } finally {
          for (const c of pages) await c.close().catch(() => {});
        }
        if (server.exited()) {
          failed++;
          console.log(`FAIL the server ${server.exited()} during ${t.name}:\n${server.log.join('')}`);
          break;
        }
      }
    }
  } finally {
    await browser.close().catch(() => {});
    server.proc.kill('SIGTERM');
    await new Promise((r) => { if (server.exited()) r(); else server.proc.once('exit', r); setTimeout(r, 5000); });
    fs.rmSync(server.jobsDir, { recursive: true, force: true });
  }
  if (Object.keys(figures).length) {
    fs.writeFileSync(path.join(shotDir, 'figures.json'), JSON.stringify(figures, null, 2) + '\n');
    console.log('figures:', JSON.stringify(figures));
  }
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  if (failed && !process.env.CI_QUIET) console.log(`server log (last lines):\n${server.log.slice(-40).join('')}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`e2e harness error: ${e && e.stack ? e.stack : e}`);
  console.log('\n0 passed, 1 failed');
  process.exit(1);
});
