/**
 * The agent's Link (agent/link/link.ts) against a scripted gateway: the test dials in-memory
 * transports, reads the frames the link sent and answers them by hand. Time is a FakeClock; the
 * store is a real SegmentStore (sync 'none') in a test directory, wrapped only to count its
 * reads, so a test can wait until the link has nothing more to do before it asserts that the
 * link sent nothing more.
 */
import t from 'tap';
import { Link, type LinkOptions } from '../../agent/link/link.js';
import { SegmentStore } from '../../agent/store/segment-store.js';
import type { DeadLetter, PacketStore, StoreStats } from '../../agent/store/store.js';
import { silentLog } from '../../common/log.js';
import { encodeFrame, frameHeaderBytes } from '../../protocol/codec.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type AckFrame, type NackFrame, type WelcomeFrame } from '../../protocol/frames.js';
import type { NewPacket, Packet } from '../../protocol/packet.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { LongPollRefusal } from '../../agent/link/longpoll-refusal.js';
import { FakeClock } from './fixtures/fake-clock.js';
import { JitterClock } from '../helpers/jitter-clock.js';
import { turn, until } from '../helpers/wait.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];



/** The SegmentStore, with a count of calls still running, so a test can tell when the link is idle. */
class CountingStore implements PacketStore {
  pending = 0;
  /** this many reads from now on fail with EIO, as a bad sector would */
  failReads = 0;
  reads = 0;
  constructor(readonly inner: SegmentStore) {}
  private track<T>(p: Promise<T>): Promise<T> {
    this.pending++;
    return p.finally(() => this.pending--);
  }
  append(p: NewPacket): Promise<Packet> { return this.track(this.inner.append(p)); }
  readAfter(seq: number, countMax: number): Promise<Packet[]> {
    this.reads++;
    if (this.failReads > 0) {
      this.failReads--;
      return this.track(Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })));
    }
    return this.track(this.inner.readAfter(seq, countMax));
  }
  ack(seq: number): Promise<void> { return this.track(this.inner.ack(seq)); }
  ackOne(seq: number, to?: number): Promise<void> { return this.track(this.inner.ackOne(seq, to)); }
  deadLetter(p: Packet, code: string, message: string): Promise<void> { return this.track(this.inner.deadLetter(p, code, message)); }
  deadLetters(): Promise<DeadLetter[]> { return this.track(this.inner.deadLetters()); }
  requeueDeadLetters(): Promise<number> { return this.track(this.inner.requeueDeadLetters()); }
  onAppend(listener: () => void): void { this.inner.onAppend(listener); }
  advanceSeq(seq: number): Promise<void> { return this.track(this.inner.advanceSeq(seq)); }
  renumberAbove(seq: number): Promise<number> { return this.track(this.inner.renumberAbove(seq)); }
  stats(): StoreStats { return this.inner.stats(); }
  highestIssuedSeq(): number { return this.inner.highestIssuedSeq(); }
  close(): Promise<void> { return this.inner.close(); }
}

const defaults: LinkOptions = {
  agentId: 'pi-1', token: 'tok-1', inflightPacketsMax: 1000, framePacketsMax: 100, frameBytesMax: 1_000_000,
  retryPacketsMax: 1000, retryBytesMax: 1_000_000, reconnectDelayMsMin: 100, reconnectDelayMsMax: 60_000,
  // Long enough that no liveness timer fires unless a test is about it.
  helloTimeoutMs: 1e9, pingIntervalMs: 1e8, peerTimeoutMs: 1e9,
};

/** 1-byte target + 10 bytes of data: 11 credit bytes per packet. */
const small = (target = 'a'): NewPacket => ({ target, ts: 0, data: new Uint8Array(10) });

/**
 * A link over a real store and a scripted gateway. `preload` packets are stored before the link
 * starts; `dial` hands out a new MemoryTransport per call (all kept in `dials`).
 */
async function harness(t: Test, opts: Partial<LinkOptions> = {}, preload: NewPacket[] = [], clock: FakeClock | JitterClock = new FakeClock(), fresh = false) {
  // Acks reach the disk 1 ms (of this clock) after they change: only then are they told to the gateway.
  const inner = await SegmentStore.open({ dir: t.testdir(), sync: 'none', clock, ackFlushMs: 1 });
  const store = new CountingStore(inner);
  for (const p of preload) await store.append(p);
  // The store has met a gateway before (one that knew no seq of it): it is not fresh, so a WELCOME
  // naming seqs it issued is taken at its word (a fresh store renumbers first: tested below).
  if (!fresh) await inner.renumberAbove(0);
  const dials: MemoryTransport[] = [];
  const link = new Link({ ...defaults, ...opts }, {
    store, clock, rng: () => 0.5, log: silentLog,
    dial: async () => {
      const tr = new MemoryTransport();
      dials.push(tr);
      return tr;
    },
  });
  t.teardown(async () => {
    await link.stop();
    await inner.close();
  });
  const h = {
    clock, store, inner, link, dials,
    /** The transport of the latest dial. */
    get tr(): MemoryTransport {
      const tr = dials[dials.length - 1];
      if (!tr) throw new Error('the link has not dialed');
      return tr;
    },
    /** Waits until the link has no store read (or other store call) running, and a few turns more. */
    async idle(): Promise<void> {
      for (let quiet = 0; quiet < 3;) {
        await turn();
        quiet = store.pending === 0 ? quiet + 1 : 0;
      }
    },
    /** Waits for dial number `n` (1-based) and its HELLO. */
    async dialed(n: number): Promise<MemoryTransport> {
      await until(() => dials.length >= n && dials[n - 1]!.sent.length > 0, `dial ${n} sent HELLO`);
      return dials[n - 1]!;
    },
    /** Starts the link and answers its HELLO with a WELCOME. */
    async connect(w: Partial<WelcomeFrame> = {}): Promise<MemoryTransport> {
      const n = dials.length + 1;
      link.start();
      const tr = await h.dialed(n);
      h.welcome(tr, w);
      await h.idle();
      return tr;
    },
    /**
     * Drops the current connection (`err`: how), lets the back-off run out and answers the next
     * HELLO with `w`; returns the new transport.
     */
    async reconnect(err?: Error, w: Partial<WelcomeFrame> = {}): Promise<MemoryTransport> {
      const n = dials.length + 1;
      h.tr.close(err);
      await until(() => link.stats().state === 'backoff', 'the link is backing off');
      await h.advance(defaults.reconnectDelayMsMax);
      const tr = await h.dialed(n);
      h.welcome(tr, w);
      await h.idle();
      return tr;
    },
    welcome(tr: MemoryTransport, w: Partial<WelcomeFrame> = {}): void {
      tr.deliver({ t: FrameType.WELCOME, session: `s${dials.length}`, dispatchedSeq: 0, creditPackets: 1000, creditBytes: 1_000_000, ...w });
    },
    async ack(a: Omit<AckFrame, 't' | 'creditPackets' | 'creditBytes'> & Partial<AckFrame>): Promise<void> {
      h.tr.deliver({ t: FrameType.ACK, creditPackets: 1000, creditBytes: 1_000_000, ...a });
      await h.idle();
    },
    async nack(n: Omit<NackFrame, 't' | 'message'>): Promise<void> {
      h.tr.deliver({ t: FrameType.NACK, message: 'test refusal', ...n });
      await h.idle();
    },
    async advance(ms: number): Promise<void> {
      clock.advance(ms);
      await h.idle();
    },
    /** Lets the store write its ack state (1 ms of this clock) and waits until it is on disk: only then is it told to the gateway. */
    async persisted(): Promise<void> {
      clock.advance(1);
      await until(() => store.stats().durableAckedSeq === store.stats().ackedSeq, 'the ack state is on disk');
      await h.idle();
    },
  };
  return h;
}

/** The seqs of every DATA packet sent on `tr`, in order. */
const sentSeqs = (tr: MemoryTransport): number[] => tr.sentOf(FrameType.DATA).flatMap((f) => f.packets.map((p) => p.seq));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const codeOf = (e: Error | undefined | null): string | undefined => (e as FerryError | undefined | null)?.code;

t.test('link - HELLO carries version 2, the agent ID, the token and the store\'s ackedSeq', async (t) => {
  const h = await harness(t, {}, range(1, 5).map(() => small()));
  await h.store.ack(3);
  await h.persisted();
  h.link.start();
  const tr = await h.dialed(1);
  t.same(tr.sent[0], { t: FrameType.HELLO, version: 2, agent: 'pi-1', token: 'tok-1', ackedSeq: 3 });
  t.equal(tr.sent.length, 1, 'nothing but HELLO before the WELCOME');
});

t.test('link - at most creditPackets in flight; a lower credit stops sending until enough is acked; a higher one sends more', async (t) => {
  const h = await harness(t, {}, range(1, 12).map(() => small()));
  const tr = await h.connect({ creditPackets: 3 });
  t.same(sentSeqs(tr), [1, 2, 3], 'WELCOME credit 3: three packets');
  t.equal(h.link.stats().inflightPackets, 3);

  await h.ack({ seq: 1, creditPackets: 1 });
  t.same(sentSeqs(tr), [1, 2, 3], 'credit 1 with 2 in flight: nothing more');
  await h.ack({ seq: 2, creditPackets: 1 });
  t.same(sentSeqs(tr), [1, 2, 3], 'credit 1 with 1 in flight: nothing more');
  await h.ack({ seq: 3, creditPackets: 1 });
  t.same(sentSeqs(tr), [1, 2, 3, 4], 'credit 1 with none in flight: one more');

  await h.ack({ seq: 3, creditPackets: 5 });
  t.same(sentSeqs(tr), range(1, 8), 'credit raised to 5 with 1 in flight: four more');
  t.equal(h.link.stats().inflightPackets, 5);
  t.equal(h.link.stats().creditPackets, 5);
});

t.test('link - the agent\'s own inflightPacketsMax bounds what is in flight whatever the credit', async (t) => {
  const h = await harness(t, { inflightPacketsMax: 2 }, range(1, 5).map(() => small()));
  const tr = await h.connect({ creditPackets: 100 });
  t.same(sentSeqs(tr), [1, 2]);
  await h.ack({ seq: 1 });
  t.same(sentSeqs(tr), [1, 2, 3]);
});

t.test('link - at most creditBytes in flight (target length + data size); more when acked or raised', async (t) => {
  // Each packet: target 'a' (1) + 10 bytes = 11; a JSON value counts as its JSON text.
  const json: NewPacket = { target: 'bb', ts: 0, data: { k: 'v' } }; // 2 + '{"k":"v"}' (9) = 11
  const h = await harness(t, {}, [small(), json, small(), small(), small(), small()]);
  const tr = await h.connect({ creditBytes: 25 });
  t.same(sentSeqs(tr), [1, 2], '22 bytes fit in 25, 33 do not');
  await h.ack({ seq: 1, creditBytes: 25 });
  t.same(sentSeqs(tr), [1, 2, 3], 'one acked: room for one more');
  await h.ack({ seq: 1, creditBytes: 22 });
  t.same(sentSeqs(tr), [1, 2, 3], '22 bytes in flight fill a credit of 22');
  await h.ack({ seq: 1, creditBytes: 1000 });
  t.same(sentSeqs(tr), range(1, 6), 'raised: the rest go');
});

t.test('link - a packet larger than creditBytes goes alone when nothing is in flight, and holds back the next', async (t) => {
  const big: NewPacket = { target: 'a', ts: 0, data: new Uint8Array(200) };
  const h = await harness(t, {}, [small(), big, small()]);
  const tr = await h.connect({ creditBytes: 50 });
  t.same(sentSeqs(tr), [1], 'the big one waits while something is in flight');
  await h.ack({ seq: 1, creditBytes: 50 });
  t.same(sentSeqs(tr), [1, 2], 'alone, it goes');
  await h.ack({ seq: 1, creditBytes: 50 });
  t.same(sentSeqs(tr), [1, 2], 'nothing joins it while it is in flight');
  await h.ack({ seq: 2, creditBytes: 50 });
  t.same(sentSeqs(tr), [1, 2, 3]);
});

t.test('link - WELCOME dispatchedSeq and ranges are acked in the store and never sent; the rest go in seq order', async (t) => {
  const h = await harness(t, {}, range(1, 10).map(() => small()));
  const tr = await h.connect({ dispatchedSeq: 3, ranges: [[5, 6], [8, 8]] });
  t.same(sentSeqs(tr), [4, 7, 9, 10]);
  const s = h.store.stats();
  t.equal(s.ackedSeq, 3);
  t.equal(s.backlogPackets, 4, 'only 4, 7, 9, 10 are left');
  await h.persisted();

  // A later session whose WELCOME knows nothing (say the gateway lost its log) still never gets them.
  const tr2 = await h.reconnect();
  t.equal(tr2.sentOf(FrameType.HELLO)[0]?.ackedSeq, 3, 'HELLO resumes from the acked point');
  t.same(sentSeqs(tr2), [4, 7, 9, 10]);
});

// Issue 10, case 2: this test once expected a store that is not fresh to renumber above a WELCOME
// naming seqs it never issued. That trusted the gateway beyond what the agent issued; only a fresh
// store (made empty: the wiped store of issue 9, case 3) renumbers now. The violation itself is
// tested in link-trust.test.ts against a fake gateway over TCP.
t.test('link - a WELCOME naming seqs above a store that is not fresh is a violation: no renumbering, nothing acked, nothing sent', async (t) => {
  const h = await harness(t, {}, [small('a'), small('b'), small('a')]);
  h.link.start();
  const tr = await h.dialed(1);
  h.welcome(tr, { dispatchedSeq: 20, ranges: [[25, 30]] });
  await until(() => !tr.isOpen, 'the session was closed');
  await h.idle();
  t.equal(codeOf(tr.closedWith), ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
  t.equal(tr.sentOf(FrameType.BYE)[0]?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION, 'the gateway is told why');
  t.same(sentSeqs(tr), [], 'nothing sent');
  const s = h.store.stats();
  t.equal(s.renumbered, 0);
  t.equal(s.lastSeq, 3);
  t.equal(s.backlogPackets, 3, 'every packet kept');
});

t.test('link - a WELCOME naming seqs above a fresh store\'s (a wiped store) renumbers the stored packets above them, in order, and none is acked by the gateway\'s numbers', async (t) => {
  const h = await harness(t, {}, [small('a'), small('b'), small('a')], new FakeClock(), true);
  const tr = await h.connect({ dispatchedSeq: 20, ranges: [[25, 30]] });
  await until(() => sentSeqs(tr).length === 3, 'the renumbered packets were sent');
  t.same(sentSeqs(tr), [31, 32, 33], 'sent with seqs above 30, in their old order');
  const data = tr.sentOf(FrameType.DATA).flatMap((f) => f.packets.map((p) => p.target));
  t.same(data, ['a', 'b', 'a'], 'the same packets, same order');
  const s = h.store.stats();
  t.equal(s.renumbered, 3);
  t.equal(s.backlogPackets, 3, 'nothing was acked by the gateway\'s numbers');
  const next = await h.store.append(small('c'));
  t.equal(next.seq, 34, 'a new append gets the next seq above');
  await h.ack({ seq: 34 });
  t.equal(h.store.stats().backlogPackets, 0);
});

t.test('link - a fresh store (made empty: perhaps wiped) renumbers above the gateway\'s seqs even when it has issued more than the gateway knows', async (t) => {
  const h = await harness(t, {}, []);
  // A new store after a wipe: it has issued 1..5 again; the gateway dispatched 1..3 of the old one.
  const inner = await SegmentStore.open({ dir: t.testdir() + '/fresh', sync: 'none' });
  t.teardown(() => inner.close());
  for (let i = 0; i < 5; i++) await inner.append(small());
  t.equal(inner.stats().fresh, true, 'a store made empty is fresh');
  t.equal(await inner.renumberAbove(3), 5, 'renumbered all five');
  t.same((await inner.readAfter(0, 10)).map((p) => p.seq), [6, 7, 8, 9, 10], 'above both the gateway\'s 3 and its own 5');
  t.equal(inner.stats().fresh, false, 'fresh no more');
  t.equal(await inner.renumberAbove(3), 0, 'a second WELCOME changes nothing');
  void h;
});

t.test('link - a WELCOME naming a seq beyond what a fresh store renumbers above closes the session and keeps every stored packet', async (t) => {
  const h = await harness(t, {}, [small(), small()], new FakeClock(), true);
  h.link.start();
  const tr = await h.dialed(1);
  h.welcome(tr, { dispatchedSeq: Number.MAX_SAFE_INTEGER });
  await until(() => !tr.isOpen, 'the session was closed');
  t.equal(codeOf(tr.closedWith), ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
  t.equal(h.store.stats().backlogPackets, 2, 'both packets are still stored');
  t.equal(h.store.stats().lastSeq, 2);
});

t.test('link - ACK seq and ranges are applied to the store and not resent after a reconnect', async (t) => {
  const h = await harness(t, {}, range(1, 6).map(() => small()));
  const tr = await h.connect();
  t.same(sentSeqs(tr), range(1, 6));
  t.equal(h.store.stats().backlogPackets, 6);
  await h.ack({ seq: 2, ranges: [[4, 5]] });
  const s = h.store.stats();
  t.equal(s.ackedSeq, 2);
  t.equal(s.backlogPackets, 2, '3 and 6 are left');
  t.equal(h.link.stats().inflightPackets, 2);
  await h.persisted();

  const tr2 = await h.reconnect(new Error('connection reset'));
  t.equal(tr2.sentOf(FrameType.HELLO)[0]?.ackedSeq, 2);
  t.same(sentSeqs(tr2), [3, 6]);
});

t.test('link - NACK with retryAfterMs: resent when due, not before; same-target packets in seq order; session stays up', async (t) => {
  // 1 a, 2 a, 3 b, 4 a
  const h = await harness(t, {}, [small('a'), small('a'), small('b'), small('a')]);
  const tr = await h.connect();
  t.same(sentSeqs(tr), [1, 2, 3, 4]);
  // Refusals arrive out of order, and 2 would be due before 1: it must not overtake 1.
  await h.nack({ seq: 4, code: ErrorCode.TARGET_BUSY, retryAfterMs: 1000 });
  await h.nack({ seq: 2, code: ErrorCode.TARGET_BUSY, retryAfterMs: 500 });
  await h.nack({ seq: 1, code: ErrorCode.HANDLER_FAILED, retryAfterMs: 1000 });
  await h.ack({ seq: 0, ranges: [[3, 3]] });
  t.equal(h.link.stats().retryPackets, 3);
  t.equal(h.link.stats().retries, 3);
  t.ok(tr.isOpen, 'a retryable NACK does not end the session');
  t.equal(h.link.stats().state, 'connected');

  await h.advance(500);
  t.same(sentSeqs(tr), [1, 2, 3, 4], 'at 500 ms 2 is due, but 1 of the same target is not: nothing');
  await h.advance(499);
  t.same(sentSeqs(tr), [1, 2, 3, 4], 'nothing before 1000 ms');
  await h.advance(1);
  t.same(sentSeqs(tr).slice(4), [1, 2, 4], 'at 1000 ms: 1, 2, 4 in seq order');
  t.equal(h.link.stats().retryPackets, 0);
  t.equal(h.link.stats().inflightPackets, 3);
  t.equal(h.dials.length, 1, 'never reconnected');
});

t.test('link - a refused packet of target A that is not due does not hold back a due one of target B', async (t) => {
  const h = await harness(t, {}, [small('a'), small('b'), small('a')]);
  const tr = await h.connect();
  await h.nack({ seq: 1, code: ErrorCode.HANDLER_FAILED, retryAfterMs: 5000 });
  await h.nack({ seq: 2, code: ErrorCode.HANDLER_FAILED, retryAfterMs: 1000 });
  await h.nack({ seq: 3, code: ErrorCode.TARGET_BUSY, retryAfterMs: 1000 });
  await h.advance(1000);
  t.same(sentSeqs(tr).slice(3), [2], 'b\'s 2 is resent; a\'s 3 waits behind a\'s 1');
  await h.advance(4000);
  t.same(sentSeqs(tr).slice(3), [2, 1, 3], 'then a\'s 1 and 3, in order');
});

t.test('link - resent refused packets also respect the credit', async (t) => {
  const h = await harness(t, {}, range(1, 4).map(() => small()));
  const tr = await h.connect({ creditPackets: 4 });
  for (const seq of [1, 2, 3, 4]) await h.nack({ seq, code: ErrorCode.TARGET_BUSY, retryAfterMs: 100 });
  await h.ack({ seq: 0, creditPackets: 2 });
  await h.advance(100);
  t.same(sentSeqs(tr).slice(4), [1, 2], 'credit 2: two of the four due go');
  await h.ack({ seq: 1, creditPackets: 2 });
  t.same(sentSeqs(tr).slice(4), [1, 2, 3], 'one acked: the next due one goes');
});

t.test('link - NACK without retryAfterMs moves the packet to dead letters with its code; it is never resent', async (t) => {
  const h = await harness(t, {}, [small('a'), { target: 'gone', ts: 5, data: 'x' }, small('a')]);
  const tr = await h.connect();
  await h.nack({ seq: 2, code: ErrorCode.UNKNOWN_TARGET });
  await until(() => h.store.stats().deadLetters === 1, 'the dead letter is written');
  const letters = await h.store.deadLetters();
  t.equal(letters.length, 1);
  t.equal(letters[0]?.packet.seq, 2);
  t.equal(letters[0]?.packet.target, 'gone');
  t.equal(letters[0]?.code, ErrorCode.UNKNOWN_TARGET);
  t.equal(h.link.stats().deadLetters, 1);
  t.equal(h.link.stats().retryPackets, 0, 'not kept for a retry');
  t.equal(h.store.stats().backlogPackets, 2, 'no longer in the backlog');
  t.ok(tr.isOpen);

  await h.advance(3_600_000);
  t.same(sentSeqs(tr), [1, 2, 3], 'not resent in the session');
  const tr2 = await h.reconnect();
  t.same(sentSeqs(tr2), [1, 3], 'nor after a reconnect');
});

t.test('link - BYE with retryAfterMs 10000: no dial again before 10000 ms', async (t) => {
  const h = await harness(t);
  h.link.start();
  const tr = await h.dialed(1);
  tr.deliver({ t: FrameType.BYE, code: ErrorCode.GATEWAY_BUSY, reason: 'busy', retryAfterMs: 10_000 });
  await h.idle();
  t.notOk(tr.isOpen, 'the link closed the transport');
  t.equal(codeOf(tr.closedWith), ErrorCode.GATEWAY_BUSY);
  await h.advance(9_999);
  t.equal(h.dials.length, 1, 'not at 9999 ms');
  await h.advance(1);
  await h.dialed(2);
  t.equal(h.dials.length, 2, 'at 10000 ms');
});

t.test('link - a dial refused with retryAfterMs (a long-poll 429/503) waits at least that long', async (t) => {
  const clock = new FakeClock();
  const inner = await SegmentStore.open({ dir: t.testdir(), sync: 'none', clock, ackFlushMs: 1 });
  let dials = 0;
  const link = new Link({ ...defaults, reconnectDelayMsMin: 100, reconnectDelayMsMax: 30_000 }, {
    store: inner, clock, rng: () => 0.5, log: silentLog,
    dial: async () => {
      dials++;
      throw new LongPollRefusal(ErrorCode.GATEWAY_BUSY, 'busy', 503, 10_000);
    },
  });
  t.teardown(async () => {
    await link.stop();
    await inner.close();
  });
  link.start();
  await until(() => dials === 1, 'first dial');
  for (let i = 0; i < 5; i++) await turn();
  clock.advance(9_999);
  for (let i = 0; i < 5; i++) await turn();
  t.equal(dials, 1, 'not at 9999 ms (the back-off alone would redial at 75 ms)');
  clock.advance(1);
  await until(() => dials === 2, 'second dial at 10000 ms');
  t.pass('dialed again at 10000 ms');
});

t.test('link - BYE with retryAfterMs after WELCOME is honoured too', async (t) => {
  const h = await harness(t);
  const tr = await h.connect();
  tr.deliver({ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'gateway stopping', retryAfterMs: 10_000 });
  await h.idle();
  await h.advance(9_999);
  t.equal(h.dials.length, 1);
  await h.advance(1);
  await h.dialed(2);
  t.pass('dialed again at 10000 ms');
});

for (const code of [ErrorCode.AUTH_FAILED, ErrorCode.AUTH_REVOKED, ErrorCode.AUTH_AGENT_MISMATCH, ErrorCode.PROTOCOL_VERSION, ErrorCode.TLS_REQUIRED]) {
  t.test(`link - BYE ${code} makes the next dial wait reconnectDelayMsMax`, async (t) => {
    const h = await harness(t, { reconnectDelayMsMin: 100, reconnectDelayMsMax: 30_000 });
    h.link.start();
    const tr = await h.dialed(1);
    tr.deliver({ t: FrameType.BYE, code, reason: 'no' });
    await h.idle();
    await h.advance(29_999);
    t.equal(h.dials.length, 1, 'not before reconnectDelayMsMax');
    await h.advance(1);
    await h.dialed(2);
    t.pass('dialed again at reconnectDelayMsMax');
  });
}

t.test('link - an ordinary disconnect redials after the short back-off (control for the refusal cases)', async (t) => {
  const h = await harness(t, { reconnectDelayMsMin: 100, reconnectDelayMsMax: 30_000 });
  const tr = await h.connect();
  tr.close(new Error('connection reset'));
  await h.idle();
  await h.advance(100); // back-off of attempt 0: 50 ms fixed + 0.5 × 50 ms jitter = 75 ms
  await h.dialed(2);
  t.pass('dialed again well before reconnectDelayMsMax');
});

t.test('link - PING every WELCOME pingIntervalMs with the store\'s ackedSeq; PONG sets rttMs', async (t) => {
  const h = await harness(t, { pingIntervalMs: 30_000, peerTimeoutMs: 60_000 }, range(1, 3).map(() => small()));
  const tr = await h.connect({ pingIntervalMs: 1000 });
  await h.ack({ seq: 2 });
  await h.persisted();
  await h.advance(998);
  t.same(tr.sentOf(FrameType.PING), [], 'no PING before the interval');
  await h.advance(1);
  const pings = tr.sentOf(FrameType.PING);
  t.equal(pings.length, 1, 'one PING at the interval');
  // The backlog for the gateway's status: packet 3 is left, in flight since its ts (0).
  t.same({ ...pings[0], backlogBytes: typeof pings[0]?.backlogBytes }, { t: FrameType.PING, id: 1, ackedSeq: 2, backlogPackets: 1, backlogBytes: 'number', oldestAgeMs: h.clock.now() });
  await h.advance(30);
  tr.deliver({ t: FrameType.PONG, id: 1 });
  t.equal(h.link.stats().rttMs, 30);
  await h.ack({ seq: 3 });
  await h.persisted();
  await h.advance(969);
  t.same(tr.sentOf(FrameType.PING).map((p) => [p.id, p.ackedSeq]), [[1, 2], [2, 3]], 'the next one a second later, with the new ackedSeq');
  const second = tr.sentOf(FrameType.PING)[1];
  t.same([second?.backlogPackets, second?.backlogBytes], [0, 0], 'no backlog is no backlog bytes (the store still holds the acked records)');
});

t.test('link - silence longer than peerTimeoutMs closes with PEER_TIMEOUT, and the link dials again', async (t) => {
  const h = await harness(t, { peerTimeoutMs: 5000 });
  const tr = await h.connect({ pingIntervalMs: 1000 });
  await h.advance(2500);
  tr.deliver({ t: FrameType.PONG, id: 1 }); // heard from at 2500 ms
  await h.advance(5000);
  t.ok(tr.isOpen, 'not after exactly peerTimeoutMs of silence');
  await h.advance(1000); // the check runs at least every min(pingIntervalMs, peerTimeoutMs / 2)
  t.notOk(tr.isOpen, 'closed once silence exceeded peerTimeoutMs');
  t.equal(codeOf(tr.closedWith), ErrorCode.PEER_TIMEOUT);
  await h.advance(defaults.reconnectDelayMsMax);
  await h.dialed(2);
  t.equal(h.dials.length, 2);
});

t.test('link - DATA frames hold at most framePacketsMax packets', async (t) => {
  const h = await harness(t, { framePacketsMax: 3 }, range(1, 10).map(() => small()));
  const tr = await h.connect();
  const frames = tr.sentOf(FrameType.DATA);
  t.same(sentSeqs(tr), range(1, 10));
  t.ok(frames.every((f) => f.packets.length <= 3), `frame sizes ${frames.map((f) => f.packets.length).join(',')}`);

  // Resent refused packets are framed the same way.
  for (const seq of range(1, 10)) await h.nack({ seq, code: ErrorCode.TARGET_BUSY, retryAfterMs: 100 });
  await h.advance(100);
  const resent = tr.sentOf(FrameType.DATA).slice(frames.length);
  t.same(resent.flatMap((f) => f.packets.map((p) => p.seq)), range(1, 10));
  t.ok(resent.every((f) => f.packets.length <= 3), `resent frame sizes ${resent.map((f) => f.packets.length).join(',')}`);
});

t.test('link - DATA frames hold at most frameBytesMax bytes (as credit counts them)', async (t) => {
  const h = await harness(t, { frameBytesMax: 30 }, range(1, 7).map(() => small()));
  const tr = await h.connect();
  const frames = tr.sentOf(FrameType.DATA);
  t.same(sentSeqs(tr), range(1, 7));
  t.ok(frames.every((f) => f.packets.length <= 2), `11-byte packets, at most 2 per 30-byte frame: ${frames.map((f) => f.packets.length).join(',')}`);

  for (const seq of range(1, 7)) await h.nack({ seq, code: ErrorCode.TARGET_BUSY, retryAfterMs: 100 });
  await h.advance(100);
  const resent = tr.sentOf(FrameType.DATA).slice(frames.length);
  t.same(resent.flatMap((f) => f.packets.map((p) => p.seq)), range(1, 7));
  t.ok(resent.every((f) => f.packets.length <= 2), `resent: ${resent.map((f) => f.packets.length).join(',')}`);
});

t.test('link - a store read that fails (EIO) is tried again after a back-off, and the packets still go', async (t) => {
  const h = await harness(t, { reconnectDelayMsMin: 100 }, range(1, 3).map(() => small()));
  h.store.failReads = 1;
  const tr = await h.connect();
  t.same(sentSeqs(tr), [], 'the first read failed: nothing sent yet');
  t.equal(h.store.reads, 1);
  await h.advance(49);
  t.equal(h.store.reads, 1, 'not read again before the back-off (at least half of reconnectDelayMsMin)');
  await h.advance(100);
  t.same(sentSeqs(tr), [1, 2, 3], 'read again after the back-off: sent, in order');
  t.ok(tr.isOpen, 'the session stayed up');
});

t.test('link - store reads that keep failing back off further, and resume once the store reads again', async (t) => {
  const h = await harness(t, { reconnectDelayMsMin: 100, reconnectDelayMsMax: 1000 }, range(1, 2).map(() => small()));
  h.store.failReads = 4;
  const tr = await h.connect();
  const readAt: number[] = [];
  for (let ms = 0; ms < 2000; ms += 25) {
    const before = h.store.reads;
    await h.advance(25);
    if (h.store.reads > before) readAt.push(ms + 25);
  }
  // rng 0.5: three quarters of 100, 200, 400, 800 ms after each failure.
  t.same(readAt, [75, 225, 525, 1125], 'read again with growing delays');
  t.same(sentSeqs(tr), [1, 2], 'sent once a read succeeds');
});

for (const [name, makeClock] of [['early', () => JitterClock.early(1)], ['late', () => JitterClock.late(300)]] as const) {
  t.test(`link - refused packets are resent when the retry timer fires ${name}`, async (t) => {
    const clock = makeClock();
    const h = await harness(t, {}, [small('a'), small('a')], clock);
    const tr = await h.connect();
    await h.nack({ seq: 1, code: ErrorCode.TARGET_BUSY, retryAfterMs: 1000 });
    await h.nack({ seq: 2, code: ErrorCode.TARGET_BUSY, retryAfterMs: 1000 });
    for (let i = 0; i < 20; i++) await h.advance(100);
    t.same(sentSeqs(tr), [1, 2, 1, 2], `${name}: both resent, in order`);
    t.equal(h.link.stats().retryPackets, 0);
    t.ok(name === 'early' ? clock.early > 0 : clock.late > 0, `the clock did fire ${name}`);
  });
}

t.test('link - a liveness check that runs late lets waiting input be read before it declares the gateway dead', async (t) => {
  // The first check (due after 1000 ms) runs 10 s late, as after a stall of this process.
  let stalled = false;
  const clock = new JitterClock((ms) => (ms === 1000 && !stalled ? ((stalled = true), 10_000) : 0));
  const h = await harness(t, { peerTimeoutMs: 5000 }, [], clock);
  const tr = await h.connect({ pingIntervalMs: 1000 });
  await h.advance(11_000); // the late check finds 11 s of silence
  t.ok(tr.isOpen, 'not dead yet: the gateway\'s frames may wait unread');
  tr.deliver({ t: FrameType.PONG, id: 99 }); // read now
  await h.advance(1);
  t.ok(tr.isOpen, 'the gateway was heard: the session stays');
  await h.advance(5000);
  t.ok(tr.isOpen, 'no longer silent than peerTimeoutMs');
  await h.advance(2000);
  t.notOk(tr.isOpen, 'a real silence still ends it');
  t.equal(codeOf(tr.closedWith), ErrorCode.PEER_TIMEOUT);
});

// Issue 9, case 10: a gateway whose limits are lower than the agent's names them in WELCOME; a
// stored packet it could never take is kept as a dead letter instead of being sent, again and
// again, into a NACK or (over its frame limit) a closed session, with every later packet behind it.
/** `levels` arrays, one inside the other. */
const nestedData = (levels: number): NewPacket['data'] => {
  let v: NewPacket['data'] = [];
  for (let i = 1; i < levels; i++) v = [v];
  return v;
};

t.test('link - a stored packet over the limits the WELCOME names is a dead letter, not sent; the packets after it go', async (t) => {
  const h = await harness(t, {}, [
    small(), { target: 'a', ts: 0, data: nestedData(10) }, small(), { target: 'a', ts: 0, data: 'x'.repeat(200) }, small(),
    { target: 'a', ts: 0, data: new Uint8Array(5000) }, small(),
  ]);
  const tr = await h.connect({ frameBytesMax: 4096, dataBytesMax: 1000, dataDepthMax: 8 });
  await until(() => h.store.stats().deadLetters === 2, 'the dead letters are written');
  t.same(sentSeqs(tr), [1, 3, 4, 5, 7], 'only what the gateway can take is sent, in seq order');
  const letters = await h.store.deadLetters();
  t.same(letters.map((d) => [d.packet.seq, d.code]), [[2, ErrorCode.DATA_TOO_DEEP], [6, ErrorCode.DATA_TOO_LARGE]]);
  t.match(letters[0]!.message, /not sent/);
  t.equal(h.link.stats().deadLetters, 2);
  t.ok(tr.isOpen, 'the session goes on');
  await h.ack({ seq: 7 });
  t.equal(h.store.stats().backlogPackets, 0, 'nothing is left behind');
  t.equal(h.dials.length, 1, 'one session');
});

t.test('link - a packet whose DATA frame alone is over the gateway\'s frameBytesMax is a dead letter (DATA_TOO_LARGE)', async (t) => {
  // Within the data limit the WELCOME names, but not within one of the gateway's frames.
  const h = await harness(t, {}, [small(), { target: 'a', ts: 0, data: new Uint8Array(5000) }, small()]);
  const tr = await h.connect({ frameBytesMax: 4096, dataBytesMax: 64 * 1024, dataDepthMax: 32 });
  await until(() => h.store.stats().deadLetters === 1, 'the dead letter is written');
  t.same(sentSeqs(tr), [1, 3]);
  t.same((await h.store.deadLetters()).map((d) => [d.packet.seq, d.code]), [[2, ErrorCode.DATA_TOO_LARGE]]);
  t.match((await h.store.deadLetters())[0]!.message, /frames of at most 4096/);
});

t.test('link - DATA frames fit the gateway\'s frameBytesMax once encoded, including resent ones', async (t) => {
  // Floats: CBOR writes 9 bytes for 0.1, JSON 3; the credit count (JSON) would pack too much into a frame.
  const floats = (): NewPacket => ({ target: 'a', ts: 0, data: Array.from({ length: 100 }, () => 0.1) });
  const h = await harness(t, {}, range(1, 20).map(floats));
  const frameBytesMax = 2048;
  const tr = await h.connect({ frameBytesMax, dataBytesMax: 64 * 1024, dataDepthMax: 32 });
  const bodies = (from = 0) => tr.sentOf(FrameType.DATA).slice(from).map((f) => encodeFrame(f).length - frameHeaderBytes);
  t.same(sentSeqs(tr), range(1, 20));
  t.ok(bodies().every((b) => b <= frameBytesMax), `frame bodies ${bodies().join(',')} <= ${frameBytesMax}`);
  t.ok(tr.sentOf(FrameType.DATA).some((f) => f.packets.length > 1), 'frames still carry several packets');
  const first = tr.sentOf(FrameType.DATA).length;
  for (const seq of range(1, 20)) await h.nack({ seq, code: ErrorCode.TARGET_BUSY, retryAfterMs: 100 });
  await h.advance(100);
  t.ok(bodies(first).length > 0 && bodies(first).every((b) => b <= frameBytesMax), `resent frame bodies ${bodies(first).join(',')}`);
});

t.test('link - a WELCOME without limits (an older gateway) holds nothing back', async (t) => {
  const h = await harness(t, {}, [small(), { target: 'a', ts: 0, data: nestedData(40) }, { target: 'a', ts: 0, data: new Uint8Array(5000) }]);
  const tr = await h.connect();
  t.same(sentSeqs(tr), [1, 2, 3]);
  t.equal(h.store.stats().deadLetters, 0);
});
