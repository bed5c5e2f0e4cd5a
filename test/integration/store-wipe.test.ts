/**
 * A wiped store, for real: the agent's store directory is deleted while the agent is down, the
 * new store hands out seqs 1, 2, ... again while the gateway is down, and the gateway remembers
 * the old store's seqs. The packets of the new store must still be delivered, each once, under
 * seqs the gateway never saw (the agent renumbers them above what WELCOME names).
 */
import t from 'tap';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

const send = async (socket: string, phase: number, n: number): Promise<number> => {
  const r = await localRequest(socket, { op: 'send', target: `wipe/${n % 2}`, data: { phase, n } }, 5000);
  if (!r.ok) throw new Error(`send refused: ${JSON.stringify(r)}`);
  return r.seq as number;
};

t.test('store wipe - packets stored after a wipe are delivered once each, under seqs above those the gateway knows', async (t) => {
  const rig = await makeRig({ agentId: 'wiped', serial: false });
  t.teardown(() => rig.cleanup());
  let gateway = await rig.start('gateway');
  let agent = await rig.start('agent');
  for (let n = 0; n < 20; n++) await send(rig.socket, 1, n);
  await waitFor('the first 20 packets delivered', async () => ((await rig.lines()).length >= 20 ? true : undefined));

  gateway.kill('SIGKILL');
  await gateway.exited;
  agent.kill('SIGKILL');
  await agent.exited;
  await rm(join(rig.dir, 'agent', 'store'), { recursive: true, force: true });
  agent = await rig.start('agent');
  const newSeqs: number[] = [];
  for (let n = 0; n < 10; n++) newSeqs.push(await send(rig.socket, 2, n));
  t.same(newSeqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'the wiped store hands out seqs from 1 again (it cannot know better offline)');
  gateway = await rig.start('gateway');

  const lines = await waitFor('the 10 packets of the new store delivered', async () => {
    const l = await rig.lines();
    return l.length >= 30 ? l : undefined;
  });
  const seqs = lines.map((l) => l.seq);
  t.equal(new Set(seqs).size, seqs.length, 'no (agent, seq) is delivered twice');
  const phase2 = lines.filter((l) => (l.data as { phase: number }).phase === 2);
  t.same(phase2.map((l) => (l.data as { n: number }).n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'every packet of the new store, once, in order');
  t.ok(phase2.every((l) => l.seq > 20), `under seqs above the gateway's (${phase2.map((l) => l.seq).join(',')})`);
  const stats = await rig.agentStats();
  t.equal(stats?.store.renumbered, 10, 'the agent counts the renumbered packets');
  await waitFor('backlog drained', async () => ((await rig.agentStats())?.backlog === 0 ? true : undefined));
});
