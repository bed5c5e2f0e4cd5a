import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { adminUrlOf, getStatus, secondAgent } from '../helpers/admin.js';

/** Debian's chromium (scripts/bootstrap.sh test installs it). */
const executablePath = '/usr/bin/chromium';

t.test('status page - two streaming agents, live charts with JS, tables without, a killed agent shown disconnected', async (t) => {
  const rig = await makeRig({ agentId: 'page-a', rateHz: 50 });
  t.teardown(() => rig.cleanup());
  const other = await secondAgent(rig, 'page-b');
  t.teardown(() => other.cleanup());
  const gw = await rig.start('gateway');
  const url = await adminUrlOf(gw);
  await Promise.all([rig.start('sim'), other.start('sim')]);
  await rig.start('agent');
  const b = await other.start('agent');
  await waitFor('both agents streaming', async () => {
    const s = await getStatus(url);
    return s.agents.filter((a) => a.state === 'connected' && a.packetsPerSecond > 0).length === 2 ? true : undefined;
  });

  const browser: Browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());

  // JavaScript on: the tables as served, and the charts drawn by the inline script.
  const page = await browser.newPage();
  const offsite: string[] = [];
  page.on('request', (r) => void (!r.url().startsWith(url) && offsite.push(r.url())));
  await page.goto(url);
  for (const id of ['page-a', 'page-b']) {
    const row = page.locator(`#agents tr[data-agent="${id}"]`);
    t.equal(await row.getAttribute('data-state'), 'connected', `${id} shown connected`);
    t.equal(await row.locator('td').nth(2).textContent(), 'tcp', `${id} shown with its transport`);
    t.ok(Number(await row.locator('.rate').textContent()) > 0, `${id} shown with a non-zero rate`);
  }
  await page.waitForSelector('#chart-rate polyline', { timeout: 10_000 });
  t.equal(await page.locator('#chart-rate').getAttribute('data-drawn'), '360', 'the rate chart was drawn from an hour of buckets');
  t.ok(await page.locator('#chart-failures polyline').count(), 'the failures chart was drawn');
  t.ok(await page.locator('#charts').isVisible(), 'the charts are shown with JavaScript on');

  // JavaScript off: the tables are still there, the charts are not.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  t.teardown(() => plain.close());
  const still = await plain.newPage();
  await still.goto(url);
  t.equal(await still.locator('#agents tr[data-state="connected"]').count(), 2, 'both agents in the table without JavaScript');
  t.equal(await still.locator('#routes tr[data-route="#"]').count(), 1, 'the routes table without JavaScript');
  t.equal(await still.locator('#queues').count(), 1, 'the downlink table without JavaScript');
  t.equal(await still.locator('#chart-rate polyline').count(), 0, 'no chart without JavaScript');

  // One agent killed: the open page updates itself (no reload) and shows it disconnected.
  b.kill('SIGKILL');
  await page.waitForSelector('#agents tr[data-agent="page-b"][data-state="disconnected"]', { timeout: 60_000 });
  t.equal(await page.locator('#agents tr[data-agent="page-a"]').getAttribute('data-state'), 'connected', 'the other agent is still connected');
  t.same(offsite, [], 'the page fetched nothing from anywhere else');
});
