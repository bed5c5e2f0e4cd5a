import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ferryBin } from '../../cli/proc.js';
import { localRequest } from '../../agent/local-api.js';
import { drainAndStopAgent, makeRig, sleep, waitFor } from '../helpers/ferry.js';

const run = promisify(execFile);

/** Every seq 1..lastSeq exactly once, in increasing order per target (targets do not wait for each other), and nothing else from this agent. */
function checkExactlyOnceInOrder(t: Test, lines: { seq: number; target: string }[], lastSeq: number): void {
  const seqs = lines.map((l) => l.seq);
  t.ok(lastSeq > 0, 'the agent generated packets');
  t.equal(seqs.length, lastSeq, `the file holds ${lastSeq} packets of this agent, one per generated seq`);
  t.equal(new Set(seqs).size, seqs.length, 'no seq appears twice');
  t.same([...seqs].sort((a, b) => a - b).findIndex((s, i) => s !== i + 1), -1, 'the seqs are 1..lastSeq: nothing missing');
  const disorder = [...new Set(lines.map((l) => l.target))].filter((target) => {
    const mine = lines.filter((l) => l.target === target).map((l) => l.seq);
    return !mine.every((s, i) => i === 0 || s > mine[i - 1]!);
  });
  t.same(disorder, [], 'in seq order per target');
}

t.test('pipeline - sim -> agent -> gateway -> file handler, plus ferry send', async (t) => {
  const rig = await makeRig({ agentId: 'pipe-1' });
  t.teardown(() => rig.cleanup());
  await rig.start('sim');
  await rig.start('gateway');
  const agent = await rig.start('agent');

  const sent = await run(process.execPath, [ferryBin, 'send', '--socket', rig.socket, '--target', 'cmd/manual', '--data', '{"note":"hello"}']);
  const sentSeq = Number(sent.stdout.trim());
  t.ok(Number.isInteger(sentSeq) && sentSeq > 0, `ferry send printed a seq (${sent.stdout.trim()})`);

  await waitFor('threshold packets in both directions', async () => {
    const lines = await rig.lines();
    const states = new Set(lines.filter((l) => l.target === 'alerts/temp').map((l) => (l.data as { state: string }).state));
    return states.has('above') && states.has('below') && lines.length > 50 ? true : undefined;
  });
  const lastSeq = await drainAndStopAgent(rig, agent);
  const lines = await rig.lines();
  checkExactlyOnceInOrder(t, lines, lastSeq);

  const manual = lines.find((l) => l.target === 'cmd/manual');
  t.same(manual?.data, { note: 'hello' }, 'the packet from ferry send arrived with its data');
  t.equal(manual?.seq, sentSeq, 'under the seq ferry send printed');
  t.ok(lines.every((l) => l.agent === 'pipe-1'), 'every line names the agent');
  const tele = lines.filter((l) => l.target === 'telemetry/temp');
  t.ok(tele.length > 10 && tele.every((l) => typeof (l.data as { value: unknown }).value === 'number'), 'delta packets carry the reading');
  t.ok(lines.some((l) => l.target === 'status/heartbeat'), 'heartbeats arrived');
});

t.test('pipeline - SIGKILL of the gateway and of the agent mid-stream loses and duplicates nothing', async (t) => {
  const rig = await makeRig({ agentId: 'pipe-kill', rateHz: 200 });
  t.teardown(() => rig.cleanup());
  await rig.start('sim');
  let gateway = await rig.start('gateway');
  let agent = await rig.start('agent');
  // A producer on the local API keeps many packets in flight, so the kills land mid-stream.
  let producing = true;
  const acceptedSeqs: number[] = [];
  const producer = (async () => {
    while (producing) {
      const answers = await Promise.all(Array.from({ length: 16 }, (_, i) =>
        localRequest(rig.socket, { op: 'send', target: `bulk/${i % 4}`, data: { i, pad: 'x'.repeat(64) } }, 2000).catch(() => null)));
      for (const a of answers) if (a?.ok && a.seq !== undefined) acceptedSeqs.push(a.seq);
      if (answers.every((a) => a === null)) await sleep(50);
    }
  })();

  for (let round = 0; round < 2; round++) {
    await waitFor('packets flowing', async () => ((await rig.lines()).length > (round + 1) * 40 ? true : undefined));
    gateway.kill('SIGKILL');
    await gateway.exited;
    // While the gateway is down the agent keeps storing: the backlog must build up, then drain.
    const backlog = await waitFor('a backlog while the gateway is down', async () => {
      const s = await rig.agentStats();
      return s && s.backlog > 5 ? s.backlog : undefined;
    });
    t.ok(backlog > 5, `round ${round}: agent held ${backlog} packets while the gateway was down`);
    gateway = await rig.start('gateway');

    await sleep(300);
    agent.kill('SIGKILL');
    await agent.exited;
    await sleep(300);
    agent = await rig.start('agent');
  }
  await waitFor('packets flowing after the kills', async () => ((await rig.lines()).length > 1000 ? true : undefined), 30_000);
  producing = false;
  await producer;
  t.ok(acceptedSeqs.length > 500, `the local API accepted ${acceptedSeqs.length} packets during the kills`);
  const lastSeq = await drainAndStopAgent(rig, agent);
  const lines = await rig.lines();
  checkExactlyOnceInOrder(t, lines, lastSeq);
  const bulk = new Set(lines.filter((l) => l.target.startsWith('bulk/')).map((l) => l.seq));
  t.equal(acceptedSeqs.filter((seq) => !bulk.has(seq)).length, 0, 'every send the agent confirmed reached the file under its seq');
});
