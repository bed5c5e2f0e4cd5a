/** `ferry send` against real processes: --wait (acked, refused, timed out), --data - and @FILE. */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeRig, waitFor, type Rig } from '../helpers/ferry.js';

/** Only good/# has a route: anything else is refused by the gateway (UNKNOWN_TARGET, permanent). */
async function goodOnlyGateway(rig: Rig): Promise<void> {
  await writeFile(join(rig.dir, 'gateway.yaml'), `listen:\n  tcp: 127.0.0.1:${rig.port}\n  admin: 127.0.0.1:0\ndataDir: ${join(rig.dir, 'gw')}\nroutes:\n  - match: "good/#"\n    handler: file\n    path: ${rig.received}\n`);
}

t.test('send --wait - prints acked once the gateway acked; a refused packet prints its NACK code and exits 3', async (t) => {
  const rig = await makeRig({ agentId: 'wait-1', serial: false });
  t.teardown(() => rig.cleanup());
  await goodOnlyGateway(rig);
  await rig.start('gateway');
  await rig.start('agent');

  const ok = await runFerry(['send', '--socket', rig.socket, '--target', 'good/a', '--data', '{"v":1}', '--wait']);
  t.equal(ok.code, 0, ok.stderr);
  const seq = Number(ok.stdout.match(/^acked seq (\d+)\n$/)?.[1]);
  t.ok(seq > 0, `prints "acked seq N": ${JSON.stringify(ok.stdout)}`);
  // Acked means the gateway dispatched it: the file handler has written it by now.
  t.match(await rig.lines(), [{ seq, target: 'good/a', data: { v: 1 } }], 'the acked packet is in the file');

  const bad = await runFerry(['send', '--socket', rig.socket, '--target', 'bad/x', '--data', '{"v":2}', '--wait']);
  t.equal(bad.code, 3, 'a refused packet exits 3');
  const m = bad.stdout.match(/^refused seq (\d+) UNKNOWN_TARGET: (.+)\n$/);
  t.ok(m, `prints the refusal with the gateway's code and reason: ${JSON.stringify(bad.stdout)}`);

  // Asked after the verdicts: answered at once, from the store and the dead letters.
  const again = await localRequest(rig.socket, { op: 'waitAcked', seq, timeoutMs: 60_000 }, 5000);
  t.same(again, { ok: true, acked: true }, 'an ack from before the wait answers at once');
  const refusedAgain = await localRequest(rig.socket, { op: 'waitAcked', seq: Number(m?.[1]), timeoutMs: 60_000 }, 5000);
  t.match(refusedAgain, { ok: true, acked: false, refusal: { code: 'UNKNOWN_TARGET', message: m?.[2] } }, 'a dead letter answers at once with its code');
  const unknown = await localRequest(rig.socket, { op: 'waitAcked', seq: 9999, timeoutMs: 1000 }, 5000);
  t.match(unknown, { ok: false, code: 'LOCAL_REQUEST_INVALID' }, 'a seq never issued is refused, not waited for');
});

t.test('send --wait - with the gateway down it times out with SEND_WAIT_TIMEOUT; the packet is delivered later', async (t) => {
  const rig = await makeRig({ agentId: 'wait-2', serial: false });
  t.teardown(() => rig.cleanup());
  await rig.start('agent');
  const r = await runFerry(['send', '--socket', rig.socket, '--target', 'late/a', '--data', '"x"', '--wait', '--wait-timeout-ms', '800']);
  t.equal(r.code, 1, 'exits 1');
  t.match(r.stderr, /no verdict from the gateway on seq 1 within 800 ms; the packet stays queued.*\[SEND_WAIT_TIMEOUT\]/, `says so with the code: ${r.stderr}`);
  t.equal(r.stdout, '', 'prints no seq as acked');
  const stats = await rig.agentStats();
  t.equal(stats?.backlog, 1, 'the packet is still queued');

  // A wait open while the gateway comes up is answered by the ack.
  const waiting = runFerry(['send', '--socket', rig.socket, '--target', 'late/b', '--data', '"y"', '--wait', '--wait-timeout-ms', '30000'], 40_000);
  await waitFor('the second packet stored', () => rig.agentStats().then((s) => (s && s.backlog === 2 ? true : undefined)));
  await rig.start('gateway');
  const w = await waiting;
  t.equal(w.stdout, 'acked seq 2\n', w.stderr);
  const lines = await waitFor('both lines', () => rig.lines().then((l) => (l.length === 2 ? l : undefined)));
  t.same(lines.map((l) => [l.seq, l.target]), [[1, 'late/a'], [2, 'late/b']], 'the timed-out packet was delivered too');
});

t.test('send --data - and @FILE - read the JSON from stdin and from a file, bounded', async (t) => {
  const rig = await makeRig({ agentId: 'data-1', serial: false });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  await rig.start('agent');
  const fromStdin = await runFerry(['send', '--socket', rig.socket, '--target', 'in/stdin', '--data', '-'], 20_000, { input: '{"from":"stdin","n":[1,2]}\n' });
  t.equal(fromStdin.code, 0, fromStdin.stderr);
  const file = join(rig.dir, 'data.json');
  await writeFile(file, '{"from":"file"}');
  const fromFile = await runFerry(['send', '--socket', rig.socket, '--target', 'in/file', '--data', `@${file}`]);
  t.equal(fromFile.code, 0, fromFile.stderr);
  const lines = await waitFor('both lines', () => rig.lines().then((l) => (l.length === 2 ? l : undefined)));
  t.same(lines.map((l) => [l.target, l.data]), [['in/stdin', { from: 'stdin', n: [1, 2] }], ['in/file', { from: 'file' }]], 'both arrive with their data');

  const missing = join(rig.dir, 'nope.json');
  const noFile = await runFerry(['send', '--socket', rig.socket, '--target', 'in/x', '--data', `@${missing}`]);
  t.equal(noFile.code, 1, 'a missing file fails');
  t.match(noFile.stderr, `--data @${missing}: cannot read (ENOENT)`, 'naming the file');
  t.match(noFile.stderr, /\[LOCAL_REQUEST_INVALID\]/, 'with a code');

  // 1 MiB on stdin: refused past 256 KiB, nothing sent.
  const big = Buffer.from(JSON.stringify({ pad: 'x'.repeat(1 << 20) }));
  const tooBig = await runFerry(['send', '--socket', rig.socket, '--target', 'in/big', '--data', '-'], 20_000, { input: big });
  t.equal(tooBig.code, 1, 'oversize stdin fails');
  t.match(tooBig.stderr, /more than 262144 bytes.*nothing was sent.*\[DATA_TOO_LARGE\]/, tooBig.stderr);
  await writeFile(file, big);
  const tooBigFile = await runFerry(['send', '--socket', rig.socket, '--target', 'in/big', '--data', `@${file}`]);
  t.match(tooBigFile.stderr, /\[DATA_TOO_LARGE\]/, 'an oversize file too');
  const stats = await rig.agentStats();
  t.equal(stats?.lastSeq, 2, 'nothing more was stored');
});
