/**
 * Issue 10, case 2 (the agent's half): the agent trusts the gateway's word only within what it
 * issued. A fake gateway (a real TCP server on 127.0.0.1 speaking the real codec) answers the
 * real agent (Link over tcpDialer, a real SegmentStore) with WELCOMEs and ACKs naming seqs the
 * agent never issued. On the code before the fix the agent deleted its backlog (an ACK above
 * lastSeq acked everything) or renumbered it on the fake's word; now it refuses the session with
 * GATEWAY_PROTOCOL_VIOLATION, logs it once, keeps every stored packet and backs off as usual.
 */
import t from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Link, type LinkOptions, type LinkStatus } from '../../agent/link/link.js';
import { tcpDialer } from '../../agent/link/tcp.js';
import { SegmentStore } from '../../agent/store/segment-store.js';
import type { Log, LogFields } from '../../common/log.js';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, seqMax, seqRenumberTopMax, type Frame, type WelcomeFrame } from '../../protocol/frames.js';
import type { NewPacket } from '../../protocol/packet.js';
import { FakeClock } from './fixtures/fake-clock.js';
import { until } from '../helpers/wait.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** What the fake gateway does with each frame of one connection: `send` writes a frame back. */
type Script = (f: Frame, send: (f: Frame) => void, conn: FakeConn) => void;

interface FakeConn {
  /** frames received, in order */
  got: Frame[];
  /** how the connection ended: set once the agent closed it */
  closed: boolean;
}

/** A fake gateway on 127.0.0.1:0: decodes what the agent sends with the real codec and answers by `script`. */
async function fakeGateway(t: Test, script: Script): Promise<{ url: string; conns: FakeConn[] }> {
  const conns: FakeConn[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    const conn: FakeConn = { got: [], closed: false };
    conns.push(conn);
    const decoder = new FrameDecoder();
    const send = (f: Frame): void => void s.write(encodeFrame(f));
    s.on('data', (chunk) => {
      for (const f of decoder.push(chunk)) {
        conn.got.push(f);
        script(f, send, conn);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      conn.closed = true;
      sockets.delete(s);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return { url: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, conns };
}

const welcome = (w: Partial<WelcomeFrame> = {}): WelcomeFrame => ({ t: FrameType.WELCOME, session: 'fake', dispatchedSeq: 0, creditPackets: 100, creditBytes: 1_000_000, ...w });

/** A Log that keeps what it was given at error level. */
function errorLog(): Log & { errors: { msg: string; fields: LogFields | undefined }[] } {
  const errors: { msg: string; fields: LogFields | undefined }[] = [];
  const log = { debug() {}, info() {}, warn() {}, error: (msg: string, fields?: LogFields) => void errors.push({ msg, fields }), child: () => log, errors };
  return log;
}

const options: LinkOptions = {
  agentId: 'dev-3', inflightPacketsMax: 100, framePacketsMax: 10, frameBytesMax: 1_000_000, retryPacketsMax: 100, retryBytesMax: 1_000_000,
  reconnectDelayMsMin: 100, reconnectDelayMsMax: 60_000, helloTimeoutMs: 1e9, pingIntervalMs: 1e8, peerTimeoutMs: 1e9,
};

const small = (): NewPacket => ({ target: 'a', ts: 0, data: new Uint8Array(10) });

/**
 * A real agent (store with `packets` packets, Link) dialing `url`. `fresh`: the store was just
 * made (never confirmed by a gateway); otherwise it has met a gateway before.
 */
async function agent(t: Test, url: string, packets: number, fresh = false) {
  const clock = new FakeClock();
  const store = await SegmentStore.open({ dir: t.testdir(), sync: 'none', clock, ackFlushMs: 1 });
  for (let i = 0; i < packets; i++) await store.append(small());
  if (!fresh) await store.renumberAbove(0);
  const log = errorLog();
  const statuses: LinkStatus[] = [];
  const link = new Link(options, { store, clock, rng: () => 0.5, log, dial: tcpDialer(url, { connectTimeoutMs: 3000 }) });
  link.on('status', (s) => statuses.push(s));
  t.teardown(async () => {
    await link.stop();
    await store.close();
  });
  link.start();
  /** The delays of every back-off so far. */
  const backoffs = (): number[] => statuses.flatMap((s) => (s.state === 'backoff' ? [s.delayMs] : []));
  /** Waits for back-off number `n` (1-based) and lets it run out. */
  const nextDial = async (n: number): Promise<void> => {
    await until(() => backoffs().length >= n, `back-off ${n}`);
    clock.advance(backoffs()[n - 1]!);
  };
  return { clock, store, log, link, statuses, backoffs, nextDial };
}

/**
 * Waits until the agent closed the session or its store changed on the gateway's word (acked or
 * renumbered: what the code before the fix did), so a regression fails on the store's numbers.
 */
async function outcome(conn: () => FakeConn | undefined, a: { store: SegmentStore }, packets: number, what: string): Promise<void> {
  await until(() => {
    const s = a.store.stats();
    return conn()?.closed === true || s.backlogPackets !== packets || s.renumbered > 0;
  }, what);
}

/** The BYE the agent sent on `conn`, if any. */
const byeOf = (conn: FakeConn): Extract<Frame, { t: typeof FrameType.BYE }> | undefined =>
  conn.got.find((f): f is Extract<Frame, { t: typeof FrameType.BYE }> => f.t === FrameType.BYE);

t.test('link trust - an ACK above the seqs the agent issued is a violation: nothing acked, every packet kept, the session refused', async (t) => {
  // The fake gateway WELCOMEs honestly, then answers the first DATA with an ACK for seq 1000 (the agent issued 1..5).
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome());
    if (f.t === FrameType.DATA) send({ t: FrameType.ACK, seq: 1000, creditPackets: 100, creditBytes: 1_000_000 });
  });
  const a = await agent(t, gw.url, 5);
  await outcome(() => gw.conns[0], a, 5, 'the agent closed the session');
  t.equal(byeOf(gw.conns[0]!)?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION, 'the agent said why (BYE GATEWAY_PROTOCOL_VIOLATION)');
  const s = a.store.stats();
  t.equal(s.backlogPackets, 5, 'all five packets are still stored');
  t.equal(s.ackedSeq, 0, 'no ack applied');
  t.equal(s.lastSeq, 5, 'and none renumbered');
  t.same((await a.store.readAfter(0, 10)).map((p) => p.seq), [1, 2, 3, 4, 5]);
  t.equal(a.log.errors.length, 1, 'logged once, at error level');
  t.equal(a.log.errors[0]?.fields?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
});

t.test('link trust - ACK ranges above the seqs the agent issued are a violation too, and none of them is applied', async (t) => {
  // [2, 2] is a seq the agent issued; [9, 9] is not: the whole ACK is refused, [2, 2] included.
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome());
    if (f.t === FrameType.DATA) send({ t: FrameType.ACK, seq: 0, ranges: [[2, 2], [9, 9]], creditPackets: 100, creditBytes: 1_000_000 });
  });
  const a = await agent(t, gw.url, 5);
  await outcome(() => gw.conns[0], a, 5, 'the agent closed the session');
  t.equal(byeOf(gw.conns[0]!)?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
  t.equal(a.store.stats().backlogPackets, 5, 'nothing acked, not even the range the agent issued');
});

t.test('link trust - a WELCOME naming a seq above what a (not fresh) store issued is refused: no renumbering, nothing deleted, no DATA sent', async (t) => {
  // On the code before, the store renumbered above 1000, and the ACK of 2000 that follows deleted it all.
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome({ dispatchedSeq: 1000 }));
    if (f.t === FrameType.DATA) send({ t: FrameType.ACK, seq: 2000, creditPackets: 100, creditBytes: 1_000_000 });
  });
  const a = await agent(t, gw.url, 5);
  await outcome(() => gw.conns[0], a, 5, 'the agent closed the session');
  t.equal(byeOf(gw.conns[0]!)?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
  t.notOk(gw.conns[0]!.got.some((f) => f.t === FrameType.DATA), 'no packet was sent to it');
  const s = a.store.stats();
  t.equal(s.renumbered, 0, 'not renumbered on its word');
  t.equal(s.lastSeq, 5);
  t.equal(s.backlogPackets, 5, 'every packet kept');
});

t.test('link trust - WELCOME ranges above what the store issued are refused the same way', async (t) => {
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome({ dispatchedSeq: 2, ranges: [[4, 4], [7, 8]] }));
  });
  const a = await agent(t, gw.url, 5);
  await outcome(() => gw.conns[0], a, 5, 'the agent closed the session');
  t.equal(byeOf(gw.conns[0]!)?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
  t.equal(a.store.stats().backlogPackets, 5, 'not even 1..2 and 4 were acked on its word');
});

t.test('link trust - seqs of 2^53-1 in WELCOME or ACK do not even decode (FRAME_MALFORMED); every packet kept', async (t) => {
  for (const [what, answer] of [
    ['WELCOME dispatchedSeq 2^53-1', (f: Frame, send: (f: Frame) => void) => f.t === FrameType.HELLO && send(welcome({ dispatchedSeq: Number.MAX_SAFE_INTEGER }))],
    ['ACK seq 2^53-1', (f: Frame, send: (f: Frame) => void) => {
      if (f.t === FrameType.HELLO) send(welcome());
      if (f.t === FrameType.DATA) send({ t: FrameType.ACK, seq: Number.MAX_SAFE_INTEGER, creditPackets: 100, creditBytes: 1_000_000 });
    }],
    ['WELCOME seenSeq 2^53-1 to a fresh store', (f: Frame, send: (f: Frame) => void) => f.t === FrameType.HELLO && send(welcome({ seenSeq: Number.MAX_SAFE_INTEGER }))],
  ] as const) {
    const gw = await fakeGateway(t, answer);
    const a = await agent(t, gw.url, 3, what.includes('fresh'));
    await outcome(() => gw.conns[0], a, 3, `${what}: the agent closed the session`);
    t.equal(byeOf(gw.conns[0]!)?.code, ErrorCode.FRAME_MALFORMED, `${what}: refused at decode`);
    const s = a.store.stats();
    t.equal(s.backlogPackets, 3, `${what}: every packet kept`);
    t.equal(s.lastSeq, 3, `${what}: the seq counter did not jump`);
  }
});

t.test('link trust - a gateway whose ACKs do not decode (seq 2^53-1) is dialed with a growing back-off too, not every few ms', async (t) => {
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome());
    if (f.t === FrameType.DATA) send({ t: FrameType.ACK, seq: Number.MAX_SAFE_INTEGER, creditPackets: 100, creditBytes: 1_000_000 });
  });
  const a = await agent(t, gw.url, 2);
  for (let n = 1; n <= 3; n++) {
    await outcome(() => gw.conns[n - 1], a, 2, `session ${n} closed`);
    t.equal(byeOf(gw.conns[n - 1]!)?.code, ErrorCode.FRAME_MALFORMED, `session ${n}: refused at decode`);
    await a.nextDial(n);
  }
  await until(() => gw.conns.length >= 4, 'dial 4');
  t.same(a.backoffs().slice(0, 3), [75, 150, 300], 'the back-off grows although each session opened');
  t.equal(a.store.stats().backlogPackets, 2);
});

t.test('link trust - a gateway that keeps violating is dialed with a growing back-off, and each session logs one error', async (t) => {
  // Each session: an honest WELCOME, then an ACK above lastSeq. The session opened, yet it does not reset the back-off.
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome());
    if (f.t === FrameType.DATA) {
      // Two bad ACKs at once: still one error logged for the session.
      send({ t: FrameType.ACK, seq: 50, creditPackets: 100, creditBytes: 1_000_000 });
      send({ t: FrameType.ACK, seq: 60, creditPackets: 100, creditBytes: 1_000_000 });
    }
  });
  const a = await agent(t, gw.url, 2);
  for (let n = 1; n <= 4; n++) {
    await outcome(() => gw.conns[n - 1], a, 2, `session ${n} closed`);
    t.equal(a.store.stats().backlogPackets, 2, `session ${n}: nothing acked`);
    await a.nextDial(n);
  }
  await until(() => gw.conns.length >= 5, 'dial 5');
  const delays = a.backoffs().slice(0, 4);
  // reconnectDelayMsMin 100, rng 0.5: 75, 150, 300, 600 (an open session that ended well would start again at 75).
  t.same(delays, [75, 150, 300, 600], `the back-off grows: ${delays.join(', ')} ms`);
  t.equal(a.log.errors.length, 4, 'one error per session');
  t.equal(a.store.stats().backlogPackets, 2);
});

t.test('link trust - a fresh store (made empty) still renumbers above a gateway\'s seqs within seqRenumberTopMax, deleting nothing', async (t) => {
  const gw = await fakeGateway(t, (f, send) => {
    if (f.t === FrameType.HELLO) send(welcome({ dispatchedSeq: 1000 }));
  });
  const a = await agent(t, gw.url, 3, true);
  await until(() => gw.conns[0]?.got.some((f) => f.t === FrameType.DATA) === true, 'DATA sent');
  const sent = gw.conns[0]!.got.flatMap((f) => (f.t === FrameType.DATA ? f.packets.map((p) => p.seq) : []));
  t.same(sent, [1001, 1002, 1003], 'renumbered above 1000, in order');
  t.equal(a.store.stats().backlogPackets, 3, 'nothing deleted');
  t.equal(a.log.errors.length, 0);
});

t.test('link trust - a fresh store refuses to renumber above seqRenumberTopMax: the session is refused, nothing renumbered', async (t) => {
  for (const w of [{ dispatchedSeq: seqRenumberTopMax }, { seenSeq: seqMax }, { dispatchedSeq: seqRenumberTopMax - 2 }]) {
    const gw = await fakeGateway(t, (f, send) => {
      if (f.t === FrameType.HELLO) send(welcome(w));
    });
    const a = await agent(t, gw.url, 3, true);
    await outcome(() => gw.conns[0], a, 3, `${JSON.stringify(w)}: the agent closed the session`);
    t.equal(byeOf(gw.conns[0]!)?.code, ErrorCode.GATEWAY_PROTOCOL_VIOLATION, `${JSON.stringify(w)}: refused`);
    const s = a.store.stats();
    t.equal(s.lastSeq, 3, 'the seqs did not move');
    t.equal(s.backlogPackets, 3);
    t.equal(s.fresh, true, 'still fresh: an honest gateway may renumber it later');
  }
});
