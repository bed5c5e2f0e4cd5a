/**
 * Downlink across crashes, real processes killed for real (SIGKILL):
 * - the gateway dies between queueing and delivery: after its restart each message reaches the
 *   consumer once, in order;
 * - the gateway dies between delivery and DOWN_ACK (the consumer took the message, the agent's
 *   answer went to a dead session): after the restart the gateway sends it again, the agent answers
 *   from its record, and the consumer does not see it a second time;
 * - the agent is offline: messages queue, and when it comes back they are delivered in order, and
 *   one whose ttl ran out meanwhile is not delivered (state expired).
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FerryProcess } from '../../cli/proc.js';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { addApp, gatewayDataDir, messageState, postMessage, waitState } from '../helpers/downlink-api.js';
import { subscribe } from '../helpers/local-subscriber.js';

const kill = async (p: FerryProcess): Promise<void> => {
  p.kill('SIGKILL');
  await p.exited;
};

const localRoute = 'downlink:\n  routes:\n    - { match: "app/#", to: local, timeoutMs: 60000 }\n';

t.test('downlink crash - gateway SIGKILLed between queueing and delivery: each message once, in order', async (t) => {
  const rig = await makeRig({ agentId: 'dl-q', serial: false, api: true, agentYaml: localRoute });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'ops');
  const api = rig.apiPort!;
  let gateway = await rig.start('gateway');
  // No agent yet: the messages can only be queued.
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await postMessage(api, token, 'dl-q', { target: `app/m${i}`, data: { i } }));
  for (const id of ids) t.equal((await messageState(api, token, 'dl-q', id)).state, 'queued', `${id} queued`);
  await kill(gateway);
  // The agent and its consumer are up before the gateway comes back, so delivery finds the consumer there.
  await rig.start('agent');
  const sub = await subscribe(rig.socket, 'app/#');
  t.teardown(() => sub.close());
  gateway = await rig.start('gateway');
  for (const id of ids) t.equal((await waitState(api, token, 'dl-q', id, ['acked', 'rejected'])).state, 'acked', `${id} acked after the restart`);
  t.same(sub.received.map((m) => m.id), ids, 'the consumer got each message once, in the order posted');
  t.same(sub.received.map((m) => m.data), [0, 1, 2, 3, 4].map((i) => ({ i })), 'with its data');
});

t.test('downlink crash - gateway SIGKILLed between delivery and DOWN_ACK: the consumer sees the message once', async (t) => {
  const rig = await makeRig({ agentId: 'dl-d', serial: false, api: true, agentYaml: localRoute });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'ops');
  const api = rig.apiPort!;
  let gateway = await rig.start('gateway');
  await rig.start('agent');
  const sub = await subscribe(rig.socket, 'app/#', { hold: true });
  t.teardown(() => sub.close());
  const id = await postMessage(api, token, 'dl-d', { target: 'app/held', data: 'first' });
  await waitFor('the consumer holds the message', async () => (sub.received.length === 1 ? true : undefined));
  t.equal((await messageState(api, token, 'dl-d', id)).state, 'delivered', 'delivered, not answered yet');
  await kill(gateway);
  // The consumer takes it now: the agent records its verdict; the DOWN_ACK has no live session to go to.
  sub.ack(id);
  await waitFor('the agent to notice the gateway is gone', async () => ((await rig.agentStats())?.link !== 'connected' ? true : undefined));
  gateway = await rig.start('gateway');
  const after = await waitState(api, token, 'dl-d', id, ['acked', 'rejected']);
  t.equal(after.state, 'acked', 'after the restart the message is acked (the agent answered the repeat from its record)');
  const next = await postMessage(api, token, 'dl-d', { target: 'app/next', data: 'second' });
  await waitFor('the next message reaches the consumer', async () => (sub.received.some((m) => m.id === next) ? true : undefined));
  sub.ack(next);
  await waitState(api, token, 'dl-d', next, ['acked']);
  t.same(sub.received.map((m) => m.id), [id, next], 'the consumer saw the first message once, then the next');
  const stats = (await rig.agentStats()) as unknown as { downlink?: { repeats?: number } } | null;
  t.ok((stats?.downlink?.repeats ?? 0) >= 1, `the agent answered a repeat from its record (repeats ${stats?.downlink?.repeats})`);
});

t.test('downlink crash - agent offline: messages queue, then arrive in order; an expired one never does', async (t) => {
  const outDir = await mkdtemp(join(tmpdir(), 'ferry-dl-out-'));
  t.teardown(() => rm(outDir, { recursive: true, force: true }));
  const outFile = join(outDir, 'out.txt');
  const rig = await makeRig({
    agentId: 'dl-off', serial: false, api: true,
    agentYaml: `downlink:\n  routes:\n    - { match: "cmd/#", to: exec, command: [sh, -c, 'cat >> "$0"; echo >> "$0"', ${JSON.stringify(outFile)}] }\n`,
  });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'ops');
  const api = rig.apiPort!;
  await rig.start('gateway');
  let agent = await rig.start('agent');
  const first = await postMessage(api, token, 'dl-off', { target: 'cmd/a', data: 'online' });
  await waitState(api, token, 'dl-off', first, ['acked']);
  await kill(agent);
  const ids = [
    await postMessage(api, token, 'dl-off', { target: 'cmd/a', data: 'm1' }),
    await postMessage(api, token, 'dl-off', { target: 'cmd/b', data: 'm2' }),
    await postMessage(api, token, 'dl-off', { target: 'cmd/a', data: 'm3-expires', ttl: 0.5 }),
    await postMessage(api, token, 'dl-off', { target: 'cmd/b', data: 'm4', ttl: 600 }),
    await postMessage(api, token, 'dl-off', { target: 'cmd/a', data: 'm5' }),
  ];
  for (const id of ids) t.equal((await messageState(api, token, 'dl-off', id)).state, 'queued', 'queued while the agent is down');
  await new Promise((r) => setTimeout(r, 800));
  agent = await rig.start('agent');
  for (const [i, id] of ids.entries()) {
    const m = await waitState(api, token, 'dl-off', id, ['acked', 'rejected', 'expired']);
    t.equal(m.state, i === 2 ? 'expired' : 'acked', `message ${i + 1}: ${m.state}${m.code ? ` (${m.code})` : ''}`);
  }
  const written = (await readFile(outFile, 'utf8')).split('\n').filter((l) => l !== '');
  t.same(written, ['online', 'm1', 'm2', 'm4', 'm5'], 'the command got the queued messages in order, without the expired one');
});
