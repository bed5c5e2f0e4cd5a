/**
 * `npm run screenshot:status`: docs/img/status-page.png, the status page of a real gateway with two
 * simulated agents streaming, taken with Debian's chromium through playwright-core.
 */
import { chromium } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { makeRig, sleep, waitFor } from '../test/helpers/ferry.js';
import { adminUrlOf, getStatus, secondAgent } from '../test/helpers/admin.js';

const out = fileURLToPath(new URL('../../docs/img/status-page.png', import.meta.url));
const rig = await makeRig({ agentId: 'greenhouse-1', rateHz: 50 });
const other = await secondAgent(rig, 'greenhouse-2');
try {
  const gw = await rig.start('gateway');
  const url = await adminUrlOf(gw);
  await Promise.all([rig.start('sim'), other.start('sim')]);
  await Promise.all([rig.start('agent'), other.start('agent')]);
  await waitFor('both agents streaming', async () => ((await getStatus(url)).agents.filter((a) => a.packetsPerSecond > 0).length === 2 ? true : undefined));
  await sleep(25_000); // a few 10 s buckets in the charts
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
    await page.goto(url);
    await page.waitForSelector('#chart-rate polyline');
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await browser.close();
  }
} finally {
  await Promise.all([rig.cleanup(), other.cleanup()]);
}
