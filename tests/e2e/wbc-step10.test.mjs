// The walkthrough's step 10 on a patient: the WBC page stores its last patient in the tab's session, step 10
// predicts it under BFV and runs the known-value attack (heart rate known) on MORE's ciphertexts of the same
// patient, which reads every parameter, and on the BFV ciphertexts, which gives noise.

export default async function walkthroughStep10OnPatient(ctx) {
  const models = await ctx.models();
  if (!models.some((m) => m.scheme === 'bfv' && m.task === 'wbc')) ctx.skip('the server lists no BFV WBC model');
  const page = await ctx.newPage();
  await page.goto(`${ctx.baseUrl}web/wbc.html`);
  await page.waitForFunction(() => document.body.dataset.wbcBfv === 'done' || document.body.dataset.wbcBfv === 'error',
    null, { timeout: 120_000 });
  const onWbc = await page.evaluate(() => ({
    stored: JSON.parse(sessionStorage.getItem('more.lastPatient') || 'null'),
  }));
  ctx.assert(onWbc.stored && onWbc.stored.values.length === 7, `stored patient: ${JSON.stringify(onWbc.stored)}`);
  await page.click('a[href="walkthrough.html#step-compare"]');
  await page.waitForFunction(() => window.walkthrough && window.walkthrough.ready);
  await page.evaluate(() => window.walkthrough.ready);
  ctx.assert(await page.locator('#bfv-run-patient').isVisible(), 'step 10 offers no patient');
  await page.click('#bfv-run-patient');
  await page.waitForFunction(() => window.bfvPatientStep || /BFV:|no WBC model/.test(document.getElementById('bfv-verdict').textContent),
    null, { timeout: 170_000 });
  const r = await page.evaluate(() => window.bfvPatientStep);
  ctx.assert(r, `no BFV result: ${await page.locator('#bfv-verdict').innerText()}`);
  ctx.log(`patient ${r.raw.map((v) => v.toPrecision(3)).join(', ')}`);
  ctx.log(`under BFV: ${r.labels.map((l, i) => `${l} ${r.outputs[i].toFixed(1)}`).join(', ')}`);
  ctx.log(`attack 3 (heart rate known): MORE largest error ${(100 * r.errMore).toExponential(1)}%, BFV ${r.bfvStopped ?? `${(100 * r.errBfv).toPrecision(3)}%`}`);
  ctx.assert(r.raw.length === 7 && r.raw.every((v) => onWbc.stored.values.includes(v)),
    `step 10 ran on ${r.raw}, the WBC page stored ${onWbc.stored.values}`);
  ctx.assert(r.errMore < 1e-3, `the attack reads MORE's patient with a largest error of ${r.errMore}`);
  ctx.assert(r.bfvStopped || r.errBfv > 0.1, `the attack on BFV comes within ${r.errBfv} of the patient`);
  const sys = r.labels.indexOf('systolic_pressure');
  ctx.assert(sys >= 0 && r.outputs[sys] > 60 && r.outputs[sys] < 250, `systolic under BFV: ${r.outputs[sys]}`);
  ctx.figure('walkthrough_patient_more_attack_error', r.errMore);
  await page.locator('#bfv-live').scrollIntoViewIfNeeded();
  await page.locator('#bfv-live').screenshot({ path: `${ctx.root}/tests/e2e/screenshots/walkthrough-step10-patient.png` });
  ctx.assert(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
}
