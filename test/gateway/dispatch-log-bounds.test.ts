/**
 * The dispatch log's gap bound (rangesPerAgentMax) through the real Session (gateway/session.ts):
 * an agent that sends every other seq, in one session or many, with its packets held in the
 * handler so nothing is recorded while more arrive, must not leave more gaps than the bound;
 * an honest agent whose target fails meets the bound with TARGET_BUSY, keeps its session, and
 * gets through once the target recovers.
 */
import t from 'tap';
import { silentLog } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type NackFrame } from '../../protocol/frames.js';
import type { Packet } from '../../protocol/packet.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import type { DispatchPacket, Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import { Router } from '../../gateway/routes.js';
import { Session, type SessionDeps, type SessionOptions } from '../../gateway/session.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { until } from '../helpers/wait.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const agent = 'pi-1';
const gapsMax = 8;

/** Calls wait until the test answers them (`finishAll`), unless `auto` answers at once. */
class HeldHandler implements Handler {
  readonly kind = 'held';
  readonly inflightMax = 64;
  readonly calls: number[] = [];
  private readonly waiting: ((r: HandlerResult) => void)[] = [];
  constructor(private readonly auto?: (p: DispatchPacket) => HandlerResult | undefined) {}
  handle(p: DispatchPacket): Promise<HandlerResult> {
    this.calls.push(p.seq);
    const r = this.auto?.(p);
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  finishAll(): void {
    for (const w of this.waiting.splice(0)) w({ ok: true });
  }
  async close(): Promise<void> {}
}

const options: SessionOptions = {
  helloTimeoutMs: 1e9, peerTimeoutMs: 1e9, pingIntervalMs: 15_000, queuePacketsMax: 64, queueBytesMax: 1_000_000,
  targetQueuePacketsMax: 64, targetSlowMs: 1e9, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 1000,
  packetBytesMax: 64 * 1024,
};

async function harness(t: Test, handler: Handler) {
  const dispatchLog = await DispatchLog.open(t.testdir(), silentLog, { rangesPerAgentMax: gapsMax });
  t.teardown(() => dispatchLog.close());
  const clock = new FakeClock();
  let sessions = 0;
  const deps: SessionDeps = {
    clock, log: silentLog, dispatchLog, router: new Router([{ match: '#', handler }]), inDispatch: new Map(),
    counters: { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 },
    newSessionId: () => `s${++sessions}`, register: () => ({ ok: true }), unregister: () => undefined,
  };
  return {
    dispatchLog, clock,
    connect(): MemoryTransport {
      const tr = new MemoryTransport();
      new Session(tr, options, deps);
      tr.deliver({ t: FrameType.HELLO, version: 2, agent, token: 'tok', ackedSeq: 0 });
      return tr;
    },
  };
}

/** Every packet to a target of its own, so each has a lane and none waits behind another. */
const pkt = (seq: number, target = `t${seq}`): Packet => ({ seq, target, ts: 0, data: 'x' });
const send = (tr: MemoryTransport, packets: Packet[]): void => tr.deliver({ t: FrameType.DATA, packets });
const everyOther = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + 2 * i);
const nacks = (tr: MemoryTransport): NackFrame[] => tr.sentOf(FrameType.NACK);

t.test('dispatch-log bounds - every other seq in one DATA frame: packets admitted before their records land do not pass rangesPerAgentMax', async (t) => {
  const handler = new HeldHandler();
  const g = await harness(t, handler);
  const tr = g.connect();
  const seqs = everyOther(2, 40);
  send(tr, seqs.map((s) => pkt(s)));
  const refused = nacks(tr).filter((n) => n.code === ErrorCode.TARGET_BUSY).length;
  await until(() => handler.calls.length === seqs.length - refused, 'every admitted packet in the handler');
  handler.finishAll();
  await until(() => tr.sentOf(FrameType.ACK).length > 0 && g.dispatchLog.gaps(agent) + g.dispatchLog.floor(agent) > 0 && handler.calls.every((s) => g.dispatchLog.has(agent, s)), 'every dispatched seq recorded');
  t.ok(g.dispatchLog.gaps(agent) <= gapsMax, `${g.dispatchLog.gaps(agent)} gaps, at most ${gapsMax}`);
  t.ok(refused > 0, `${refused} packets were refused for now`);
  t.ok(nacks(tr).every((n) => n.code === ErrorCode.TARGET_BUSY && (n.retryAfterMs ?? 0) > 0), 'only TARGET_BUSY, with a retry-after');
  t.ok(tr.isOpen, 'the session goes on');
});

t.test('dispatch-log bounds - every other seq over many sessions at once, all held in the handler, does not pass rangesPerAgentMax', async (t) => {
  const handler = new HeldHandler();
  const g = await harness(t, handler);
  const trs: MemoryTransport[] = [];
  for (let i = 0; i < 6; i++) {
    const tr = g.connect();
    trs.push(tr);
    send(tr, everyOther(2 + 100 * i, 6).map((s) => pkt(s)));
  }
  const refused = trs.reduce((n, tr) => n + nacks(tr).length, 0);
  await until(() => handler.calls.length === 36 - refused, 'every admitted packet in the handler');
  handler.finishAll();
  await until(() => handler.calls.every((s) => g.dispatchLog.has(agent, s)), 'every dispatched seq recorded');
  t.ok(g.dispatchLog.gaps(agent) <= gapsMax, `${g.dispatchLog.gaps(agent)} gaps after ${handler.calls.length} dispatches in 6 sessions, at most ${gapsMax}`);
  t.ok(handler.calls.length >= gapsMax, 'the bound was reached, not avoided');
});

t.test('dispatch-log bounds - an honest agent whose target fails meets the bound with TARGET_BUSY, keeps its session, and gets through when the target recovers', async (t) => {
  let failing = true;
  const handler = new HeldHandler((p) => (p.target === 'down' && failing ? { ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: 'backend down', retryAfterMs: 100 } : { ok: true }));
  const g = await harness(t, handler);
  const tr = g.connect();
  // Odd seqs go to the failing target, even ones to a working one: every odd seq is a gap.
  const all = Array.from({ length: 60 }, (_, i) => i + 1);
  const target = (s: number): string => (s % 2 === 1 ? 'down' : 'up');
  for (const s of all) {
    send(tr, [pkt(s, target(s))]);
    await until(() => g.dispatchLog.has(agent, s) || nacks(tr).some((n) => n.seq === s), `a verdict on ${s}`);
  }
  t.ok(g.dispatchLog.gaps(agent) <= gapsMax, `${g.dispatchLog.gaps(agent)} gaps, at most ${gapsMax}`);
  const busy = nacks(tr).filter((n) => n.code === ErrorCode.TARGET_BUSY && target(n.seq) === 'up');
  t.ok(busy.length > 0, 'the working target\'s packets that would open more gaps are refused for now');
  t.ok(tr.isOpen, 'the session is not ended');
  // The target recovers; the agent offers everything not acked again, in order, once due.
  failing = false;
  g.clock.advance(10_000);
  for (const s of all) {
    if (g.dispatchLog.has(agent, s)) continue;
    send(tr, [pkt(s, target(s))]);
    await until(() => g.dispatchLog.has(agent, s), `${s} recorded after the recovery`);
  }
  t.equal(g.dispatchLog.floor(agent), 60, 'everything got through');
  t.equal(g.dispatchLog.gaps(agent), 0);
  t.ok(tr.isOpen);
});
