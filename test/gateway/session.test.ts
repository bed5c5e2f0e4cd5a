/**
 * The gateway's Session (gateway/session.ts) over an in-memory transport: the test plays the
 * agent (delivers HELLO, DATA, PING and reads what the session sent back). The dispatch log is a
 * real DispatchLog in a test directory; handlers are fakes the test resolves by hand; time is a
 * FakeClock (the session's timers and its lanes' retry timers).
 */
import t from 'tap';
import { silentLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type AckFrame, type Frame, type NackFrame } from '../../protocol/frames.js';
import type { Packet } from '../../protocol/packet.js';
import { agentMessage } from '../../gateway/agent-message.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import type { Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import { Router } from '../../gateway/routes.js';
import { Session, type SessionDeps, type SessionOptions } from '../../gateway/session.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { JitterClock } from '../helpers/jitter-clock.js';
import { turn, until } from '../helpers/wait.js';
import { FakeHandler } from '../helpers/fake-handler.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const agent = 'pi-1';
const ok: HandlerResult = { ok: true };
const retryable = (retryAfterMs: number): HandlerResult => ({ ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: 'backend down', retryAfterMs });
const permanent: HandlerResult = { ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: 'bad payload' };

const turns = async (n = 10): Promise<void> => {
  for (let i = 0; i < n; i++) await turn();
};


const options: SessionOptions = {
  helloTimeoutMs: 1e9, peerTimeoutMs: 1e9, pingIntervalMs: 15_000, queuePacketsMax: 16, queueBytesMax: 100_000,
  targetQueuePacketsMax: 4, targetSlowMs: 1e9, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 1000,
  packetBytesMax: 64 * 1024,
};

/**
 * Sessions over one dispatch log, one router and one `inDispatch` map (as the gateway shares
 * them between the sessions of an agent). `connect` opens a session on a new transport.
 */
async function harness(t: Test, routes: { match: string; handler: Handler }[], opts: Partial<SessionOptions> = {}, clock: FakeClock | JitterClock = new FakeClock()) {
  const dispatchLog = await DispatchLog.open(t.testdir(), silentLog);
  t.teardown(() => dispatchLog.close());
  const counters = { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 };
  let sessions = 0;
  const deps: SessionDeps = {
    clock, log: silentLog, dispatchLog, router: new Router(routes), inDispatch: new Map(), counters,
    newSessionId: () => `s${++sessions}`,
    register: () => ({ ok: true }),
    unregister: () => undefined,
  };
  const o = { ...options, ...opts };
  return {
    clock, dispatchLog, deps, counters, opts: o,
    /** A session on a new transport, past HELLO (with `ackedSeq`). */
    connect(ackedSeq = 0): MemoryTransport {
      const tr = new MemoryTransport();
      new Session(tr, o, deps);
      tr.deliver({ t: FrameType.HELLO, version: 2, agent, token: 'tok', ackedSeq });
      return tr;
    },
  };
}

/** One packet of `agent`; 'x' as data (3 bytes of JSON text). */
const pkt = (seq: number, target: string): Packet => ({ seq, target, ts: 0, data: 'x' });
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const send = (tr: MemoryTransport, ...packets: Packet[]): void => tr.deliver({ t: FrameType.DATA, packets });

const covers = (a: AckFrame, seq: number): boolean => seq <= a.seq || (a.ranges ?? []).some(([x, y]) => seq >= x && seq <= y);
const isAckOf = (seq: number) => (f: Frame): boolean => f.t === FrameType.ACK && covers(f, seq);
const isNackOf = (seq: number) => (f: Frame): boolean => f.t === FrameType.NACK && f.seq === seq;
/** Every seq the session has acked on `tr`. */
const acked = (tr: MemoryTransport, seqs: number[]): number[] => seqs.filter((s) => tr.sentOf(FrameType.ACK).some((a) => covers(a, s)));
const nacks = (tr: MemoryTransport): NackFrame[] => tr.sentOf(FrameType.NACK);
const codeOf = (e: Error | undefined | null): string | undefined => (e as FerryError | undefined | null)?.code;

t.test('session - HELLO gets a WELCOME with the dispatch log\'s floor and ranges, the credit and pingIntervalMs', async (t) => {
  const g = await harness(t, [{ match: '#', handler: new FakeHandler(() => ok) }]);
  for (const seq of [1, 2, 3, 5, 6, 9]) await g.dispatchLog.record(agent, seq);
  const tr = g.connect(0);
  t.same(tr.sent, [{
    t: FrameType.WELCOME, session: 's1', dispatchedSeq: 3, ranges: [[5, 6], [9, 9]],
    creditPackets: options.queuePacketsMax, creditBytes: options.queueBytesMax, pingIntervalMs: options.pingIntervalMs,
    dataBytesMax: options.packetBytesMax, dataDepthMax: 32, seenSeq: 9,
  }]);
  t.ok(tr.isOpen);
});

t.test('session - a seq is handed to a handler only once a mark above it is durable; WELCOME seenSeq carries the mark (a wiped store renumbers above it)', async (t) => {
  const handler = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler }]);
  const tr = g.connect();
  send(tr, pkt(7, 'a'));
  await until(() => handler.calls.length === 1, '7 in the handler');
  t.ok(g.dispatchLog.seen(agent) > 7, `the mark (${g.dispatchLog.seen(agent)}) covers 7 before any dispatch was recorded`);
  t.notOk(g.dispatchLog.has(agent, 7), '7 is not recorded as dispatched yet');
  tr.close();
  const tr2 = g.connect(0);
  t.ok(((tr2.sent[0] as { seenSeq?: number }).seenSeq ?? 0) > 7, 'a new session\'s WELCOME names the mark');
});

t.test('session - the HELLO\'s ackedSeq raises the dispatch log\'s floor before the WELCOME', async (t) => {
  const g = await harness(t, [{ match: '#', handler: new FakeHandler(() => ok) }]);
  for (const seq of [1, 2, 3, 6, 9]) await g.dispatchLog.record(agent, seq);
  const tr = g.connect(5);
  const w = tr.sentOf(FrameType.WELCOME)[0];
  t.equal(w?.dispatchedSeq, 6, 'floor raised to 5, and 6 above it joins');
  t.same(w?.ranges, [[9, 9]]);
  t.equal(g.dispatchLog.floor(agent), 6);
  t.notOk(g.dispatchLog.has(agent, 7));
});

t.test('session - DATA goes to the handler and is acked only once the dispatch log recorded it', async (t) => {
  const handler = new FakeHandler();
  const g = await harness(t, [{ match: 'tele/#', handler }]);
  const tr = g.connect();
  const hadRecord: [number, boolean][] = [];
  tr.onSend((f) => {
    if (f.t === FrameType.ACK && covers(f, 1)) hadRecord.push([f.seq, g.dispatchLog.has(agent, 1)]);
  });
  send(tr, pkt(1, 'tele/temp'));
  await until(() => handler.calls.length === 1, 'the handler is called');
  t.same(handler.calls, [1]);
  await turns();
  t.same(tr.sentOf(FrameType.ACK), [], 'no ACK while the handler has not answered');
  handler.finish(1);
  const a = (await tr.waitSent(isAckOf(1), 'ACK of 1')) as AckFrame;
  t.equal(a.seq, 1, 'the cumulative seq moves to 1');
  t.same(hadRecord[0], [1, true], 'the dispatch log had 1 when the ACK went out');
  t.equal(g.counters.dispatched, 1);
  t.same(nacks(tr), []);
});

t.test('session - a seq already recorded is acked again without calling the handler', async (t) => {
  const handler = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: '#', handler }]);
  const tr = g.connect();
  send(tr, pkt(1, 'a'));
  await tr.waitSent(isAckOf(1), 'ACK of 1');
  const from = tr.sent.length;
  send(tr, pkt(1, 'a')); // the agent lost the ACK and sent it again
  await tr.waitSent(isAckOf(1), 'second ACK of 1', from);
  t.same(handler.calls, [1], 'handed over once');
  t.equal(g.counters.duplicates, 1);

  // Also one recorded by an earlier session or before a restart, never seen by this session.
  await g.dispatchLog.record(agent, 7);
  send(tr, pkt(7, 'a'));
  await tr.waitSent(isAckOf(7), 'ACK of 7');
  t.same(handler.calls, [1]);
  t.equal(g.counters.duplicates, 2);
});

t.test('session - a target whose handler hangs does not hold back another; its overflow gets TARGET_BUSY with a retry-after', async (t) => {
  const slow = new FakeHandler();
  const fast = new FakeHandler(() => ok);
  // A slow lane (no verdict for targetSlowMs) keeps at most min(targetQueuePacketsMax 2, queuePacketsMax / 4) waiting.
  const g = await harness(t, [{ match: 'slow', handler: slow }, { match: 'fast', handler: fast }], { targetQueuePacketsMax: 2, busyRetryAfterMs: 500, targetSlowMs: 100 });
  const tr = g.connect();
  send(tr, pkt(1, 'slow'), pkt(2, 'slow'), pkt(3, 'slow'), pkt(4, 'slow'), pkt(5, 'fast'), pkt(6, 'fast'));
  await tr.waitSent(isAckOf(6), 'ACK of 6');
  t.same(nacks(tr), [], 'nothing is refused while the slow target is not known to be slow');
  await g.clock.advance(101);
  await tr.waitSent(isNackOf(4), 'NACK of 4 once the target is slow');
  t.same(slow.calls, [1], 'slow: one in the handler, 2 and 3 waiting');
  t.same(fast.calls, [5, 6]);
  t.same(acked(tr, [1, 2, 3, 4, 5, 6]), [5, 6], 'fast\'s packets are dispatched and acked');
  t.ok(g.dispatchLog.has(agent, 5) && g.dispatchLog.has(agent, 6));
  t.same(nacks(tr).map((n) => [n.seq, n.code, n.retryAfterMs]), [[4, ErrorCode.TARGET_BUSY, 500]], 'the overflow is refused for now');

  // Later packets of the slow target are refused until the retry-after, so none overtakes 4.
  await g.clock.advance(100);
  send(tr, pkt(7, 'slow'), pkt(8, 'fast'));
  await tr.waitSent(isAckOf(8), 'ACK of 8');
  t.same(nacks(tr).map((n) => [n.seq, n.code, n.retryAfterMs]), [[4, ErrorCode.TARGET_BUSY, 500], [7, ErrorCode.TARGET_BUSY, 400]]);
  const credit = tr.sent.filter((f) => f.t === FrameType.ACK).at(-1);
  t.ok(credit?.t === FrameType.ACK && credit.creditPackets < options.queuePacketsMax, 'the slow target\'s packets are taken off the credit');

  // The backend recovers; after the retry-after the agent resends 4 and 7, in order.
  for (const seq of [1, 2, 3]) {
    await until(() => slow.open.includes(seq), `${seq} is in the handler`);
    slow.finish(seq);
  }
  await tr.waitSent(isAckOf(3), 'ACK of 3');
  await g.clock.advance(400);
  send(tr, pkt(4, 'slow'), pkt(7, 'slow'));
  for (const seq of [4, 7]) {
    await until(() => slow.open.includes(seq), `${seq} is in the handler`);
    slow.finish(seq);
  }
  await tr.waitSent(isAckOf(7), 'ACK of 7');
  t.same(slow.calls, [1, 2, 3, 4, 7], 'slow\'s packets were dispatched in seq order');
  t.same(acked(tr, range(1, 8)), range(1, 8));
  t.equal(nacks(tr).length, 2, 'no more refusals');
  t.ok(tr.isOpen);
});

t.test('session - a retryable failure (no retries in place) refuses the packet and those behind it; after the retry-after they go in order', async (t) => {
  const a = new FakeHandler((p, call) => (call === 1 ? retryable(1000) : ok));
  const b = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: 'a', handler: a }, { match: 'b', handler: b }], { retriesInPlace: 0 });
  const tr = g.connect();
  send(tr, pkt(1, 'a'), pkt(2, 'a'), pkt(3, 'b'), pkt(4, 'a'));
  await tr.waitSent(isNackOf(4), 'NACK of 4');
  await tr.waitSent(isAckOf(3), 'ACK of 3');
  t.same(a.calls, [1], '2 and 4 never reached the handler');
  t.same(nacks(tr).map((n) => [n.seq, n.code, n.retryAfterMs]), [[1, ErrorCode.HANDLER_FAILED, 1000], [2, ErrorCode.TARGET_BUSY, 1000], [4, ErrorCode.TARGET_BUSY, 1000]]);
  t.notOk(g.dispatchLog.has(agent, 1));
  t.ok(g.dispatchLog.has(agent, 3), 'b flowed');

  // Too early: refused again.
  await g.clock.advance(999);
  let from = tr.sent.length;
  send(tr, pkt(1, 'a'), pkt(2, 'a'), pkt(4, 'a'));
  await tr.waitSent(isNackOf(4), 'NACK of the early 4', from);
  t.same(a.calls, [1]);
  t.same(nacks(tr).slice(3).map((n) => [n.seq, n.code, n.retryAfterMs]), [[1, ErrorCode.TARGET_BUSY, 1], [2, ErrorCode.TARGET_BUSY, 1], [4, ErrorCode.TARGET_BUSY, 1]]);

  await g.clock.advance(1);
  from = tr.sent.length;
  send(tr, pkt(1, 'a'), pkt(2, 'a'), pkt(4, 'a'));
  await tr.waitSent(isAckOf(4), 'ACK of 4', from);
  t.same(a.calls, [1, 1, 2, 4], 'dispatched in seq order');
  t.equal(tr.sentOf(FrameType.ACK).at(-1)?.seq, 4, 'everything up to 4 is acked');
  t.equal(nacks(tr).length, 6, 'no refusal once due');
});

t.test('session - a slow target\'s packets are taken off the credit of the next ACK', async (t) => {
  const slow = new FakeHandler();
  const fast = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: 'slow', handler: slow }, { match: 'fast', handler: fast }], { queuePacketsMax: 16, queueBytesMax: 10_000, targetSlowMs: 100 });
  const tr = g.connect();
  send(tr, pkt(1, 'slow'), pkt(2, 'slow'), pkt(3, 'slow'), pkt(4, 'fast'));
  const first = (await tr.waitSent(isAckOf(4), 'ACK of 4')) as AckFrame;
  t.equal(first.creditPackets, 16, 'not slow yet: full credit');
  t.equal(first.creditBytes, 10_000);

  await g.clock.advance(101);
  const from = tr.sent.length;
  send(tr, pkt(5, 'fast'));
  const later = (await tr.waitSent(isAckOf(5), 'ACK of 5', from)) as AckFrame;
  // Each packet: 'slow' (4) + '"x"' (3) = 7 bytes.
  t.equal(later.creditPackets, 16 - 3, 'the 3 packets the slow target holds are off the credit');
  t.equal(later.creditBytes, 10_000 - 3 * 7);
});

t.test('session - more un-acked packets than queuePacketsMax: BYE CREDIT_EXCEEDED', async (t) => {
  const hang = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler: hang }], { queuePacketsMax: 4 });
  const tr = g.connect();
  send(tr, pkt(1, 't1'), pkt(2, 't2'), pkt(3, 't3'), pkt(4, 't4'));
  await until(() => hang.calls.length === 4, 'four packets in handlers');
  await turns();
  t.ok(tr.isOpen, 'four, the credit, are fine');
  send(tr, pkt(5, 't5'));
  const bye = tr.sent.at(-1);
  t.match(bye, { t: FrameType.BYE, code: ErrorCode.CREDIT_EXCEEDED });
  t.notOk(tr.isOpen);
  t.equal(codeOf(tr.closedWith), ErrorCode.CREDIT_EXCEEDED);
  t.same(hang.calls, [1, 2, 3, 4], 'the fifth was not taken');
});

t.test('session - more un-acked bytes than queueBytesMax: BYE CREDIT_EXCEEDED; one oversize packet alone is fine', async (t) => {
  const hang = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler: hang }], { queueBytesMax: 20 });
  const tr = g.connect();
  send(tr, { seq: 1, target: 'big', ts: 0, data: 'x'.repeat(50) });
  await until(() => hang.calls.length === 1, 'the big one is in the handler');
  t.ok(tr.isOpen, 'an oversize packet alone is allowed');
  hang.finish(1);
  await tr.waitSent(isAckOf(1), 'ACK of 1');
  send(tr, pkt(2, 't1'), pkt(3, 't2')); // 5 bytes each: 10 of 20
  await until(() => hang.calls.length === 3, 'two more in handlers');
  t.ok(tr.isOpen);
  send(tr, { seq: 4, target: 't3', ts: 0, data: 'x'.repeat(9) }); // 2 + 11 = 13: 23 > 20
  t.match(tr.sent.at(-1), { t: FrameType.BYE, code: ErrorCode.CREDIT_EXCEEDED });
  t.notOk(tr.isOpen);
});

t.test('session - a permanent failure is NACKed without retryAfterMs and not recorded; the target goes on', async (t) => {
  const handler = new FakeHandler((p) => (p.seq === 1 ? permanent : ok));
  const g = await harness(t, [{ match: '#', handler }]);
  const tr = g.connect();
  send(tr, pkt(1, 'a'), pkt(2, 'a'));
  await tr.waitSent(isAckOf(2), 'ACK of 2');
  const n = nacks(tr);
  t.equal(n.length, 1);
  t.same(n[0], { t: FrameType.NACK, seq: 1, code: ErrorCode.HANDLER_REJECTED, message: agentMessage('fake', 'a', ErrorCode.HANDLER_REJECTED, false) }, 'no retryAfterMs; the fixed message, not the handler\'s');
  t.notOk(g.dispatchLog.has(agent, 1), '1 is not recorded as dispatched');
  t.ok(g.dispatchLog.has(agent, 2));
  t.notOk(tr.sentOf(FrameType.ACK).some((a) => covers(a, 1)), '1 is never acked');
  t.same(handler.calls, [1, 2]);
  t.equal(g.counters.rejected, 1);
});

t.test('session - a target with no route is NACKed UNKNOWN_TARGET, for good', async (t) => {
  const handler = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: 'known', handler }]);
  const tr = g.connect();
  send(tr, pkt(1, 'nowhere'));
  const n = (await tr.waitSent(isNackOf(1), 'NACK of 1')) as NackFrame;
  t.equal(n.code, ErrorCode.UNKNOWN_TARGET);
  t.notOk('retryAfterMs' in n, 'permanent');
  t.same(handler.calls, []);
  t.notOk(g.dispatchLog.has(agent, 1));
  t.ok(tr.isOpen);
});

t.test('session - a packet whose data is over packetBytesMax is NACKed DATA_TOO_LARGE, for good, without reaching the handler', async (t) => {
  const handler = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: '#', handler }], { packetBytesMax: 10 });
  const tr = g.connect();
  send(tr, { seq: 1, target: 'a', ts: 0, data: 'x'.repeat(9) }, { seq: 2, target: 'a', ts: 0, data: 'x'.repeat(8) }); // 11 and 10 bytes of JSON text
  await tr.waitSent(isAckOf(2), 'ACK of 2');
  t.same(nacks(tr).map((n) => [n.seq, n.code, 'retryAfterMs' in n]), [[1, ErrorCode.DATA_TOO_LARGE, false]]);
  t.same(handler.calls, [2], 'only the one within the limit was handed over');
  t.notOk(g.dispatchLog.has(agent, 1));
  t.ok(tr.isOpen);
});

t.test('session - PING with ackedSeq gets a PONG and raises the dispatch log\'s floor', async (t) => {
  const g = await harness(t, [{ match: '#', handler: new FakeHandler(() => ok) }]);
  await g.dispatchLog.record(agent, 8);
  const tr = g.connect();
  tr.deliver({ t: FrameType.PING, id: 41, ackedSeq: 5 });
  t.same(tr.sent.at(-1), { t: FrameType.PONG, id: 41 });
  t.equal(g.dispatchLog.floor(agent), 5);
  tr.deliver({ t: FrameType.PING, id: 42, ackedSeq: 7 });
  t.same(tr.sent.at(-1), { t: FrameType.PONG, id: 42 });
  t.equal(g.dispatchLog.floor(agent), 8, 'raised to 7, and the recorded 8 joins it');
  tr.deliver({ t: FrameType.PING, id: 43 });
  t.same(tr.sent.at(-1), { t: FrameType.PONG, id: 43 });
  t.equal(g.dispatchLog.floor(agent), 8, 'a PING without ackedSeq changes nothing');
});

t.test('session - a retryable failure within retryInPlaceMsMax is retried in place after its retry-after, and acked with no NACK', async (t) => {
  const handler = new FakeHandler((_p, call) => (call === 1 ? retryable(300) : ok));
  const g = await harness(t, [{ match: '#', handler }], { retriesInPlace: 1, retryInPlaceMsMax: 1000 });
  const tr = g.connect();
  send(tr, pkt(1, 'a'), pkt(2, 'a'));
  await until(() => handler.calls.length === 1, 'first call');
  await turns();
  t.same(handler.calls, [1], 'the retry waits for its retry-after, and 2 waits behind 1');
  await g.clock.advance(299);
  await turns();
  t.same(handler.calls, [1], 'not before 300 ms');
  await g.clock.advance(1);
  await tr.waitSent(isAckOf(2), 'ACK of 2');
  t.same(handler.calls, [1, 1, 2], 'retried, then the next');
  t.same(nacks(tr), [], 'the agent never heard of the failure');
  t.ok(g.dispatchLog.has(agent, 1));
});

t.test('session - a packet a previous session of the agent is still dispatching is waited for, not dispatched again', async (t) => {
  const handler = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler }]);
  const old = g.connect();
  send(old, pkt(1, 'a'));
  await until(() => handler.calls.length === 1, 'the old session handed 1 over');
  old.close(new FerryError(ErrorCode.SESSION_REPLACED, 'replaced'));

  const tr = g.connect();
  t.equal(tr.sentOf(FrameType.WELCOME)[0]?.dispatchedSeq, 0);
  send(tr, pkt(1, 'a'));
  await turns(20);
  t.same(handler.calls, [1], 'the new session does not hand 1 over again');
  t.same(tr.sentOf(FrameType.ACK), [], 'nor ack it before the outcome');
  handler.finish(1);
  const a = (await tr.waitSent(isAckOf(1), 'ACK of 1 on the new session')) as AckFrame;
  t.equal(a.seq, 1);
  t.same(handler.calls, [1], 'dispatched once');
  t.same(old.sentOf(FrameType.ACK), [], 'the old, closed session sent nothing');
});

t.test('session - when the earlier dispatch failed, the redispatch by the next session is still guarded from a third', async (t) => {
  const handler = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler }]);
  const s1 = g.connect();
  send(s1, pkt(1, 'a'));
  await until(() => handler.calls.length === 1, 'session 1 handed 1 over');
  s1.close(new FerryError(ErrorCode.SESSION_REPLACED, 'replaced'));

  const s2 = g.connect();
  send(s2, pkt(1, 'a'));
  await turns();
  handler.finish(1, retryable(1000)); // session 1's attempt failed: session 2 must dispatch it itself
  await until(() => handler.calls.length === 2, 'session 2 handed 1 over');
  t.ok(g.deps.inDispatch.get(agent)?.has(1), 'session 2\'s attempt is registered in the shared inDispatch map');
  s2.close(new FerryError(ErrorCode.SESSION_REPLACED, 'replaced'));

  const s3 = g.connect();
  send(s3, pkt(1, 'a'));
  await turns(20);
  t.equal(handler.open.length, 1, `one call of 1 in the handler at a time (open: ${handler.open.join(',')})`);
  t.same(handler.calls, [1, 1], 'session 3 waits for session 2\'s attempt');
  for (const seq of handler.open) handler.finish(seq);
  await s3.waitSent(isAckOf(1), 'ACK of 1 on session 3');
  t.same(handler.calls, [1, 1], 'and then acks it without a third call');
});

t.test('session - a retry in place happens even when its timer fires early or late', async (t) => {
  for (const [name, clock] of [['early', JitterClock.early(1)], ['late', JitterClock.late(200)]] as const) {
    const handler = new FakeHandler((_p, call) => (call === 1 ? retryable(300) : ok));
    const g = await harness(t, [{ match: '#', handler }], { retriesInPlace: 1, retryInPlaceMsMax: 1000 }, clock);
    const tr = g.connect();
    send(tr, pkt(1, 'a'), pkt(2, 'a'));
    await until(() => handler.calls.length === 1, 'first call');
    for (let i = 0; i < 20; i++) {
      clock.advance(50);
      await turns();
    }
    await tr.waitSent(isAckOf(2), `ACK of 2 (${name} timers)`);
    t.same(handler.calls, [1, 1, 2], `${name} timers: retried, then the next`);
    t.ok(name === 'early' ? clock.early > 0 : clock.late > 0, `the clock did fire ${name}`);
  }
});

t.test('session - a closed session hands none of its queued packets to the handler', async (t) => {
  const handler = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler }]);
  const tr = g.connect();
  send(tr, pkt(1, 'a'), pkt(2, 'a'), pkt(3, 'a'));
  await until(() => handler.calls.length === 1, '1 in the handler');
  tr.close(new FerryError(ErrorCode.SESSION_REPLACED, 'replaced'));
  await turns();
  handler.finish(1);
  await until(() => g.dispatchLog.has(agent, 1), 'what was in the handler is still recorded');
  await turns(20);
  t.same(handler.calls, [1], '2 and 3 stay with the agent, which sends them again');
  await until(() => g.deps.inDispatch.size === 0, 'nothing left in dispatch');
});

t.test('session - a seq another session recorded while it waited in this lane is acked, not dispatched again', async (t) => {
  const handler = new FakeHandler();
  const g = await harness(t, [{ match: '#', handler }]);
  const s1 = g.connect();
  send(s1, pkt(1, 'a'), pkt(2, 'a'));
  await until(() => handler.calls.length === 1, 'session 1 handed 1 over; 2 waits in its lane');
  // A second session of the agent (both open: the old one has not noticed yet) dispatches 2 first.
  const s2 = g.connect();
  send(s2, pkt(2, 'a'));
  await turns(20);
  t.same(handler.calls, [1], 'session 2 waits while session 1 has a packet of the target in the handler (order across sessions)');
  handler.finish(1);
  await until(() => handler.calls.length === 2, 'then one of them hands 2 over');
  handler.finish(2);
  await s2.waitSent(isAckOf(2), 'ACK of 2 on session 2');
  await s1.waitSent(isAckOf(2), 'ACK of 2 on session 1');
  t.ok(g.dispatchLog.has(agent, 2));
  t.same(handler.calls, [1, 2], 'the other found 2 in the dispatch log and did not call the handler again');
});

// Issue 9, case 10: a packet over a packet limit, inside a frame the gateway could read, is
// refused on its own (a permanent NACK, so the agent dead-letters it), never by closing the session.
/** `levels` arrays, one inside the other. */
const nestedData = (levels: number): Packet['data'] => {
  let v: Packet['data'] = [];
  for (let i = 1; i < levels; i++) v = [v];
  return v;
};

t.test('session - a packet nested deeper than packetDepthMax is NACKed DATA_TOO_DEEP alone, for good; the packets after it are dispatched', async (t) => {
  const handler = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: '#', handler }], { packetDepthMax: 8 });
  const tr = g.connect();
  send(tr, pkt(1, 'a'), { seq: 2, target: 'a', ts: 0, data: nestedData(9) }, { seq: 3, target: 'a', ts: 0, data: nestedData(8) });
  await tr.waitSent(isAckOf(3), 'ACK of 3');
  t.same(nacks(tr).map((n) => [n.seq, n.code, 'retryAfterMs' in n]), [[2, ErrorCode.DATA_TOO_DEEP, false]]);
  t.same(handler.calls, [1, 3], 'the one within the limit (8 levels) was handed over, the deeper one not');
  t.notOk(g.dispatchLog.has(agent, 2));
  t.ok(tr.isOpen, 'the session stays open');
  send(tr, pkt(4, 'a'));
  await tr.waitSent(isAckOf(4), 'ACK of 4');
  t.same(handler.calls, [1, 3, 4]);
});

t.test('session - the default packetDepthMax is the agent\'s: 32 levels pass, the issue\'s 40 are NACKed', async (t) => {
  const handler = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: '#', handler }]);
  const tr = g.connect();
  send(tr, { seq: 1, target: 'a/b', ts: 0, data: nestedData(40) }, { seq: 2, target: 'a/b', ts: 0, data: nestedData(32) });
  await tr.waitSent(isAckOf(2), 'ACK of 2');
  t.same(nacks(tr).map((n) => [n.seq, n.code]), [[1, ErrorCode.DATA_TOO_DEEP]]);
  t.same(handler.calls, [2]);
  t.ok(tr.isOpen);
});

t.test('session - a packet whose target breaks the target rule is NACKed TARGET_INVALID alone, for good', async (t) => {
  const handler = new FakeHandler(() => ok);
  const g = await harness(t, [{ match: '#', handler }]);
  const tr = g.connect();
  send(tr, pkt(1, 'a\nb'), pkt(2, 'é'.repeat(128)), pkt(3, ''), pkt(4, 'a'));
  await tr.waitSent(isAckOf(4), 'ACK of 4');
  t.same(nacks(tr).map((n) => [n.seq, n.code, 'retryAfterMs' in n]), [[1, ErrorCode.TARGET_INVALID, false], [2, ErrorCode.TARGET_INVALID, false], [3, ErrorCode.TARGET_INVALID, false]]);
  t.same(handler.calls, [4]);
  t.ok(tr.isOpen);
});

t.test('session - WELCOME names the gateway\'s frameBytesMax, dataBytesMax and dataDepthMax', async (t) => {
  const g = await harness(t, [{ match: '#', handler: new FakeHandler(() => ok) }], { packetBytesMax: 1000, packetDepthMax: 8, frameBytesMax: 4096 });
  const tr = g.connect();
  t.match(tr.sentOf(FrameType.WELCOME)[0], { frameBytesMax: 4096, dataBytesMax: 1000, dataDepthMax: 8 });
});
