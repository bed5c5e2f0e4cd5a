/**
 * Review of issue 10, case 2 (the trust rule): can an honest gateway strand an honest agent? An
 * operator restores the device's store directory from a backup (an SD-card image, a copied
 * directory) taken before the last packets went out. The store is not fresh (it has segments), its
 * lastSeq is below what the honest gateway recorded as dispatched, so every WELCOME is a
 * "violation": the agent never delivers again, not even packets stored after the restore.
 * Expected: packets stored after the restore are delivered (e.g. renumbered above the gateway's
 * seqs, like a wiped store), each once; what the backup held that was already delivered is not
 * delivered twice. With 3 packets after the restore (seqs 6-8, gateway at 10) the agent is refused
 * forever; with 8 (seqs 6-13) the WELCOME is "within what it issued" and seqs 6-10, new packets
 * the gateway never saw, are deleted as dispatched: silent loss.
 */
import t from 'tap';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { stopProcess } from '../../cli/proc.js';
import { makeRig, sleep, waitFor } from '../helpers/ferry.js';

const send = async (socket: string, phase: number, n: number): Promise<number> => {
  const r = await localRequest(socket, { op: 'send', target: 'restore', data: { phase, n } }, 5000);
  if (!r.ok) throw new Error(`send refused: ${JSON.stringify(r)}`);
  return r.seq as number;
};

for (const after of [3, 8]) {
t.test(`review store restore - an agent whose store came back from a backup delivers the ${after} packets it stores afterwards`, async (t) => {
  const rig = await makeRig({ agentId: 'restored', serial: false });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  let agent = await rig.start('agent');
  for (let n = 0; n < 5; n++) await send(rig.socket, 1, n);
  await waitFor('phase 1 delivered', async () => ((await rig.lines()).length >= 5 ? true : undefined));
  await waitFor('phase 1 acked', async () => ((await rig.agentStats())?.backlog === 0 ? true : undefined));
  await stopProcess(agent);
  const store = join(rig.dir, 'agent', 'store');
  const backup = join(rig.dir, 'store-backup');
  await cp(store, backup, { recursive: true });

  agent = await rig.start('agent');
  for (let n = 0; n < 5; n++) await send(rig.socket, 2, n);
  await waitFor('phase 2 delivered', async () => ((await rig.lines()).length >= 10 ? true : undefined));
  await stopProcess(agent);

  // The operator restores the backup (same device, same ID, same token).
  await rm(store, { recursive: true, force: true });
  await cp(backup, store, { recursive: true });
  agent = await rig.start('agent');
  for (let n = 0; n < after; n++) await send(rig.socket, 3, n);
  const ok = await waitFor('phase 3 delivered', async () => ((await rig.lines()).length >= 10 + after ? true : undefined), 10_000).catch(() => false);
  await sleep(200);
  const lines = await rig.lines();
  const violations = (agent.output().match(/GATEWAY_PROTOCOL_VIOLATION/g) ?? []).length;
  t.comment(`lines ${lines.length}; the agent logged GATEWAY_PROTOCOL_VIOLATION ${violations} times; stats ${JSON.stringify((await rig.agentStats())?.store ?? null).slice(0, 200)}`);
  t.ok(ok, 'packets stored after the restore reach the handler');
  const phase3 = lines.filter((l) => (l.data as { phase: number }).phase === 3);
  t.same(phase3.map((l) => (l.data as { n: number }).n), [...Array(after).keys()], 'every packet stored after the restore, once, in order');
  const seqs = lines.map((l) => l.seq);
  t.equal(new Set(seqs).size, seqs.length, 'no (agent, seq) delivered twice');
});
}
