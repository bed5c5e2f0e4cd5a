/**
 * Issue 10, case 2: the agent's word (HELLO and PING `ackedSeq`) moves the gateway's dispatch
 * floor only up to the highest seq the gateway itself recorded as dispatched for that agent. One
 * HELLO with ackedSeq 2^53-1 used to become the agent's durable floor: every later packet of the
 * real agent was acked as a duplicate without being dispatched, and WELCOME made it delete its store.
 * The Session over an in-memory transport with a real DispatchLog (as in session.test.ts).
 */
import t from 'tap';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { silentLog } from '../../common/log.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import type { Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import { Router } from '../../gateway/routes.js';
import { Session, type SessionDeps, type SessionOptions } from '../../gateway/session.js';
import { FrameType, type AckFrame, type Frame } from '../../protocol/frames.js';
import { MemoryTransport } from '../helpers/memory-transport.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const agent = 'dev-3';
const options: SessionOptions = {
  helloTimeoutMs: 1e9, peerTimeoutMs: 1e9, pingIntervalMs: 15_000, queuePacketsMax: 16, queueBytesMax: 100_000,
  targetQueuePacketsMax: 4, targetSlowMs: 1e9, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 1000,
  packetBytesMax: 64 * 1024,
};

/** Records every packet it is handed. */
class OkHandler implements Handler {
  readonly kind = 'ok';
  readonly calls: number[] = [];
  handle(p: { seq: number }): Promise<HandlerResult> {
    this.calls.push(p.seq);
    return Promise.resolve({ ok: true });
  }
  async close(): Promise<void> {}
}

async function harness(t: Test, dir = t.testdir()) {
  const dispatchLog = await DispatchLog.open(dir, silentLog);
  t.teardown(() => dispatchLog.close());
  const handler = new OkHandler();
  let sessions = 0;
  const deps: SessionDeps = {
    clock: new FakeClock(), log: silentLog, dispatchLog, router: new Router([{ match: '#', handler }]), inDispatch: new Map(),
    counters: { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 },
    newSessionId: () => `s${++sessions}`, register: () => ({ ok: true }), unregister: () => undefined,
  };
  return {
    dispatchLog, handler,
    connect(ackedSeq: number): MemoryTransport {
      const tr = new MemoryTransport();
      new Session(tr, options, deps);
      tr.deliver({ t: FrameType.HELLO, version: 2, agent, ackedSeq });
      return tr;
    },
  };
}

const welcome = (tr: MemoryTransport) => tr.sentOf(FrameType.WELCOME)[0];
const covers = (a: AckFrame, seq: number): boolean => seq <= a.seq || (a.ranges ?? []).some(([x, y]) => seq >= x && seq <= y);
const isAckOf = (seq: number) => (f: Frame): boolean => f.t === FrameType.ACK && covers(f, seq);
const data = (tr: MemoryTransport, ...seqs: number[]): void => tr.deliver({ t: FrameType.DATA, packets: seqs.map((seq) => ({ seq, target: 't', ts: 0, data: 'x' })) });

t.test('session floor - a HELLO with ackedSeq 2^53-1 for an agent the gateway never saw leaves the floor at 0', async (t) => {
  const g = await harness(t);
  const forged = g.connect(Number.MAX_SAFE_INTEGER);
  t.equal(welcome(forged)?.dispatchedSeq, 0, 'WELCOME names no dispatched seq');
  t.equal(g.dispatchLog.floor(agent), 0, 'the floor did not move');
  forged.close();
  // The real agent then delivers from seq 1: every packet goes to the handler, none is taken for a duplicate.
  const real = g.connect(0);
  data(real, 1, 2, 3);
  await real.waitSent(isAckOf(3), 'ACK of 3');
  t.same(g.handler.calls, [1, 2, 3], 'each packet dispatched');
  t.equal(g.dispatchLog.floor(agent), 3);
});

t.test('session floor - HELLO ackedSeq moves the floor to min(ackedSeq, highest dispatched), and that survives a restart', async (t) => {
  const dir = t.testdir();
  {
    const g = await harness(t, dir);
    for (const seq of [1, 2, 3, 7, 9]) await g.dispatchLog.record(agent, seq);
    const tr = g.connect(Number.MAX_SAFE_INTEGER);
    t.equal(welcome(tr)?.dispatchedSeq, 9, 'clamped to 9, the highest dispatched (the gaps below it are let go)');
    t.equal(welcome(tr)?.ranges, undefined, 'no ranges left');
    data(tr, 10); // a record makes the raised floor durable with it
    await tr.waitSent(isAckOf(10), 'ACK of 10');
    await g.dispatchLog.close();
  }
  const again = await DispatchLog.open(dir, silentLog);
  t.equal(again.floor(agent), 10, 'after a restart: the floor the gateway saw, not 2^53-1');
  t.notOk(again.has(agent, 11), 'seq 11 is not taken for dispatched');
  await again.close();
});

t.test('session floor - a lower ackedSeq still raises the floor as before (gaps below it are forgotten)', async (t) => {
  const g = await harness(t);
  for (const seq of [1, 2, 6, 9]) await g.dispatchLog.record(agent, seq);
  const tr = g.connect(5);
  t.equal(welcome(tr)?.dispatchedSeq, 6, 'floor 5, and 6 joins it');
  t.same(welcome(tr)?.ranges, [[9, 9]]);
});

t.test('session floor - PING ackedSeq is clamped the same way', async (t) => {
  const g = await harness(t);
  const tr = g.connect(0);
  data(tr, 1, 2, 4);
  await tr.waitSent(isAckOf(4), 'ACK of 4');
  tr.deliver({ t: FrameType.PING, id: 1, ackedSeq: Number.MAX_SAFE_INTEGER });
  await tr.waitSent((f) => f.t === FrameType.PONG, 'PONG');
  t.equal(g.dispatchLog.floor(agent), 4, 'the floor moves to 4 (3 was let go by the agent), not past it');
  t.notOk(g.dispatchLog.has(agent, 5), 'seq 5 is still to be dispatched');
  data(tr, 5);
  await tr.waitSent(isAckOf(5), 'ACK of 5');
  t.same(g.handler.calls, [1, 2, 4, 5], '5 went to the handler');
});
