/**
 * No head-of-line blocking, with real processes: one target's webhook answers 500 while another
 * target goes to the file handler. The healthy target must keep flowing while the failing one is
 * refused and retried; once the webhook recovers, each of its packets arrives exactly once and in
 * seq order.
 */
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localRequest } from '../../agent/local-api.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

interface Hook {
  url: string;
  healthy: boolean;
  failures: number;
  /** seqs of the packets answered 2xx, in arrival order */
  delivered: number[];
  keys: string[];
  close(): Promise<void>;
}

async function startHook(): Promise<Hook> {
  const hook = { healthy: false, failures: 0, delivered: [] as number[], keys: [] as string[] } as Hook;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      if (!hook.healthy) {
        hook.failures++;
        res.writeHead(500).end('down for maintenance');
        return;
      }
      hook.delivered.push(Number(req.headers['ferry-seq']));
      hook.keys.push(String(req.headers['idempotency-key']));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  hook.close = () => new Promise((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return hook;
}

t.test('targets - a failing webhook target does not stall the file target; it catches up once, in order', async (t) => {
  const hook = await startHook();
  t.teardown(() => hook.close());
  const rig = await makeRig({
    agentId: 'two-targets', serial: false,
    routes: [
      '  - match: "alerts/#"',
      '    handler: webhook',
      `    url: ${hook.url}`,
      '    retryAfterMs: 200',
      '    retryAfterMsMin: 100',
      '  - match: "#"',
      '    handler: file',
      '    path: "{received}"',
      '',
    ].join('\n'),
  });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  await rig.start('agent');

  const pairs = 150;
  const alertSeqs: number[] = [];
  const teleSeqs: number[] = [];
  for (let i = 0; i < pairs; i += 10) {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, k) => Promise.all([
      localRequest(rig.socket, { op: 'send', target: 'alerts/door', data: { i: i + k } }, 5000),
      localRequest(rig.socket, { op: 'send', target: 'telemetry/temp', data: { i: i + k } }, 5000),
    ])));
    for (const [a, b] of answers) {
      if (!a.ok || !b.ok) throw new Error('a send was refused');
      alertSeqs.push(a.seq as number);
      teleSeqs.push(b.seq as number);
    }
  }
  const tele = await waitFor('every telemetry packet in the file while the webhook fails', async () => {
    const lines = await rig.lines();
    return lines.length >= pairs ? lines : undefined;
  });
  t.equal(hook.delivered.length, 0, 'no alert was delivered while the webhook failed');
  t.ok(hook.failures > 0, `the webhook was tried and failed (${hook.failures} times)`);
  t.same(tele.map((l) => l.seq).sort((a, b) => a - b), [...teleSeqs].sort((a, b) => a - b), 'every telemetry packet arrived once');
  t.ok(tele.every((l) => l.target === 'telemetry/temp'), 'no alert went to the file');
  const during = await rig.agentStats();
  t.ok(during && during.backlog >= pairs, `the agent still holds the ${pairs} alerts (backlog ${during?.backlog})`);

  hook.healthy = true;
  await waitFor('every alert delivered after the webhook recovered', async () => (hook.delivered.length >= pairs ? true : undefined), 30_000);
  await waitFor('the agent backlog drained', async () => {
    const s = await rig.agentStats();
    return s && s.backlog === 0 && s.inflight === 0 ? true : undefined;
  });
  t.equal(hook.delivered.length, pairs, 'each alert delivered exactly once');
  t.same(hook.delivered, [...alertSeqs].sort((a, b) => a - b), 'alerts arrived in seq order, none missing');
  t.same(hook.keys, hook.delivered.map((s) => `two-targets:${s}`), 'the idempotency key is agent:seq');
  const after = await rig.agentStats();
  t.equal(after?.deadLetters, 0, 'nothing went to the dead letters');
  t.equal((await rig.lines()).length, pairs, 'the file gained nothing more');
});
