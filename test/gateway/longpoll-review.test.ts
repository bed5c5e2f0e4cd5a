/**
 * Found in review (issue 11 long-poll): what a closed long-poll session kept at the gateway. The
 * gateway core closes a session's transport on its own (no HELLO within helloTimeoutMs, a failed
 * authentication, SESSION_REPLACED). Over TCP that frees the socket and its admission slot at
 * once; a long-poll session closed while no request was held stayed in LongPollSessions, with its
 * admission slot, its sessionsMax place and its channel (reorder window and queue), until the
 * peer's next request or sessionIdleMs (60 s). And before its HELLO a peer could fill the reorder
 * window (4 MiB by default) unauthenticated. Now such a session goes at once, leaving only why it
 * ended for its next request, and before its HELLO a session takes message 1 alone.
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { Admission } from '../../gateway/admission.js';
import { longPollSessionLimitsDefault } from '../../gateway/longpoll/limits.js';
import { LongPollSessions, type LongPollReply } from '../../gateway/longpoll/sessions.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { BodyKind, decodeBody, encodeBody } from '../../protocol/longpoll/body.js';
import { bodyLimitsFor, type ChannelLimits } from '../../protocol/longpoll/limits.js';
import type { PeerInfo, Transport } from '../../protocol/transport.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { LongPollPeer } from '../helpers/longpoll-peer.js';

const channel: ChannelLimits = {
  messageBytesMax: 1024, bundleMessagesMax: 64, bundleBytesMax: 64 * 1024, queueMessagesMax: 64, queueBytesMax: 64 * 1024, reorderMessagesMax: 64, reorderBytesMax: 64 * 1024,
};
const peer: PeerInfo = { address: '10.0.0.66', tls: false };
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('review - before its HELLO a session takes message 1 alone; a session the core closed (no HELLO in time) frees its slot and memory at once and tells its next request why', async (t) => {
  const clock = new FakeClock();
  let now = 0;
  const admission = new Admission({ connectionsPerAddressMax: 1, sessionsPerSecondMax: 100 }, { now: () => now, rng: () => 0 });
  const transports: Transport[] = [];
  let ids = 0;
  const sessions = new LongPollSessions({
    clock, log: createLog({ write: () => undefined }), randomId: () => `s${++ids}`, onTransport: (tr) => transports.push(tr),
    limits: { ...longPollSessionLimitsDefault, channel }, admit: (a) => admission.admit(a),
  });
  t.teardown(() => sessions.close());
  const send = (bytes: Uint8Array, agent = 'pi-1'): Promise<LongPollReply> => sessions.handle({ body: bytes, agent, peer });

  // A client opens a session and never sends a frame (no HELLO).
  const p = new LongPollPeer('pi-1', channel);
  const opened = await send(p.request().bytes);
  t.equal(opened.status, 200);
  p.accept(opened.body);
  // It tries to fill the reorder window before authentication: messages 2.. (1 never comes).
  const forged = p.request();
  const big = new Uint8Array(1000).fill(7);
  const messages = Array.from({ length: 60 }, (_, i) => ({ n: i + 2, bytes: big }));
  const refused = await send(encodeBody({ ...forged.body, messages }));
  t.equal(refused.status, 400, 'before its HELLO a session takes nothing but message 1');
  t.equal((JSON.parse(Buffer.from(refused.body).toString()) as { code: string }).code, ErrorCode.LONGPOLL_BODY_INVALID);
  const next = send(p.request().bytes);
  await settle();
  t.equal(sessions.stats().heldRequests, 1, 'its next request is held as usual');
  clock.advance(25_000); // the hold limit answers it
  const answered = await next;
  t.same(decodeBody(answered.body, BodyKind.RESPONSE, bodyLimitsFor(channel)).ranges, [], 'nothing of the refused body is held');

  // The core's HELLO time-out (5 s) closes the transport, as over TCP.
  transports[0]!.close(new FerryError(ErrorCode.PEER_TIMEOUT, 'no HELLO in time'));
  await settle();
  now += 5000;
  clock.advance(5000);
  // Over TCP the slot is free now. Here the closed session still counts: another agent behind the
  // same address (one slot) is refused until sessionIdleMs passes.
  const other = await send(new LongPollPeer('pi-2', channel).request().bytes, 'pi-2');
  t.equal(sessions.stats().sessions, 1, 'a session whose transport closed is not kept (its channel memory with it): only the new one is');
  t.equal(other.status, 200, 'its admission slot is free once its transport closed');
  // Its own next request learns why it ended (the code sets the agent's back-off), once.
  const late = await send(p.request().bytes);
  t.equal(late.status, 404, 'the ended session is gone');
  t.equal((JSON.parse(Buffer.from(late.body).toString()) as { code: string }).code, ErrorCode.PEER_TIMEOUT, 'with the code it ended with');
  t.equal(JSON.parse(Buffer.from((await send(p.request().bytes)).body).toString()).code, ErrorCode.LONGPOLL_SESSION_UNKNOWN, 'told once; then unknown');
});
