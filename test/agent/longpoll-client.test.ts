/**
 * The agent's long-poll client (agent/link/longpoll-client.ts) against a gateway played in the
 * test: a BundleChannel with a ChannelTransport on the far side of an in-process `post`, so frames
 * sent on the agent's transport come out of the test gateway's transport and the other way. The
 * test answers each request by hand (or, in the lossy run, a seeded gateway loop with the hold
 * policy answers them, losing, garbling and refusing some). Time is a FakeClock.
 */
import t from 'tap';
import { longPollDialer, newLongPollCounters, type Post, type PostResult } from '../../agent/link/longpoll-client.js';
import { LongPollRefusal } from '../../agent/link/longpoll-refusal.js';
import { silentLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { BodyKind, decodeBody, encodeBody, type Body } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { HoldPolicy, RequestOrder, requestOrder } from '../../protocol/longpoll/hold-policy.js';
import { bodyLimitsFor, channelLimitsDefault, type ChannelLimits } from '../../protocol/longpoll/limits.js';
import type { RequestPolicyOptions } from '../../protocol/longpoll/request-policy.js';
import type { Transport } from '../../protocol/transport.js';
import { prng, testSeed } from '../helpers/seed.js';
import { turn } from '../helpers/wait.js';
import { FakeClock } from './fixtures/fake-clock.js';

const limits: ChannelLimits = { ...channelLimitsDefault, bundleMessagesMax: 8 };
const bodyLimits = bodyLimitsFor(limits);
const policy: RequestPolicyOptions = { responseTimeoutMs: 35_000, answerTimeoutMs: 3_000, requestsUnansweredMax: 3, requestsOutstandingMax: 2, lingerMs: 20 };
const session = 'test-session_1';

const settle = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await turn();
};
const ping = (id: number): Frame => ({ t: FrameType.PING, id });
const pong = (id: number): Frame => ({ t: FrameType.PONG, id });
const ids = (frames: Frame[]): number[] => frames.map((f) => (f as { id: number }).id);
const codeOf = (e: unknown): string | undefined => (e as FerryError | undefined)?.code;

interface Req {
  body: Body | undefined;
  signal: AbortSignal;
  done: boolean;
  resolve(r: PostResult): void;
  reject(e: Error): void;
}

/** The gateway, played by the test: its channel and transport, and every request the client posted. */
class Peer {
  readonly channel = new BundleChannel(limits);
  readonly transport = new ChannelTransport(this.channel, { onSendable: () => this.onSendable?.(), onClose: () => {} });
  readonly frames: Frame[] = [];
  readonly requests: Req[] = [];
  onRequest: ((r: Req) => void) | undefined;
  onSendable: (() => void) | undefined;

  constructor() {
    this.transport.onFrame((f) => this.frames.push(f));
  }

  readonly post: Post = (bytes, signal) =>
    new Promise<PostResult>((resolve, reject) => {
      let body: Body | undefined;
      try {
        body = decodeBody(bytes, BodyKind.REQUEST, bodyLimits);
      } catch {
        body = undefined;
      }
      const r: Req = { body, signal, done: false, resolve, reject };
      signal.addEventListener('abort', () => {
        if (r.done) return;
        r.done = true;
        reject(new Error('aborted'));
      });
      this.requests.push(r);
      this.onRequest?.(r);
    });

  /** Requests not answered yet, oldest first. */
  get open(): Req[] {
    return this.requests.filter((r) => !r.done);
  }

  get last(): Req {
    return this.requests[this.requests.length - 1]!;
  }

  /** Takes a request's body as the gateway does: its report, its frames, its termination. */
  apply(r: Req): void {
    this.transport.deliver(this.channel.accept(r.body!));
    if (r.body!.end) this.transport.peerEnded(r.body!.end);
  }

  respond(r: Req, extra: Partial<Body> = {}): void {
    r.done = true;
    r.resolve({ status: 200, body: encodeBody({ kind: BodyKind.RESPONSE, session, answers: r.body!.bundle, ...this.channel.nextBundle(), ...extra }) });
  }

  /** Applies and answers `r`. */
  exchange(r: Req, extra: Partial<Body> = {}): void {
    this.apply(r);
    this.respond(r, extra);
  }

  refuse(r: Req, status: number, code: string, retryAfterMs?: number): void {
    r.done = true;
    r.resolve({ status, body: Buffer.from(JSON.stringify({ code, message: 'refused by the test', ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) })) });
  }

  fail(r: Req, why = 'ECONNRESET'): void {
    r.done = true;
    r.reject(new Error(why));
  }
}

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function dialed(t: Test, opts: { policy?: Partial<RequestPolicyOptions> } = {}) {
  const clock = new FakeClock();
  const gw = new Peer();
  const counters = newLongPollCounters();
  const dial = longPollDialer({ post: gw.post, agentId: 'pi-1', clock, log: silentLog, limits, policy: { ...policy, ...opts.policy }, counters });
  const pending = dial();
  await settle();
  const opening = gw.requests[0]!;
  gw.exchange(opening);
  const tr = await pending;
  const got: Frame[] = [];
  tr.onFrame((f) => got.push(f));
  let closedWith: Error | undefined | null = null;
  void tr.closed.then((e) => (closedWith = e));
  await settle();
  t.teardown(() => tr.close());
  return { clock, gw, tr, got, counters, opening, closed: () => closedWith };
}

t.test('longpoll client - opening: a request without session, bundle 1; resolves on the 200 naming the session, then one poll waits at the gateway', async (t) => {
  const { gw, opening, counters } = await dialed(t);
  t.equal(opening.body!.session, undefined, 'no session in the opening request');
  t.equal(opening.body!.bundle, 1);
  t.same(opening.body!.messages, []);
  t.equal(gw.requests.length, 2, 'the dialer resolved and sent the first poll at once');
  t.equal(gw.last.body!.session, session, 'the poll carries the session the gateway named');
  t.equal(gw.last.body!.bundle, 2);
  t.equal(gw.open.length, 1, 'exactly one request waits at the gateway');
  t.equal(counters.requests, 2);
});

t.test('longpoll client - frames go both ways in order; a held request is answered when the next comes', async (t) => {
  const { clock, gw, tr, got } = await dialed(t);
  for (let i = 1; i <= 20; i++) tr.send(ping(i));
  await settle();
  // 20 messages: two full bundles of 8 go at once (the outstanding limit is two requests), the rest after linger.
  t.equal(gw.open.length, 2, 'a full bundle sends a second request at once, never a third');
  const [held, full] = gw.open as [Req, Req];
  t.equal(full.body!.messages.length, 8);
  gw.exchange(held);
  gw.apply(full); // held now
  await settle();
  clock.advance(20);
  await settle();
  for (const r of gw.open.slice(0, -1)) gw.exchange(r);
  await settle();
  for (const r of gw.open.slice(0, -1)) gw.exchange(r);
  await settle();
  gw.apply(gw.open[gw.open.length - 1]!);
  t.same(ids(gw.frames), Array.from({ length: 20 }, (_, i) => i + 1), 'the gateway got PING 1..20 in order');
  for (let i = 1; i <= 5; i++) gw.transport.send(pong(i));
  gw.respond(gw.open[0]!);
  await settle();
  t.same(ids(got), [1, 2, 3, 4, 5], 'the agent got PONG 1..5 in order');
});

t.test('longpoll client - a lost request, a lost response and an unreadable response: every frame arrives once', async (t) => {
  const { clock, gw, tr, got, counters } = await dialed(t);
  // Lost request: the network fails it before the gateway reads it.
  tr.send(ping(1));
  clock.advance(20);
  await settle();
  const carrying = gw.open[1]!;
  t.same(carrying.body!.messages.length, 1, 'PING 1 went in a second request');
  gw.fail(carrying);
  await settle();
  clock.advance(100); // the pause after a failed request
  await settle();
  t.ok(gw.open.some((r) => r.body!.messages.length === 1), 'PING 1 went again');
  for (const r of gw.open.slice(0, -1)) gw.exchange(r);
  gw.apply(gw.last);
  t.same(ids(gw.frames), [1], 'the gateway got it once');
  // Lost response: the gateway took the request, the response never came back.
  tr.send(ping(2));
  clock.advance(20);
  await settle();
  const newest = gw.last;
  gw.exchange(gw.open[0]!); // answers the held one
  gw.apply(newest);
  gw.fail(newest); // its response is lost
  await settle();
  clock.advance(200);
  await settle();
  for (const r of gw.open.slice(0, -1)) gw.exchange(r);
  gw.apply(gw.last);
  t.same(ids(gw.frames), [1, 2], 'PING 2 went again and the gateway dropped the copy');
  // Unreadable response: the gateway's PONG in it is sent again.
  gw.transport.send(pong(1));
  const held = gw.open[0]!;
  held.done = true;
  held.resolve({ status: 200, body: Buffer.from('<html>proxy error</html>') });
  gw.channel.nextBundle(); // the bundle the garbled response stood for, as the gateway built it
  await settle();
  t.equal(counters.unreadable, 1);
  t.same(got, [], 'nothing taken from it');
  clock.advance(400);
  await settle();
  // The agent's report after the next response it reads covers the garbled bundle: the gateway resends PONG 1.
  for (let round = 0; round < 3; round++) {
    for (const r of gw.open) gw.exchange(r);
    await settle();
  }
  t.same(ids(got), [1], 'PONG 1 arrived once, from a later response');
  gw.transport.send(pong(2));
  for (let round = 0; round < 3; round++) {
    for (const r of gw.open) gw.exchange(r);
    await settle();
  }
  t.same(ids(got), [1, 2], 'and the next after it');
});

t.test('longpoll client - 409 stale counts as answered with nothing; what it carried goes again, once', async (t) => {
  const { clock, gw, tr, counters, closed } = await dialed(t);
  tr.send(ping(1));
  clock.advance(20);
  await settle();
  const second = gw.last;
  gw.apply(second); // the gateway took it, then a duplicate of it overtook the answer: 409
  gw.refuse(second, 409, ErrorCode.LONGPOLL_REQUEST_STALE);
  await settle();
  clock.advance(100);
  await settle();
  t.equal(counters.stale, 1);
  for (const r of gw.open.slice(0, -1)) gw.exchange(r);
  gw.apply(gw.last);
  t.same(ids(gw.frames), [1], 'the copy was dropped by number');
  t.equal(closed(), null, 'the session goes on');
});

t.test('longpoll client - 409 on every request in a row (someone holding the session ID moved its numbers on): the session is given up for a new one', async (t) => {
  const { clock, gw, tr, counters, closed } = await dialed(t);
  for (let i = 0; i < 10 && closed() === null; i++) {
    const r = gw.open[gw.open.length - 1];
    if (r) gw.refuse(r, 409, ErrorCode.LONGPOLL_REQUEST_STALE);
    await settle();
    clock.advance(6000);
    await settle();
  }
  t.equal(codeOf(await tr.closed), ErrorCode.LONGPOLL_REQUEST_STALE, 'closed with LONGPOLL_REQUEST_STALE');
  t.equal(counters.stale, 4, 'after 4 in a row, not one sooner');
});

t.test('longpoll client - 404 or 403: the session is gone; closed with that code, no end sent', async (t) => {
  for (const [status, code] of [[404, ErrorCode.LONGPOLL_SESSION_UNKNOWN], [403, ErrorCode.LONGPOLL_SESSION_FORBIDDEN]] as const) {
    const { gw, tr } = await dialed(t);
    const before = gw.requests.length;
    gw.refuse(gw.open[0]!, status, code);
    const err = await tr.closed;
    t.equal(codeOf(err), code, `${status}: closed with ${code}`);
    await settle();
    t.equal(gw.requests.length, before, 'no further request (no end to a gateway that does not know the session)');
  }
});

t.test('longpoll client - a refusal status without a JSON body takes the code the carrier gives it', async (t) => {
  const { gw, tr } = await dialed(t);
  const r = gw.open[0]!;
  r.done = true;
  r.resolve({ status: 404, body: Buffer.from('Not Found') });
  t.equal(codeOf(await tr.closed), ErrorCode.LONGPOLL_SESSION_UNKNOWN);
});

t.test('longpoll client - requests unanswered: time-outs resend, then N in a row close with LONGPOLL_CONNECTION_FAILED', async (t) => {
  const { clock, gw, closed } = await dialed(t);
  t.equal(gw.open.length, 1);
  clock.advance(34_999);
  await settle();
  t.equal(gw.requests.length, 2, 'nothing before responseTimeoutMs');
  clock.advance(1);
  await settle();
  t.equal(gw.requests.length, 3, 'a new request at responseTimeoutMs');
  t.ok(gw.requests[1]!.signal.aborted, 'the one given up on (it cannot still be held) was aborted');
  clock.advance(35_000);
  await settle();
  t.equal(closed(), null, 'two in a row: still open');
  clock.advance(35_000);
  await settle();
  t.equal(codeOf(closed()), ErrorCode.LONGPOLL_CONNECTION_FAILED, 'three in a row: failed');
  t.ok(gw.requests.every((r) => r.done || r.signal.aborted || r.body?.end !== undefined), 'nothing left in flight but the end');
  t.equal(gw.last.body!.end?.code, ErrorCode.LONGPOLL_CONNECTION_FAILED, 'the end names the code');
});

t.test('longpoll client - requests failing at once are paced and N in a row close with LONGPOLL_CONNECTION_FAILED', async (t) => {
  const { clock, gw, closed } = await dialed(t);
  gw.onRequest = (r) => {
    if (r.body?.end === undefined) queueMicrotask(() => gw.fail(r, 'ECONNREFUSED'));
  };
  gw.fail(gw.open[0]!, 'ECONNREFUSED');
  await settle();
  const after1 = gw.requests.length;
  t.equal(after1, 2, 'no new request during the pause');
  clock.advance(99);
  await settle();
  t.equal(gw.requests.length, 2, 'not before 100 ms');
  clock.advance(1);
  await settle();
  t.equal(gw.requests.length, 3, 'one after the 100 ms pause');
  clock.advance(200);
  await settle();
  t.equal(codeOf(closed()), ErrorCode.LONGPOLL_CONNECTION_FAILED, 'the third failure in a row ends it');
  t.ok(gw.requests.length <= 5, `no busy loop: ${gw.requests.length} requests in all`);
});

t.test('longpoll client - closing sends one last request carrying end (and queued frames); in-flight ones are aborted', async (t) => {
  const { gw, tr } = await dialed(t);
  const held = gw.open[0]!;
  tr.send({ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'agent stopping' });
  tr.close();
  await settle();
  const last = gw.last;
  t.not(last, held);
  t.same(last.body!.end, { code: 'CLOSED', reason: 'closed' }, 'end carried');
  t.equal(last.body!.session, session);
  gw.apply(last);
  t.same(gw.frames.map((f) => f.t), [FrameType.BYE], 'the BYE went in the same body');
  t.ok(held.signal.aborted, 'the held request was aborted');
  t.ok(gw.transport.isClosed, 'the gateway side ended');
  await settle();
  t.equal(gw.requests.filter((r) => r.body?.end).length, 1, 'end sent once');
});

t.test('longpoll client - a close with an error code sends that code in end', async (t) => {
  const { gw, tr } = await dialed(t);
  tr.close(new FerryError(ErrorCode.TRANSPORT_SWITCH, 'switching'));
  await settle();
  t.same(gw.last.body!.end, { code: ErrorCode.TRANSPORT_SWITCH, reason: 'switching' });
});

t.test('longpoll client - end from the gateway closes with its code; nothing owed back', async (t) => {
  const { gw, tr } = await dialed(t);
  const before = gw.requests.length;
  gw.exchange(gw.open[0]!, { end: { code: ErrorCode.SHUTDOWN, reason: 'gateway stopping' } });
  t.equal(codeOf(await tr.closed), ErrorCode.SHUTDOWN);
  await settle();
  t.equal(gw.requests.length, before, 'no end sent back');
});

t.test('longpoll client - a response acknowledging what was never sent closes with LONGPOLL_ACK_INVALID', async (t) => {
  const { gw, tr } = await dialed(t);
  gw.respond(gw.open[0]!, { ack: 5 });
  t.equal(codeOf(await tr.closed), ErrorCode.LONGPOLL_ACK_INVALID);
});

t.test('longpoll client - 503 with retry-after: no request before it', async (t) => {
  const { clock, gw, counters } = await dialed(t);
  gw.refuse(gw.open[0]!, 503, ErrorCode.GATEWAY_BUSY, 5_000);
  await settle();
  t.equal(counters.busy, 1);
  clock.advance(4_999);
  await settle();
  t.equal(gw.requests.length, 2, 'none before 5000 ms');
  clock.advance(1);
  await settle();
  t.equal(gw.requests.length, 3, 'the next at 5000 ms');
});

t.test('longpoll client - 429 with the retry-after the Post read from the header', async (t) => {
  const { clock, gw } = await dialed(t);
  const r = gw.open[0]!;
  r.done = true;
  r.resolve({ status: 429, body: new Uint8Array(0), retryAfterMs: 2_000 });
  await settle();
  clock.advance(1_999);
  await settle();
  t.equal(gw.requests.length, 2);
  clock.advance(1);
  await settle();
  t.equal(gw.requests.length, 3);
});

t.test('longpoll client - dial: a refusal rejects with its code and retry-after; no answer in openTimeoutMs rejects and aborts', async (t) => {
  const clock = new FakeClock();
  const gw = new Peer();
  const dial = longPollDialer({ post: gw.post, agentId: 'pi-1', clock, log: silentLog, limits, openTimeoutMs: 4_000 });
  const refused = dial();
  await settle();
  gw.refuse(gw.requests[0]!, 503, ErrorCode.GATEWAY_BUSY, 7_000);
  const err = await refused.catch((e: unknown) => e);
  t.ok(err instanceof LongPollRefusal, 'a LongPollRefusal');
  t.equal(codeOf(err), ErrorCode.GATEWAY_BUSY);
  t.equal((err as LongPollRefusal).retryAfterMs, 7_000);
  const proxied = dial();
  await settle();
  const r = gw.requests[1]!;
  r.done = true;
  r.resolve({ status: 502, body: Buffer.from('<html>Bad Gateway</html>') });
  t.equal(codeOf(await proxied.catch((e: unknown) => e)), ErrorCode.LONGPOLL_HTTP_STATUS, 'a proxy\'s 502: LONGPOLL_HTTP_STATUS');
  const hanging = dial();
  await settle();
  clock.advance(3_999);
  await settle();
  t.notOk(gw.requests[2]!.signal.aborted);
  clock.advance(1);
  t.equal(codeOf(await hanging.catch((e: unknown) => e)), ErrorCode.LONGPOLL_CONNECTION_FAILED);
  t.ok(gw.requests[2]!.signal.aborted, 'the opening request was aborted');
  const garbled = dial();
  await settle();
  const g = gw.requests[3]!;
  g.done = true;
  g.resolve({ status: 200, body: Buffer.from('not cbor at all') });
  t.equal(codeOf(await garbled.catch((e: unknown) => e)), ErrorCode.LONGPOLL_BODY_INVALID, 'an unreadable opening answer fails the dial');
  t.throws(() => longPollDialer({ post: gw.post, agentId: 'pi-1', clock, log: silentLog, policy: { requestsUnansweredMax: 0 } }), { code: ErrorCode.CONFIG_INVALID }, 'bad options fail when the dialer is made');
});

/**
 * The lossy run: a gateway loop with the hold policy answers the client's requests; the network
 * loses requests and responses, garbles responses, duplicates requests (the copy gets 409) and
 * delays everything, at random (seeded). Both sides send frames at random. Once the faults stop,
 * each side must have got every frame of the other exactly once, in order, on one session.
 */
t.test('longpoll client - lossy exchanges: every frame exactly once, in order, on one session', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
  const clock = new FakeClock();
  const gw = new Peer();
  const hold = new HoldPolicy<Req>({ holdMs: 25_000, lingerMs: 20 });
  let highestTaken = 0;
  let faults = true;
  const stats = { lostRequests: 0, lostResponses: 0, garbled: 0, duplicated: 0, stale: 0 };
  const later = (fn: () => void): void => {
    clock.setTimeout(fn, int(1, faults ? 300 : 20));
  };
  const answer = (r: Req | undefined): void => {
    if (r === undefined || r.done) return;
    if (faults && rng() < 0.1) {
      stats.lostResponses++;
      gw.channel.nextBundle(); // built, and lost on the way
      later(() => gw.fail(r));
      r.done = true;
      return;
    }
    if (faults && rng() < 0.05) {
      stats.garbled++;
      gw.channel.nextBundle();
      r.done = true;
      later(() => r.resolve({ status: 200, body: Buffer.from([0xff, 0x00, int(0, 255)]) }));
      return;
    }
    const res: PostResult = { status: 200, body: encodeBody({ kind: BodyKind.RESPONSE, session, answers: r.body!.bundle, ...gw.channel.nextBundle() }) };
    r.done = true;
    later(() => r.resolve(res));
  };
  const pump = (): void => {
    while (hold.held !== undefined && gw.channel.hasFullBundle()) answer(hold.bundleReady());
    if (gw.channel.stats().sendableMessages > 0) answer(hold.messagesWaiting(clock.now()));
  };
  const arrive = (r: Req, copy: boolean): void => {
    if (r.signal.aborted) return;
    if (r.body === undefined) throw new Error('the client sent an unreadable body');
    const order = requestOrder(highestTaken, r.body.bundle);
    gw.apply(r);
    if (order === RequestOrder.DUPLICATE || order === RequestOrder.STALE) {
      stats.stale++;
      if (!copy && !r.done) {
        r.done = true;
        later(() => r.resolve({ status: 409, body: Buffer.from(JSON.stringify({ code: ErrorCode.LONGPOLL_REQUEST_STALE, message: 'stale' })) }));
      }
      return;
    }
    highestTaken = r.body.bundle;
    for (const due of hold.request(r, clock.now(), gw.channel.hasFullBundle())) answer(due);
    pump();
  };
  gw.onSendable = () => pump();
  gw.onRequest = (r) => {
    if (r.body?.session === undefined) return; // the opening: answered below
    if (faults && rng() < 0.1) {
      stats.lostRequests++;
      later(() => { if (!r.done) { r.done = true; r.reject(new Error('ECONNRESET')); } });
      return;
    }
    later(() => arrive(r, false));
    if (faults && rng() < 0.05) {
      stats.duplicated++;
      later(() => arrive(r, true));
    }
  };
  const holdTimer = (): void => {
    answer(hold.tick(clock.now()));
    clock.setTimeout(holdTimer, 50);
  };
  holdTimer();

  const dial = longPollDialer({ post: gw.post, agentId: 'pi-1', clock, log: silentLog, limits, policy: { ...policy, requestsUnansweredMax: 1_000_000 } });
  const pending = dial();
  await settle();
  gw.exchange(gw.requests[0]!);
  const tr: Transport = await pending;
  const got: Frame[] = [];
  tr.onFrame((f) => got.push(f));
  let closedWith: Error | undefined | null = null;
  void tr.closed.then((e) => (closedWith = e));

  let agentSent = 0;
  let gatewaySent = 0;
  const faultsUntilMs = clock.now() + 120_000;
  const endMs = clock.now() + 400_000;
  while (clock.now() < endMs) {
    if (clock.now() >= faultsUntilMs) faults = false;
    if (clock.now() < faultsUntilMs) {
      if (rng() < 0.3) for (let i = int(1, rng() < 0.1 ? 30 : 2); i > 0; i--) tr.send(ping(++agentSent));
      if (rng() < 0.2) for (let i = int(1, rng() < 0.1 ? 30 : 2); i > 0; i--) gw.transport.send(pong(++gatewaySent));
    }
    clock.advance(int(1, 60));
    await settle();
    if (closedWith !== null) break;
  }
  const seqOk = (frames: Frame[], n: number): boolean => frames.length === n && ids(frames).every((id, i) => id === i + 1);
  t.equal(closedWith, null, `the session stayed open (SEED=${seed})`);
  t.ok(seqOk(gw.frames, agentSent), `the gateway got PING 1..${agentSent} once each, in order; got ${gw.frames.length} (SEED=${seed})`);
  t.ok(seqOk(got, gatewaySent), `the agent got PONG 1..${gatewaySent} once each, in order; got ${got.length} (SEED=${seed})`);
  t.ok(stats.lostRequests > 0 && stats.lostResponses > 0 && stats.garbled > 0 && stats.duplicated > 0, `faults happened: ${JSON.stringify(stats)}`);
  tr.close();
});
