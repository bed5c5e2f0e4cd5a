/**
 * Review reproductions (issue 11 long-poll): what a closed long-poll session keeps at the gateway.
 * The gateway core closes a session's transport on its own (no HELLO within helloTimeoutMs, a
 * failed authentication, SESSION_REPLACED). Over TCP that frees the socket and its admission
 * slot at once; a long-poll session closed while no request is held stays in LongPollSessions,
 * with its admission slot, its sessionsMax place and its channel (reorder window and queue),
 * until the peer's next request or sessionIdleMs (60 s by default).
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

t.test('review - a session the gateway core closed (no HELLO in time) keeps its admission slot until sessionIdleMs', async (t) => {
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
  // It fills the reorder window before authentication: messages 2.. (1 never comes), held, not delivered.
  const forged = p.request();
  const big = new Uint8Array(1000).fill(7);
  const messages = Array.from({ length: 60 }, (_, i) => ({ n: i + 2, bytes: big }));
  const held = send(encodeBody({ ...forged.body, messages }));
  await settle();
  // The next request answers it; its ack reports the held range: ~60 KB kept, never seen by the core.
  const next = send(p.request().bytes);
  const r = await held;
  const report = decodeBody(r.body, BodyKind.RESPONSE, bodyLimitsFor(channel));
  t.same(report.ranges, [[2, 61]], 'the gateway holds 60 messages of an unauthenticated peer');
  clock.advance(25_000); // the hold limit answers `next`
  await next;

  // The core's HELLO time-out (5 s) closes the transport, as over TCP.
  transports[0]!.close(new FerryError(ErrorCode.PEER_TIMEOUT, 'no HELLO in time'));
  await settle();
  now += 5000;
  clock.advance(5000);
  // Over TCP the slot is free now. Here the closed session still counts: another agent behind the
  // same address (one slot) is refused until sessionIdleMs passes.
  const other = await send(new LongPollPeer('pi-2', channel).request().bytes, 'pi-2');
  t.equal(sessions.stats().sessions, 0, 'a session whose transport closed is not kept (its channel memory with it)');
  t.equal(other.status, 200, 'its admission slot is free once its transport closed');
});
