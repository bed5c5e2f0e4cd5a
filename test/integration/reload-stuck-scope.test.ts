/**
 * SIGHUP and stuck causes: an mqtt route a reload adds (its broker down) is its own stuck cause,
 * named by its own index. Its broker cause must not be filed under another route's scope, where
 * that route's next delivery says "(cleared)" while the broker is still down.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { freePort } from '../helpers/free-port.js';
import { makeRig, sleep, waitFor } from '../helpers/ferry.js';

interface Line { msg?: string; code?: string; route?: number; match?: string }

function jsonLines(output: string): Line[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
}

t.test('reload - a new mqtt route whose broker is down is stuck under its own index, and another route does not clear it', async (t) => {
  const brokerPort = await freePort();
  const rig = await makeRig({ agentId: 'reload-stuck', serial: false, routes: '  - match: "a/#"\n    handler: file\n    path: {received}\n' });
  t.teardown(() => rig.cleanup());
  const config = join(rig.dir, 'gateway.yaml');
  const original = await readFile(config, 'utf8');
  const gw = await rig.start('gateway');
  await rig.start('agent');

  // a/# stays (reused); b/# is added at index 1, to a port where no broker listens.
  const withB = original.replace(/(  - match: "a\/#"\n    handler: file\n    path: .*\n)/, `$1  - match: "b/#"\n    handler: mqtt\n    url: mqtt://127.0.0.1:${brokerPort}\n    topic: "ferry/{agent}/{target}"\n`);
  t.not(withB, original, 'the test rewrote the config');
  await writeFile(config, withB);
  gw.kill('SIGHUP');
  await waitFor('the gateway to log the reload', async () => (/gateway: reloaded/.test(gw.output()) ? true : undefined));
  const down = await waitFor('the broker cause', async () => jsonLines(gw.output()).find((l) => l.msg === 'mqtt handler: cannot connect to the broker'));
  t.equal(down.match, 'b/#', 'the cause names the new route');
  t.equal(down.route, 1, 'and its index in the config now in force (1), not its place among the routes the reload opened');

  // Route 0 delivers: that says nothing about route 1's broker, which is still down.
  const r = await localRequest(rig.socket, { op: 'send', target: 'a/x', data: { i: 0 } }, 5000);
  t.ok(r.ok, 'a/x stored');
  await waitFor('a/x delivered', async () => ((await readFile(join(rig.dir, 'received.jsonl'), 'utf8').catch(() => '')).includes('"a/x"') ? true : undefined));
  await sleep(500);
  const cleared = jsonLines(gw.output()).filter((l) => l.msg === 'mqtt handler: cannot connect to the broker (cleared)');
  t.same(cleared, [], 'the broker cause is not said to be cleared while the broker is down');
});
