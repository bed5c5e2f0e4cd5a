/**
 * longpoll sessions - the gateway's long-poll sessions without HTTP, on a fake clock: opening,
 * holding, linger, hold limit, expiry, binding to the agent, stale requests, bad bodies, the
 * trust rule, ends from either side, limits and close(). The test plays both the agent (a
 * LongPollPeer building request bodies) and the gateway session (the ChannelTransport handed out).
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { Admission } from '../../gateway/admission.js';
import { longPollSessionLimitsDefault, type LongPollSessionLimits } from '../../gateway/longpoll/limits.js';
import { LongPollSessions, type LongPollReply } from '../../gateway/longpoll/sessions.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import { BodyKind, encodeBody } from '../../protocol/longpoll/body.js';
import type { ChannelLimits } from '../../protocol/longpoll/limits.js';
import type { PeerInfo, Transport } from '../../protocol/transport.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { LongPollPeer } from '../helpers/longpoll-peer.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const smallChannel: ChannelLimits = {
  messageBytesMax: 1024, bundleMessagesMax: 4, bundleBytesMax: 4096, queueMessagesMax: 64, queueBytesMax: 64 * 1024, reorderMessagesMax: 16, reorderBytesMax: 16 * 1024,
};
const peerInfo: PeerInfo = { address: '10.0.0.7', tls: false };
const ping = (id: number): Frame => ({ t: FrameType.PING, id });

function rig(t: Test, limits: Partial<LongPollSessionLimits> = {}, extra: { admit?: (a: string) => ReturnType<Admission['admit']> } = {}) {
  const clock = new FakeClock();
  const transports: Transport[] = [];
  let ids = 0;
  const sessions = new LongPollSessions({
    clock, log: createLog({ write: () => undefined }), randomId: () => `sess-${++ids}`,
    onTransport: (tr) => transports.push(tr),
    limits: { ...longPollSessionLimitsDefault, channel: smallChannel, ...limits },
    ...(extra.admit ? { admit: extra.admit } : {}),
  });
  t.teardown(() => sessions.close());
  /** Sends a body; `reply` is set once answered (a promise that stays pending while held). */
  const send = (bytes: Uint8Array, agent: string | null = 'pi-1', peer: PeerInfo = peerInfo, aborts?: (() => void)[]) => {
    const out: { reply: LongPollReply | undefined; done: Promise<LongPollReply> } = { reply: undefined, done: undefined as unknown as Promise<LongPollReply> };
    out.done = sessions.handle({ body: bytes, agent: agent ?? undefined, peer }, aborts ? { onAbort: (fn) => aborts.push(fn) } : undefined).then((r) => (out.reply = r));
    return out;
  };
  /** Opens a session for `agent`; returns its peer, the gateway's transport and the frames it received. */
  const open = async (agent = 'pi-1', peer: PeerInfo = peerInfo) => {
    const p = new LongPollPeer(agent, smallChannel);
    const r = await send(p.request().bytes, agent, peer).done;
    t.equal(r.status, 200, 'opening request answered at once with 200');
    p.accept(r.body);
    const tr = transports[transports.length - 1]!;
    const got: Frame[] = [];
    tr.onFrame((f) => got.push(f));
    return { p, tr, got };
  };
  return { clock, sessions, transports, send, open };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
const codeOf = (r: LongPollReply | undefined): string => (r === undefined ? 'pending' : r.status === 200 ? '200' : (JSON.parse(Buffer.from(r.body).toString()) as { code: string }).code);

t.test('longpoll sessions - opening makes a session, hands over its transport with the peer, answers at once with s', async (t) => {
  const { open, transports, sessions } = rig(t);
  const certPeer: PeerInfo = { address: '10.0.0.9', tls: true, certSubject: 'pi-1' };
  const { p, tr } = await open('pi-1', certPeer);
  t.equal(p.session, 'sess-1', 'the response carries the session ID');
  t.equal(transports.length, 1);
  t.same(tr.peer, { ...certPeer, longpoll: true }, 'the transport carries the peer info, marked long-poll');
  t.equal(sessions.stats().sessions, 1);
});

t.test('longpoll sessions - a request is held until the next arrives, which answers it (even empty) and is held in turn', async (t) => {
  const { send, open, sessions } = rig(t);
  const { p, got } = await open();
  p.send(ping(1));
  const r2 = send(p.request().bytes);
  await settle();
  t.equal(r2.reply, undefined, 'request 2 is held');
  t.same(got.map((f) => f.t), [FrameType.PING], 'its message reached the gateway session at once');
  t.equal(sessions.stats().heldRequests, 1);
  const r3 = send(p.request().bytes);
  await settle();
  t.equal(r2.reply?.status, 200, 'request 2 answered when request 3 came');
  t.equal(p.accept(r2.reply!.body).body.answers, 2, 'the answer names request 2');
  t.equal(r3.reply, undefined, 'request 3 is held');
  t.equal(sessions.stats().heldRequests, 1, 'one held per session');
});

t.test('longpoll sessions - messages for the agent go in the held answer after lingerMs; a full bundle at once; hold limit answers empty', async (t) => {
  const { send, open, clock } = rig(t, { lingerMs: 20, holdMs: 1000 });
  const { p, tr } = await open();
  const r2 = send(p.request().bytes);
  await settle();
  tr.send(ping(7));
  clock.advance(19);
  await settle();
  t.equal(r2.reply, undefined, 'not before lingerMs');
  clock.advance(1);
  await settle();
  t.equal(r2.reply?.status, 200, 'answered at lingerMs');
  t.same(p.accept(r2.reply!.body).frames, [ping(7)], 'carrying the message');

  const r3 = send(p.request().bytes);
  await settle();
  for (let i = 0; i < smallChannel.bundleMessagesMax; i++) tr.send(ping(100 + i));
  await settle();
  t.equal(r3.reply?.status, 200, 'a full bundle is answered at once');
  t.equal(p.accept(r3.reply!.body).frames.length, smallChannel.bundleMessagesMax);

  const r4 = send(p.request().bytes);
  clock.advance(999);
  await settle();
  t.equal(r4.reply, undefined, 'held until the hold limit');
  clock.advance(1);
  await settle();
  t.equal(r4.reply?.status, 200, 'answered at holdMs');
  t.same(p.accept(r4.reply!.body).frames, [], 'empty');
});

t.test('longpoll sessions - a session without a request for sessionIdleMs is closed and forgotten: later requests get 404', async (t) => {
  const { send, open, clock, sessions } = rig(t, { holdMs: 1000, sessionIdleMs: 5000 });
  const { p, tr } = await open();
  clock.advance(4000);
  const r2 = send(p.request().bytes); // held for 1000, then answered: activity until 4000 + 1000
  await settle();
  clock.advance(1000);
  await r2.done;
  clock.advance(4999);
  t.equal(sessions.stats().sessions, 1, 'still there before sessionIdleMs after the last request');
  clock.advance(1);
  t.equal(sessions.stats().sessions, 0, 'forgotten at sessionIdleMs');
  const err = await tr.closed;
  t.equal((err as { code?: string }).code, ErrorCode.LONGPOLL_SESSION_UNKNOWN, 'its transport closed');
  const r = await send(p.request().bytes).done;
  t.equal(r.status, 404);
  t.equal(codeOf(r), ErrorCode.LONGPOLL_SESSION_UNKNOWN);
});

t.test('longpoll sessions - another agent (header or certificate) gets 403 and the session goes on for its own agent', async (t) => {
  const { send, open, sessions } = rig(t);
  const certPeer: PeerInfo = { address: '10.0.0.9', tls: true, certSubject: 'pi-1' };
  const { p, got, tr } = await open('pi-1', certPeer);
  p.send(ping(1));
  const stolen = p.request();
  const a = await send(stolen.bytes, 'pi-2', certPeer).done;
  t.equal(a.status, 403);
  t.equal(codeOf(a), ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'another agent in the header');
  const b = await send(stolen.bytes, 'pi-1', { address: '10.0.0.66', tls: true, certSubject: 'pi-2' }).done;
  t.equal(codeOf(b), ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'the right header with another certificate');
  const c = await send(stolen.bytes, null, certPeer).done;
  t.equal(codeOf(c), ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'no header');
  t.same(got, [], 'nothing of the refused requests reached the gateway session');
  // The same body from its own agent is taken: the refusals consumed nothing.
  const d = send(stolen.bytes, 'pi-1', certPeer);
  await settle();
  t.same(got, [ping(1)], 'the legit request delivers');
  t.equal(d.reply, undefined, 'and is held');
  t.equal(tr.closed instanceof Promise, true);
  t.equal(sessions.stats().refused[ErrorCode.LONGPOLL_SESSION_FORBIDDEN], 3, 'refusals counted by code');
});

t.test('longpoll sessions - a HELLO naming another agent than the opening request ends the session (LONGPOLL_SESSION_FORBIDDEN)', async (t) => {
  const { send, open } = rig(t);
  const { p, tr, got } = await open('pi-1');
  p.send({ t: FrameType.HELLO, version: protocolVersion, agent: 'pi-2', ackedSeq: 0 });
  const r = await send(p.request().bytes).done;
  t.same(got, [], 'the HELLO never reached the gateway session');
  t.equal(((await tr.closed) as { code?: string }).code, ErrorCode.LONGPOLL_SESSION_FORBIDDEN);
  t.equal(r.status, 200, 'the request is answered at once');
  t.equal(p.accept(r.body).body.end?.code, ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'with the termination');
  t.equal((await send(p.request().bytes).done).status, 404, 'then the session is gone');
});

t.test('longpoll sessions - a duplicate or older request gets 409 at once, nothing of it applied, the held one and the session unharmed', async (t) => {
  const { send, open } = rig(t);
  const { p, got } = await open();
  p.send(ping(1));
  const q2 = p.request();
  const r2 = send(q2.bytes);
  await settle();
  t.same(got, [ping(1)]);
  const dup = await send(q2.bytes).done;
  t.equal(dup.status, 409);
  t.equal(codeOf(dup), ErrorCode.LONGPOLL_REQUEST_STALE, 'a duplicate');
  t.equal(r2.reply, undefined, 'the held request stays held');
  const q3 = p.request();
  const q4 = p.request(); // request 4 overtakes request 3
  const r4 = send(q4.bytes);
  await settle();
  t.equal(r2.reply?.status, 200, 'request 4 (after a gap) answers the held one');
  const r3 = await send(q3.bytes).done;
  t.equal(codeOf(r3), ErrorCode.LONGPOLL_REQUEST_STALE, 'the overtaken request 3');
  t.equal(r4.reply, undefined, 'request 4 stays held');
  t.same(got, [ping(1)], 'each message delivered once');
});

t.test('longpoll sessions - garbage gets 400, an oversize body 413, neither harms a session', async (t) => {
  const { send, open } = rig(t);
  const { p, got } = await open();
  const garbage = await send(Buffer.from('GET / HTTP/1.1\r\n\r\n')).done;
  t.equal(garbage.status, 400);
  t.equal(codeOf(garbage), ErrorCode.LONGPOLL_BODY_INVALID);
  const empty = await send(Buffer.alloc(0)).done;
  t.equal(codeOf(empty), ErrorCode.LONGPOLL_BODY_INVALID, 'an empty body');
  const huge = await send(Buffer.alloc(200_000, 0xa0)).done;
  t.equal(huge.status, 413);
  t.equal(codeOf(huge), ErrorCode.LONGPOLL_BODY_TOO_LARGE);
  const openingWithMessages = encodeBody({ kind: BodyKind.REQUEST, bundle: 1, ack: 0, ranges: [], seen: 0, messages: [{ n: 1, bytes: Buffer.from([1]) }] });
  t.equal(codeOf(await send(openingWithMessages).done), ErrorCode.LONGPOLL_BODY_INVALID, 'an opening request carrying messages');
  p.send(ping(2));
  send(p.request().bytes);
  await settle();
  t.same(got, [ping(2)], 'the session still delivers');
});

t.test('longpoll sessions - a report of what the gateway never sent (LONGPOLL_ACK_INVALID) ends the session', async (t) => {
  const { send, open } = rig(t);
  const { p, tr } = await open();
  const forged = encodeBody({ kind: BodyKind.REQUEST, session: p.session!, bundle: 2, ack: 5, ranges: [], seen: 1, messages: [] });
  const r = await send(forged).done;
  t.equal(r.status, 400);
  t.equal(codeOf(r), ErrorCode.LONGPOLL_ACK_INVALID);
  t.equal(((await tr.closed) as { code?: string }).code, ErrorCode.LONGPOLL_ACK_INVALID, 'the transport closed');
  t.equal((await send(p.request().bytes).done).status, 404, 'the session is gone');
});

t.test('longpoll sessions - an end from the agent closes the transport with its code; an end from the gateway goes in the held answer', async (t) => {
  const { send, open } = rig(t);
  const a = await open('pi-1');
  const r = await send(a.p.request({ end: { code: ErrorCode.SHUTDOWN, reason: 'agent stopping' } }).bytes).done;
  t.equal(r.status, 200, 'answered at once');
  t.equal(a.p.accept(r.body).body.end, undefined, 'nothing owed back');
  t.equal(((await a.tr.closed) as { code?: string }).code, ErrorCode.SHUTDOWN, "closed with the agent's code");
  t.equal((await send(a.p.request().bytes).done).status, 404);

  const b = await open('pi-2');
  const held = send(b.p.request().bytes, 'pi-2');
  await settle();
  b.tr.send({ t: FrameType.BYE, code: ErrorCode.AUTH_FAILED, reason: 'no' });
  b.tr.close(new Error('AUTH_FAILED'));
  const answer = await held.done;
  const got = b.p.accept(answer.body);
  t.equal(got.frames[0]?.t, FrameType.BYE, 'the held request carries the BYE');
  t.ok(got.body.end, 'and the termination');
  t.equal((await send(b.p.request().bytes, 'pi-2').done).status, 404, 'then the session is gone');
});

t.test('longpoll sessions - close() answers every held request with end SHUTDOWN and refuses later ones', async (t) => {
  const { send, open, sessions } = rig(t);
  const { p, tr } = await open();
  const held = send(p.request().bytes);
  await settle();
  sessions.close();
  const r = await held.done;
  t.equal(p.accept(r.body).body.end?.code, ErrorCode.SHUTDOWN);
  t.equal(((await tr.closed) as { code?: string }).code, ErrorCode.SHUTDOWN);
  t.same(sessions.stats(), { sessions: 0, heldRequests: 0, refused: {}, requests: 2, sessionsOpened: 1 }, 'nothing held, nothing refused; the opening and the held request were answered');
  const later = await send(new LongPollPeer('pi-1').request().bytes).done;
  t.equal(later.status, 503);
  t.equal(codeOf(later), ErrorCode.SHUTDOWN);
});

t.test('longpoll sessions - heldRequestsMax: a request that would be held past it gets 503 GATEWAY_BUSY, nothing applied', async (t) => {
  const { send, open, sessions } = rig(t, { heldRequestsMax: 1 });
  const a = await open('pi-1');
  const b = await open('pi-2');
  send(a.p.request().bytes, 'pi-1');
  await settle();
  b.p.send(ping(1));
  const r = await send(b.p.request().bytes, 'pi-2').done;
  t.equal(r.status, 503);
  t.equal(codeOf(r), ErrorCode.GATEWAY_BUSY);
  t.ok(r.retryAfterS !== undefined && r.retryAfterS >= 1, 'with a retry-after');
  t.same(b.got, [], 'nothing of it applied');
  t.equal(sessions.stats().heldRequests, 1);
  // A session that already holds one replaces it: the count does not grow, so it is not refused.
  const again = send(a.p.request().bytes, 'pi-1');
  await settle();
  t.equal(again.reply, undefined, 'the holding session goes on');
});

t.test('longpoll sessions - a client that goes away frees its hold', async (t) => {
  const { send, open, sessions, clock } = rig(t, { lingerMs: 20 });
  const { p, tr } = await open();
  const aborts: (() => void)[] = [];
  const r = send(p.request().bytes, 'pi-1', peerInfo, aborts);
  await settle();
  t.equal(sessions.stats().heldRequests, 1);
  for (const fn of aborts) fn();
  t.equal(sessions.stats().heldRequests, 0, 'freed');
  tr.send(ping(3));
  const next = send(p.request().bytes);
  clock.advance(20);
  await settle();
  t.equal(r.reply, undefined, 'the aborted one is never answered');
  t.equal(next.reply?.status, 200, 'the next request takes what waited');
  t.same(p.accept(next.reply!.body).frames, [ping(3)]);
});

t.test('longpoll sessions - requestsPerSessionPerSecondMax gives 429; admission refuses an opening request', async (t) => {
  const { send, open, clock } = rig(t, { requestsPerSessionPerSecondMax: 3 });
  const { p } = await open(); // the opening took one token
  send(p.request().bytes);
  send(p.request().bytes);
  const r = await send(p.request().bytes).done;
  t.equal(r.status, 429);
  t.equal(codeOf(r), ErrorCode.LONGPOLL_TOO_MANY_REQUESTS);
  t.ok(r.retryAfterS! >= 1);
  clock.advance(1000);
  const ok = send(p.request().bytes);
  await settle();
  t.notOk(ok.reply !== undefined && ok.reply.status !== 200, 'after a second, requests pass again');

  let now = 0;
  const admission = new Admission({ connectionsPerAddressMax: 1, sessionsPerSecondMax: 100 }, { now: () => now, rng: () => 0 });
  const r2 = rig(t, {}, { admit: (a) => admission.admit(a) });
  const first = await r2.open('pi-1');
  const second = await r2.send(new LongPollPeer('pi-2').request().bytes, 'pi-2').done;
  t.equal(second.status, 429);
  t.equal(codeOf(second), ErrorCode.CONNECTIONS_PER_ADDRESS, 'one session per address here');
  // Ending the first session releases its admission.
  await r2.send(first.p.request({ end: { code: ErrorCode.SHUTDOWN, reason: 'bye' } }).bytes).done;
  now += 2000;
  t.equal((await r2.send(new LongPollPeer('pi-2').request().bytes, 'pi-2').done).status, 200, 'admitted once the first ended');
});
