/**
 * SIGTERM with real processes: the gateway stops taking work, lets its handlers finish the
 * packets they hold and acks them, then exits 0; past shutdownTimeoutMs, or on a second signal,
 * it exits 0 anyway and nothing is lost. The agent stops sending, waits for its acks, keeps its
 * backlog on disk, and refuses sends meanwhile with AGENT_STOPPING.
 */
import t from 'tap';
import { localRequest } from '../../agent/local-api.js';
import { makeRig, sleep, waitFor, type Rig } from '../helpers/ferry.js';
import { startSlowHook, type SlowHook } from '../helpers/slow-hook.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const targets = ['a/1', 'a/2', 'a/3', 'a/4'];

/**
 * A gateway (webhook route to `hook`, answering after `delayMs`) and an agent, both running,
 * `perTarget` packets sent to each target, and at least `pendingMin` of them waiting at the hook.
 */
async function running(t: Test, o: { delayMs: number; gatewayYaml: string; perTarget: number; pendingMin: number }) {
  const hook = await startSlowHook(o.delayMs);
  t.teardown(() => hook.close());
  const rig = await makeRig({
    agentId: 'stopper', serial: false,
    routes: ['  - match: "#"', '    handler: webhook', `    url: ${hook.url}`, '    concurrency: 2', '    timeoutMs: 60000', ''].join('\n'),
    gatewayYaml: o.gatewayYaml,
  });
  t.teardown(() => rig.cleanup());
  const gw = await rig.start('gateway');
  await rig.start('agent');
  const sent = await sendAll(rig, o.perTarget);
  await waitFor('dispatches waiting at the webhook', async () => (hook.pending() >= o.pendingMin ? true : undefined));
  return { hook, rig, gw, sent };
}

/** Starts the gateway again with a quick webhook and waits until the agent's backlog is delivered. */
async function restartAndDeliver(rig: Rig, hook: SlowHook): Promise<void> {
  hook.delayMs = 10;
  await rig.start('gateway');
  await waitFor('the backlog delivered after the restart', async () => {
    const st = await rig.agentStats();
    return st && st.backlog === 0 && st.inflight === 0 ? true : undefined;
  }, 30_000);
}

/** Sends `perTarget` packets to each target, round-robin; returns their seqs. */
async function sendAll(rig: Rig, perTarget: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < perTarget; i++) {
    for (const target of targets) {
      const r = await localRequest(rig.socket, { op: 'send', target, data: { i } }, 5000);
      if (!r.ok) throw new Error(`send refused: ${r.code}`);
      seqs.push(r.seq as number);
    }
  }
  return seqs;
}

const dupes = (xs: number[]): number[] => xs.filter((x, i) => xs.indexOf(x) !== i);

t.test('shutdown - gateway SIGTERM finishes the dispatches in flight, acks them and exits 0; nothing is delivered twice', async (t) => {
  const { hook, rig, gw, sent } = await running(t, { delayMs: 1000, gatewayYaml: 'shutdownTimeoutMs: 8000\n', perTarget: 3, pendingMin: 2 });
  const arrivedAtSignal = hook.arrived.length;
  gw.kill('SIGTERM');
  const exit = await gw.exited;
  t.equal(exit.code, 0, 'the gateway exited 0');
  t.match(gw.output(), /gateway: drained/, 'it logged that it drained');
  t.equal(hook.pending(), 0, 'no request was left unanswered at the webhook');
  t.ok(hook.answered.length >= arrivedAtSignal, `every request in flight at SIGTERM was answered (${hook.answered.length} of ${arrivedAtSignal})`);
  const arrivedBeforeRestart = [...hook.arrived];
  const s = await waitFor('the agent to see the gateway gone', async () => {
    const st = await rig.agentStats();
    return st && st.link !== 'connected' ? st : undefined;
  });
  t.equal(s.acked, arrivedBeforeRestart.length, `every packet the handler received was acked to the agent (${s.acked} acked, ${arrivedBeforeRestart.length} received)`);
  t.ok(s.backlog > 0, `the rest is still in the agent's store (backlog ${s.backlog})`);

  await restartAndDeliver(rig, hook);
  t.same(dupes(hook.arrived), [], 'no packet reached the webhook twice');
  t.same([...hook.arrived].sort((a, b) => a - b), sent, 'every packet reached the webhook');
});

t.test('shutdown - past shutdownTimeoutMs the gateway exits 0 with a warning, and the packet is delivered after the restart', async (t) => {
  const { hook, rig, gw, sent } = await running(t, { delayMs: Infinity, gatewayYaml: 'shutdownTimeoutMs: 500\n', perTarget: 1, pendingMin: 1 });
  gw.kill('SIGTERM');
  const exit = await gw.exited;
  t.equal(exit.code, 0, 'the gateway exited 0');
  t.ok(gw.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; inHandlers?: number })
    .some((r) => /still in handlers after shutdownTimeoutMs/.test(r.msg ?? '') && (r.inHandlers ?? 0) >= 1), 'it warned what was left');
  await restartAndDeliver(rig, hook);
  t.same([...new Set(hook.answered)].sort((a, b) => a - b), sent, 'every packet was answered once it could be');
});

t.test('shutdown - a second SIGTERM stops the gateway at once, exit 0', async (t) => {
  const { gw } = await running(t, { delayMs: Infinity, gatewayYaml: 'shutdownTimeoutMs: 600000\n', perTarget: 1, pendingMin: 1 });
  gw.kill('SIGTERM');
  await sleep(300);
  t.equal(gw.child.exitCode, null, 'the first SIGTERM waits for the hanging dispatch');
  gw.kill('SIGTERM');
  const exit = await gw.exited;
  t.equal(exit.code, 0, 'the second SIGTERM exits 0');
  t.match(gw.output(), /a second signal while stopping/, 'it said why it did not wait');
});

t.test('shutdown - agent SIGTERM waits for the acks of what it sent, refuses new sends', async (t) => {
  const hook = await startSlowHook(700);
  t.teardown(() => hook.close());
  const rig = await makeRig({
    agentId: 'stopper', serial: false,
    routes: ['  - match: "#"', '    handler: webhook', `    url: ${hook.url}`, '    timeoutMs: 60000', ''].join('\n'),
    agentYaml: 'shutdownTimeoutMs: 20000\n',
  });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  let agent = await rig.start('agent');
  // One target, one at a time: the three packets are sent at once and acked over about 2 s.
  for (let i = 0; i < 3; i++) await localRequest(rig.socket, { op: 'send', target: 'a/1', data: { i } }, 5000);
  await waitFor('the first packet at the webhook', async () => (hook.arrived.length >= 1 ? true : undefined));
  agent.kill('SIGTERM');
  // A send that raced the signal is stored like any other: counted, not a failure.
  let lateStored = 0;
  await sleep(200);
  const refused = await waitFor('a send refused while stopping', async () => {
    const r = await localRequest(rig.socket, { op: 'send', target: 'a/1', data: { late: true } }, 2000).catch((err) => ({ ok: false, code: String(err) }));
    if (r.ok) lateStored++;
    return r.ok ? undefined : r;
  });
  t.equal(refused.code, 'AGENT_STOPPING', 'a send during the drain is refused with AGENT_STOPPING');
  const exit = await agent.exited;
  t.equal(exit.code, 0, 'the agent exited 0');
  const m = agent.output().match(/ferry agent stopped; lastSeq (\d+) ackedSeq (\d+) backlog (\d+)/);
  t.ok(m, 'it printed its final counters');
  t.equal(Number(m?.[1]), 3 + lateStored, 'nothing was stored once the agent was stopping');
  t.ok(Number(m?.[2]) >= 3, `it waited until the gateway acked the three sent before the signal (ackedSeq ${m?.[2]})`);
  t.equal(hook.answered.length, Number(m?.[2]), 'the webhook answered each acked packet');

});

t.test('shutdown - agent SIGTERM with no gateway exits 0 and keeps its backlog on disk', async (t) => {
  const rig = await makeRig({ agentId: 'offline', serial: false });
  t.teardown(() => rig.cleanup());
  // No gateway runs on the rig's port: the agent keeps dialing.
  let agent = await rig.start('agent');
  for (let i = 0; i < 5; i++) await localRequest(rig.socket, { op: 'send', target: 'a/1', data: { i } }, 5000);
  agent.kill('SIGTERM');
  const exit = await agent.exited;
  t.equal(exit.code, 0, 'the agent exited 0');
  t.match(agent.output(), /ferry agent stopped; lastSeq 5 ackedSeq 0 backlog 5/, 'it stopped with its five packets unacked');
  agent = await rig.start('agent');
  const s = await rig.agentStats();
  t.equal(s?.backlog, 5, 'the five packets were still in the store after the restart');
  t.equal(s?.lastSeq, 5, 'and no seq was lost or reused');
});
