import t from 'tap';
import { execFile } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ferryBin, stopProcess } from '../../cli/proc.js';
import { localRequest } from '../../agent/local-api.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

function ferry(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return new Promise((resolve) =>
    execFile(process.execPath, [ferryBin, ...args], { env }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })));
}

t.test('store - a full store with fullPolicy reject makes ferry send fail with STORE_FULL, nothing stored is lost', async (t) => {
  const rig = await makeRig({ agentId: 'full-1', serial: false });
  t.teardown(() => rig.cleanup());
  await appendFile(join(rig.dir, 'agent.yaml'), 'store: { bytesMax: 65536, segmentBytes: 4096, fullPolicy: reject }\n');
  const agent = await rig.start('agent'); // no gateway: nothing is ever acked
  // Fill it through the local API (fast), until it refuses.
  const seqs: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = await localRequest(rig.socket, { op: 'send', target: 'fill/x', data: { i, pad: 'x'.repeat(900) } });
    if (!r.ok) {
      t.equal(r.code, 'STORE_FULL', 'the local API refuses with STORE_FULL');
      break;
    }
    seqs.push(r.seq!);
  }
  t.ok(seqs.length > 20, `${seqs.length} packets stored before the store was full`);
  const refusal = await ferry(['send', '--socket', rig.socket, '--target', 'fill/x', '--data', JSON.stringify({ i: -1, pad: 'x'.repeat(900) })]);
  t.not(refusal.code, 0, 'ferry send exited non-zero');
  t.match(refusal.stderr, /STORE_FULL/, 'naming STORE_FULL');
  const stats = await waitFor('stats', () => rig.agentStats().then((s) => s ?? undefined));
  t.equal(stats.backlog, seqs.length, 'every stored packet is still there');
  t.equal(stats.store.rejected, 2, 'both refusals counted');
  await stopProcess(agent);
});

t.test('store - dead letters can be listed and requeued with ferry agent, also while the agent is stopped', async (t) => {
  const rig = await makeRig({ agentId: 'dl-1', serial: false, routes: undefined });
  t.teardown(() => rig.cleanup());
  // Only good/# has a route: bad/x is rejected by the gateway and becomes a dead letter.
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(rig.dir, 'gateway.yaml'), `listen:\n  tcp: 127.0.0.1:${rig.port}\n  admin: 127.0.0.1:0\ndataDir: ${join(rig.dir, 'gw')}\nroutes:\n  - match: "good/#"\n    handler: file\n    path: ${rig.received}\n`);
  await rig.start('gateway');
  let agent = await rig.start('agent');
  const bad = await ferry(['send', '--socket', rig.socket, '--target', 'bad/x', '--data', '{"v":1}']);
  const good = await ferry(['send', '--socket', rig.socket, '--target', 'good/y', '--data', '{"v":2}']);
  t.equal(bad.code + good.code, 0, 'both stored');
  await waitFor('the dead letter', () => rig.agentStats().then((s) => (s && s.deadLetters === 1 && s.backlog === 0 ? true : undefined)));
  const listed = await ferry(['agent', '--config', join(rig.dir, 'agent.yaml'), '--dead-letters']);
  t.match(JSON.parse(listed.stdout.trim()), { seq: Number(bad.stdout), target: 'bad/x', code: 'UNKNOWN_TARGET', data: { v: 1 } }, 'listed through the running agent');
  await stopProcess(agent);

  const offline = await ferry(['agent', '--config', join(rig.dir, 'agent.yaml'), '--dead-letters']);
  t.equal(offline.stdout, listed.stdout, 'the same list from the store itself while the agent is stopped');
  const requeued = await ferry(['agent', '--config', join(rig.dir, 'agent.yaml'), '--requeue-dead-letters']);
  t.match(requeued.stdout, /requeued 1 dead letters/);
  t.equal((await ferry(['agent', '--config', join(rig.dir, 'agent.yaml'), '--dead-letters'])).stdout, '', 'the area is empty after a requeue');

  agent = await rig.start('agent');
  // Still no route, so it comes back as a dead letter, now under a new seq.
  await waitFor('the requeued packet rejected again', () => rig.agentStats().then((s) => (s && s.deadLetters === 1 && s.backlog === 0 ? true : undefined)));
  const again = JSON.parse((await ferry(['agent', '--config', join(rig.dir, 'agent.yaml'), '--dead-letters'])).stdout.trim()) as { seq: number; target: string };
  t.equal(again.target, 'bad/x');
  t.ok(again.seq > Number(good.stdout), 'requeued under a new, higher seq');
  const lines = await rig.lines();
  t.same(lines.map((l) => l.target), ['good/y'], 'the routed packet was delivered once');
});
