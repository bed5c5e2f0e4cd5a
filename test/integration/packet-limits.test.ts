/**
 * Issue 9, case 10, with real processes: one poison packet must not stall an agent's stream.
 * - `ferry send` of data nested 40 levels deep (the reproduction) is refused at submission
 *   with DATA_TOO_DEEP: the agent applies the gateway's packet rule, from protocol/limits.ts.
 * - With a gateway whose limits are lower than the agent's (frame bytes, packet depth), the packets
 *   it could never take become dead letters, the packets after them are delivered, and the agent
 *   connects once (the old agent reconnected ~12 times a second and resent the same frame forever).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { runFerry } from '../helpers/cli-run.js';

const nested = (levels: number): unknown => JSON.parse('['.repeat(levels) + ']'.repeat(levels));

t.test('packet-limits - ferry send of data 40 levels deep is refused at submission with DATA_TOO_DEEP', async (t) => {
  const rig = await makeRig({ agentId: 'deep-send', serial: false });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  await rig.start('agent');
  const run = await runFerry(['send', '--socket', rig.socket, '--target', 'a/b', '--data', '['.repeat(40) + ']'.repeat(40)]);
  t.equal(run.code, 1, 'ferry send fails');
  t.match(run.stderr, /DATA_TOO_DEEP/, `and says why: ${run.stderr.trim()}`);
  const ok = await runFerry(['send', '--socket', rig.socket, '--target', 'a/b', '--data', '['.repeat(32) + ']'.repeat(32)]);
  t.equal(ok.code, 0, `32 levels are taken: ${ok.stderr.trim()}`);
  const lines = await waitFor('the 32-level packet delivered', async () => {
    const l = await rig.lines();
    return l.length === 1 ? l : undefined;
  });
  t.equal(lines[0]!.seq, 1, 'the refused packet took no seq');
  t.equal((await rig.agentStats())?.stored, 1, 'only one packet was stored');
});

t.test('packet-limits - a gateway with lower limits than the agent: packets over them become dead letters, the rest is delivered, one session', async (t) => {
  const rig = await makeRig({
    agentId: 'low-gateway', serial: false,
    // The agent takes up to 64 KiB of data nested 32 levels, in frames of up to 256 KiB.
    gatewayYaml: 'limits:\n  frameBytesMax: 8192\n  packetDepthMax: 8\n',
  });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  await rig.start('agent');

  const sends: { target: string; data: unknown; poison?: string }[] = [
    { target: 'ok/1', data: { n: 1 } },
    { target: 'poison/deep', data: nested(20), poison: 'DATA_TOO_DEEP' },
    { target: 'ok/2', data: { n: 2 } },
    { target: 'poison/big', data: 'x'.repeat(20_000), poison: 'DATA_TOO_LARGE' },
    // Three of these fit the agent's frame (256 KiB), not the gateway's (8 KiB): they must go in several.
    ...[3, 4, 5].map((n) => ({ target: `ok/${n}`, data: 'y'.repeat(3000) })),
    { target: 'ok/6', data: { n: 6 } },
  ];
  const seqs: number[] = [];
  for (const s of sends) {
    const r = await localRequest(rig.socket, { op: 'send', target: s.target, data: s.data as never }, 5000);
    if (!r.ok) throw new Error(`send ${s.target} refused: ${r.code}`);
    seqs.push(r.seq!);
  }
  const good = sends.flatMap((s, i) => (s.poison ? [] : [seqs[i]!]));
  const lines = await waitFor('every good packet delivered', async () => {
    const l = await rig.lines();
    return l.length >= good.length ? l : undefined;
  });
  t.same(lines.map((l) => l.seq), good, 'the packets after the poison ones are delivered, in order');
  const letters = await localRequest(rig.socket, { op: 'deadLetters' }, 5000);
  if (!letters.ok) throw new Error(`deadLetters refused: ${letters.code}`);
  t.same((letters.deadLetters as { packet: { seq: number; target: string }; code: string }[]).map((d) => [d.packet.target, d.code]),
    sends.filter((s) => s.poison).map((s) => [s.target, s.poison]), 'the poison packets are dead letters with their codes');
  const stats = await waitFor('an empty backlog', async () => {
    const s = await rig.agentStats();
    return s && s.backlog === 0 && s.inflight === 0 ? s : undefined;
  });
  t.equal(stats.link, 'connected');
  const gatewayLog = await readFile(join(rig.dir, 'gateway.log'), 'utf8');
  t.equal(gatewayLog.split('\n').filter((l) => l.includes('session: agent connected')).length, 1, 'the agent connected once: no session was closed');
  t.notMatch(gatewayLog, /FRAME_TOO_LARGE|FRAME_MALFORMED/, 'no frame was refused');
});
