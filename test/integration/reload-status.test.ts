/**
 * SIGHUP and the admin view: after a reload the status (and the page, and `ferry status`) shows
 * the routes now in force, counts their dispatches, and no longer shows a removed route.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { adminUrlOf, getStatus } from '../helpers/admin.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

t.test('reload - the status shows the routes a SIGHUP put in force, with their dispatches', async (t) => {
  const rig = await makeRig({ agentId: 'reload-status', serial: false, routes: '  - match: "a/#"\n    handler: file\n    path: {received}\n' });
  t.teardown(() => rig.cleanup());
  const config = join(rig.dir, 'gateway.yaml');
  const original = await readFile(config, 'utf8');
  const gw = await rig.start('gateway');
  const url = await adminUrlOf(gw);
  await rig.start('agent');
  const before = (await getStatus(url)).routes.map((r) => r.route);
  t.ok(before.includes('a/#'), 'the configured route is shown');

  // a/# is replaced by b/# (another file).
  const fileB = join(rig.dir, 'received-b.jsonl');
  const withB = original.replace(/  - match: "a\/#"\n    handler: file\n    path: .*\n/, `  - match: "b/#"\n    handler: file\n    path: ${fileB}\n`);
  t.not(withB, original, 'the test rewrote the config');
  await writeFile(config, withB);
  gw.kill('SIGHUP');
  await waitFor('the gateway to log the reload', async () => (/gateway: reloaded/.test(gw.output()) ? true : undefined));
  for (let i = 0; i < 5; i++) {
    const r = await localRequest(rig.socket, { op: 'send', target: 'b/x', data: { i } }, 5000);
    t.ok(r.ok, `send ${i}`);
  }
  await waitFor('the b/x packets in the new file', async () => {
    const lines = (await readFile(fileB, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
    return lines.length >= 5 ? true : undefined;
  });
  // The verdict reaches the status just after the line reaches the file: look until it is counted (or 5 s).
  const s = await waitFor('the status to count them', async () => {
    const st = await getStatus(url);
    return st.routes.find((r) => r.route === 'b/#')?.dispatched === 5 ? st : undefined;
  }, 5000).catch(() => getStatus(url));
  const b = s.routes.find((r) => r.route === 'b/#');
  t.ok(b, 'the new route is shown');
  t.equal(b?.dispatched, 5, 'its dispatches are counted');
  t.equal(b?.health.state, 'ok', 'its health is known');
  t.notOk(s.routes.some((r) => r.route === 'a/#'), 'the removed route is no longer shown');
  const h = (await (await fetch(`${url}/history`)).json()) as { buckets: { dispatched: number }[] };
  t.equal(h.buckets.reduce((n, x) => n + x.dispatched, 0), 5, 'the history chart counts the new route\'s dispatches');
});
