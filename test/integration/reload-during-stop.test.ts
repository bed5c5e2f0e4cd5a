/**
 * A SIGHUP whose new handlers are still being made when SIGTERM comes: the stop waits for that
 * reload, and the handlers it made are closed, not left open (they would keep the process up
 * until the force timer, and a real backend's connection open).
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRig } from '../helpers/ferry.js';

t.test('reload - handlers a reload makes while the gateway stops are closed', async (t) => {
  const rig = await makeRig({ agentId: 'reload-stop', serial: false });
  t.teardown(() => rig.cleanup());
  const closedMark = join(rig.dir, 'closed.txt');
  const openedMark = join(rig.dir, 'opened.txt');
  const mod = join(rig.dir, 'slow.mjs');
  // Made slowly (1.5 s); holds a timer that keeps the process up until close().
  await writeFile(mod, `import { writeFileSync, appendFileSync } from 'node:fs';
export default async function createHandler() {
  await new Promise((r) => setTimeout(r, 1500));
  writeFileSync(${JSON.stringify(openedMark)}, 'x');
  const timer = setInterval(() => {}, 1000);
  return { kind: 'slow', async handle() { return { ok: true }; }, async close() { clearInterval(timer); appendFileSync(${JSON.stringify(closedMark)}, 'closed\\n'); } };
}
`);
  const config = join(rig.dir, 'gateway.yaml');
  const yaml = (await readFile(config, 'utf8')).replace('routes:\n', `routes:\n  - match: "slow/#"\n    handler: module\n    module: ${mod}\n`);
  const gw = await rig.start('gateway');
  await writeFile(config, yaml);
  gw.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  gw.kill('SIGTERM');
  const { code } = await gw.exited;
  const tookMs = Date.now() - t0;
  t.equal(code, 0, 'exit 0');
  t.equal(await readFile(openedMark, 'utf8').catch(() => ''), 'x', 'the reload made its handler');
  t.equal(await readFile(closedMark, 'utf8').catch(() => ''), 'closed\n', 'the handler the reload made was closed by the stop');
  t.ok(tookMs < 10_000, `the stop did not wait for the force timer (${tookMs} ms)`);
  t.notMatch(gw.output(), /exiting now with what is durable/, 'no forced exit');
});
