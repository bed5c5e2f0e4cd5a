/**
 * The agent's downlink inbox (agent/downlink/inbox.ts) with fakes for the session, the consumer
 * and the clock, and the real answered log (agent/downlink/answered-log.ts) over SimDisk where a
 * restart matters: order, the window, repeats answered from the record (also across a restart),
 * expiry, a verdict that cannot be recorded (tried again until it is).
 */
import t from 'tap';
import { DurableAnsweredLog } from '../../agent/downlink/answered-log.js';
import { MemoryAnsweredLog, type AnsweredLog, type DownlinkConsumer, type DownlinkMessage, type Verdict } from '../../agent/downlink/consumer.js';
import { DownlinkInbox, recordRetryMs, type InboxOptions } from '../../agent/downlink/inbox.js';
import type { Clock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { FrameType, type DownMessage, type DownResult, type Frame } from '../../protocol/frames.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';
import { until } from '../helpers/wait.js';
import { FakeClock } from './fixtures/fake-clock.js';

const opts: InboxOptions = { messagesMax: 4, bytesMax: 64 * 1024, limits: { dataBytesMax: 1024, dataDepthMax: 8 } };
const down = (...messages: DownMessage[]): Frame & { t: typeof FrameType.DOWN } => ({ t: FrameType.DOWN, messages });
const m = (id: string, extra: Partial<DownMessage> = {}): DownMessage => ({ id, target: 'cmd/x', data: `do ${id}`, ts: 1_700_000_000_000, ...extra });

function fakeClock(): Clock & { advance(ms: number): void } {
  let now = 1_000_000;
  return { now: () => now, setTimeout: () => 0, clearTimeout: () => undefined, advance: (ms) => void (now += ms) };
}

/** A session that records what the inbox sends; `close` ends it the way the link does. */
function fakeSession(): { sent: Frame[]; closedWith: Error | null; send(f: Frame): void; close(err: Error): void; results(): DownResult[] } {
  const s = {
    sent: [] as Frame[],
    closedWith: null as Error | null,
    send: (f: Frame) => void s.sent.push(f),
    close: (err: Error) => void (s.closedWith = err),
    results: () => s.sent.flatMap((f) => (f.t === FrameType.DOWN_ACK ? f.results : [])),
  };
  return s;
}

/**
 * A consumer that records what it is handed and answers when told (`answer(id, verdict)`), or at
 * once with `auto`. It also checks that it never holds two messages at once.
 */
function fakeConsumer(auto?: (msg: DownlinkMessage) => Verdict): DownlinkConsumer & { handed: DownlinkMessage[]; answer(id: string, v?: Verdict): void; overlaps: number } {
  const waiting = new Map<string, (v: Verdict) => void>();
  const c = {
    handed: [] as DownlinkMessage[],
    overlaps: 0,
    deliver: (msg: DownlinkMessage): Promise<Verdict> => {
      c.handed.push(msg);
      if (waiting.size > 0) c.overlaps++;
      if (auto) return Promise.resolve(auto(msg));
      return new Promise((r) => waiting.set(msg.id, r));
    },
    answer: (id: string, v: Verdict = { ok: true }) => {
      const r = waiting.get(id);
      if (!r) throw new Error(`${id} is not with the consumer`);
      waiting.delete(id);
      r(v);
    },
  };
  return c;
}

function inboxWith(consumer: DownlinkConsumer | undefined, answered: AnsweredLog = new MemoryAnsweredLog(100), clock = fakeClock(), o: InboxOptions = opts): DownlinkInbox {
  return new DownlinkInbox(o, { route: (target) => (target.startsWith('cmd/') ? consumer : undefined), answered, clock, log: silentLog });
}

t.test('inbox - messages go to the consumer one at a time, in order; verdicts come back in DOWN_ACKs in order', async (t) => {
  const consumer = fakeConsumer();
  const inbox = inboxWith(consumer);
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('a'), m('b')));
  inbox.onDown(down(m('c')));
  await until(() => consumer.handed.length === 1, 'a handed on');
  t.same(inbox.stats().waiting, 3);
  consumer.answer('a');
  await until(() => consumer.handed.length === 2, 'b handed on');
  consumer.answer('b', { ok: false, code: 'DOWNLINK_REFUSED', reason: 'no' });
  await until(() => consumer.handed.length === 3, 'c handed on');
  consumer.answer('c');
  await until(() => s.results().length === 3, 'three answers');
  t.same(consumer.handed.map((x) => x.id), ['a', 'b', 'c']);
  t.equal(consumer.overlaps, 0, 'never two at once');
  t.same(s.results(), [{ id: 'a', ok: true }, { id: 'b', ok: false, code: 'DOWNLINK_REFUSED', reason: 'no' }, { id: 'c', ok: true }]);
  t.same(inbox.stats(), { accepted: 2, refused: { DOWNLINK_REFUSED: 1 }, repeats: 0, waiting: 0 });
});

t.test('inbox - more than the window (messages) ends the session with CREDIT_EXCEEDED; nothing of the excess is handed on', async (t) => {
  const consumer = fakeConsumer();
  const inbox = inboxWith(consumer, undefined, undefined, { ...opts, messagesMax: 2 });
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('a')));
  await until(() => consumer.handed.length === 1, 'a with the consumer');
  // a (with the consumer) + b fill the window of 2; c is past it.
  inbox.onDown(down(m('b'), m('c')));
  t.match(s.sent.at(-1), { t: FrameType.BYE, code: 'CREDIT_EXCEEDED' });
  t.match(s.closedWith, { code: 'CREDIT_EXCEEDED' });
  inbox.sessionEnded(); // as the link does when the session closes
  consumer.answer('a');
  await inbox.close();
  t.same(consumer.handed.map((x) => x.id), ['a'], 'b and c were dropped with the session (the gateway sends them again)');
});

t.test('inbox - the byte window: one large message may come alone, not beside another', async (t) => {
  const consumer = fakeConsumer((): Verdict => ({ ok: true }));
  const small = { ...opts, bytesMax: 100, limits: { dataBytesMax: 4096, dataDepthMax: 8 } };
  const inbox = inboxWith(consumer, undefined, undefined, small);
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('big', { data: 'x'.repeat(500) })));
  await until(() => s.results().length === 1, 'the big one answered');
  t.same(s.results(), [{ id: 'big', ok: true }], 'alone, over the byte window: taken');
  inbox.onDown(down(m('s1', { data: 'x'.repeat(40) }), m('s2', { data: 'x'.repeat(60) })));
  t.match(s.sent.at(-1), { t: FrameType.BYE, code: 'CREDIT_EXCEEDED' }, 'two that together pass it: the gateway broke the window');
});

t.test('inbox - a message sent again is answered from the record and not handed on twice', async (t) => {
  const consumer = fakeConsumer((msg) => (msg.id === 'r' ? { ok: false, code: 'DOWNLINK_REFUSED', reason: 'bad' } : { ok: true }));
  const inbox = inboxWith(consumer);
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('a'), m('r')));
  await until(() => s.results().length === 2, 'answers');
  // The DOWN_ACK was lost: a new session, the gateway sends both again, and a new one.
  inbox.sessionEnded();
  const s2 = fakeSession();
  inbox.open(s2);
  inbox.onDown(down(m('a'), m('r'), m('n')));
  await until(() => s2.results().length === 3, 'answers again');
  t.same(consumer.handed.map((x) => x.id), ['a', 'r', 'n'], 'each handed on once');
  t.same(s2.results(), [{ id: 'a', ok: true }, { id: 'r', ok: false, code: 'DOWNLINK_REFUSED', reason: 'bad' }, { id: 'n', ok: true }], 'the same verdicts as the first time');
  t.equal(inbox.stats().repeats, 2);
});

t.test('inbox - across a restart: a new inbox over the same answered-log file answers repeats from it', async (t) => {
  const disk = new SimDisk({ rng: new Rng(12).fn });
  const open = (): Promise<DurableAnsweredLog> => DurableAnsweredLog.open({ dir: '/data/downlink', files: disk.process('agent'), idsMax: 16, log: silentLog });
  const first = fakeConsumer((msg) => (msg.id === 'r' ? { ok: false, code: 'DOWNLINK_REFUSED', reason: 'bad' } : { ok: true }));
  const log1 = await open();
  const inbox1 = inboxWith(first, log1);
  const s1 = fakeSession();
  inbox1.open(s1);
  inbox1.onDown(down(m('a'), m('r')));
  await until(() => s1.results().length === 2, 'answers');
  // The agent dies (power cut) before the DOWN_ACK reached the gateway.
  disk.powerCut();
  const second = fakeConsumer(() => ({ ok: true }));
  const inbox2 = inboxWith(second, await open());
  const s2 = fakeSession();
  inbox2.open(s2);
  inbox2.onDown(down(m('a'), m('r'), m('n')));
  await until(() => s2.results().length === 3, 'answers after the restart');
  t.same(second.handed.map((x) => x.id), ['n'], 'only the new one reaches the consumer');
  t.same(s2.results(), [{ id: 'a', ok: true }, { id: 'r', ok: false, code: 'DOWNLINK_REFUSED', reason: 'bad' }, { id: 'n', ok: true }]);
});

t.test('inbox - a message past its ttl (counted from its arrival) is refused DOWNLINK_EXPIRED, never handed on', async (t) => {
  const clock = fakeClock();
  const consumer = fakeConsumer();
  const inbox = inboxWith(consumer, undefined, clock);
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('slow'), m('short', { ttlMs: 100 }), m('long', { ttlMs: 10_000 })));
  await until(() => consumer.handed.length === 1, 'slow with the consumer');
  clock.advance(500); // the consumer takes 500 ms over the first
  consumer.answer('slow');
  await until(() => consumer.handed.length === 2, 'long handed on');
  consumer.answer('long');
  await until(() => s.results().length === 3, 'three answers');
  t.same(consumer.handed.map((x) => x.id), ['slow', 'long'], 'the expired one was never handed on');
  t.match(s.results()[1], { id: 'short', ok: false, code: 'DOWNLINK_EXPIRED' });
  t.equal(inbox.stats().refused.DOWNLINK_EXPIRED, 1, 'counted');
  // Sent again (its DOWN_ACK lost): still refused from the record, still not handed on.
  inbox.onDown(down(m('short', { ttlMs: 100_000 })));
  await until(() => s.results().length === 4, 'answered again');
  t.match(s.results()[3], { id: 'short', ok: false, code: 'DOWNLINK_EXPIRED' });
  t.same(consumer.handed.map((x) => x.id), ['slow', 'long']);
});

t.test('inbox - a verdict that cannot be recorded is tried again until it is, then answered; the next message waits for it', async (t) => {
  const consumer = fakeConsumer(() => ({ ok: true }));
  const mem = new MemoryAnsweredLog(100);
  let failFor = 'b';
  const answered: AnsweredLog = {
    get: (id) => mem.get(id),
    record: (r) => (r.id === failFor ? Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) : mem.record(r)),
    get size() {
      return mem.size;
    },
    close: () => mem.close(),
  };
  const clock = new FakeClock();
  const inbox = inboxWith(consumer, answered, clock);
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('a'), m('b'), m('c')));
  await until(() => s.results().length === 1 && clock.pendingTimers === 1, 'a answered, b waiting to be recorded again');
  t.same(consumer.handed.map((x) => x.id), ['a', 'b'], 'c waits behind b');
  clock.advance(recordRetryMs);
  await until(() => clock.pendingTimers === 1, 'b failed again');
  t.same(s.results().map((r) => r.id), ['a'], 'b is not answered unrecorded');
  failFor = '';
  clock.advance(recordRetryMs);
  await until(() => s.results().length === 3, 'b and c answered');
  t.same(s.results().map((r) => r.id), ['a', 'b', 'c'], 'b answered once recorded, then c');
  t.same(consumer.handed.map((x) => x.id), ['a', 'b', 'c'], 'b was handed on once');
  t.ok(answered.get('b'), 'b is recorded');
  await inbox.close();
});

t.test('inbox - no route: DOWNLINK_NO_ROUTE; too large: DOWNLINK_INVALID; neither reaches a consumer', async (t) => {
  const consumer = fakeConsumer(() => ({ ok: true }));
  const inbox = inboxWith(consumer);
  const s = fakeSession();
  inbox.open(s);
  inbox.onDown(down(m('x', { target: 'nowhere/y' }), m('big', { data: 'x'.repeat(2000) })));
  await until(() => s.results().length === 2, 'answers');
  t.match(s.results(), [{ id: 'x', ok: false, code: 'DOWNLINK_NO_ROUTE' }, { id: 'big', ok: false, code: 'DOWNLINK_INVALID' }]);
  t.same(consumer.handed, []);
});

t.test('inbox - a target that breaks the shared ID rule (protocol/ids.ts) is refused with DOWNLINK_INVALID before any route or consumer', async (t) => {
  const consumer = fakeConsumer(() => ({ ok: true }));
  const inbox = inboxWith(consumer, new MemoryAnsweredLog(100), fakeClock(), { ...opts, messagesMax: 16 });
  const s = fakeSession();
  inbox.open(s);
  // Each would reach an exec consumer's FERRY_TARGET, a serial line or a local subscriber unchecked.
  const bad = ['cmd/x\uFFFF', 'cmd/\uFDD0', 'cmd/a\u0000b', 'cmd/\u001b[2J', 'cmd/\uD800', 'cmd/+', 'cmd/#', '..', '.', '', `cmd/${'x'.repeat(300)}`];
  inbox.onDown(down(...bad.map((target, i) => m(`bad${i}`, { target })), m('good', { target: 'cmd/ok' })));
  await until(() => s.results().length === bad.length + 1, 'answers');
  t.same(s.results().slice(0, bad.length).map((r) => (r.ok ? 'ok' : r.code)), bad.map(() => 'DOWNLINK_INVALID'), 'every bad target refused with DOWNLINK_INVALID');
  t.match(s.results()[bad.length], { id: 'good', ok: true }, 'a good message behind them still goes through');
  t.same(consumer.handed.map((x) => x.target), ['cmd/ok'], 'no bad target reached the consumer');
});

t.test('inbox - a message with its consumer when the session ends is recorded; sent again meanwhile, it is answered from the record', async (t) => {
  const consumer = fakeConsumer();
  const inbox = inboxWith(consumer);
  const s1 = fakeSession();
  inbox.open(s1);
  inbox.onDown(down(m('a'), m('b')));
  await until(() => consumer.handed.length === 1, 'a with the consumer');
  inbox.sessionEnded();
  // The gateway sends both again on the next session while a is still with its consumer.
  const s2 = fakeSession();
  inbox.open(s2);
  inbox.onDown(down(m('a'), m('b')));
  consumer.answer('a');
  await until(() => consumer.handed.length === 2, 'b handed on');
  consumer.answer('b');
  await until(() => s2.results().length === 2, 'both answered on the new session');
  t.same(s1.results(), [], 'nothing went out on the ended session');
  t.same(consumer.handed.map((x) => x.id), ['a', 'b'], 'a was not handed on twice');
});
