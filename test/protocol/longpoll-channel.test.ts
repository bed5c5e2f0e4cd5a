import t from 'tap';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { ChannelLimits } from '../../protocol/longpoll/limits.js';
import { refuses } from '../helpers/refuses.js';

const limits: ChannelLimits = { messageBytesMax: 10, bundleMessagesMax: 3, bundleBytesMax: 20, queueMessagesMax: 8, queueBytesMax: 60, reorderMessagesMax: 4, reorderBytesMax: 30 };
const msg = (i: number, len = 2): Uint8Array => new Uint8Array(len).fill(i);
const ns = (b: { messages: { n: number }[] }): number[] => b.messages.map((m) => m.n);
const vals = (ms: Uint8Array[]): number[] => ms.map((m) => m[0]!);

t.test('longpoll channel - bundles take unsent messages in order up to the limits; outstanding ones are not copied into the next', async (t) => {
  const c = new BundleChannel(limits);
  for (let i = 1; i <= 5; i++) c.send(msg(i));
  t.ok(c.hasFullBundle(), 'three waiting fill a bundle');
  t.same(ns(c.nextBundle()), [1, 2, 3]);
  t.same(ns(c.nextBundle()), [4, 5], 'the held request\'s messages are not sent again');
  t.same(ns(c.nextBundle()), [], 'nothing new');
  c.send(msg(6, 10)); c.send(msg(7, 10)); c.send(msg(8, 10));
  t.same(ns(c.nextBundle()), [6, 7], 'bytes limit: 20');
});

t.test('longpoll channel - acks drop, a bundle the peer read without them marks messages lost, a time-out resends all', async (t) => {
  const c = new BundleChannel(limits);
  for (let i = 1; i <= 6; i++) c.send(msg(i));
  t.same(ns(c.nextBundle()), [1, 2, 3]); // bundle 1
  t.same(ns(c.nextBundle()), [4, 5, 6]); // bundle 2
  t.equal(c.acknowledged({ ack: 1, ranges: [[3, 3]], seen: 1 }), 2, 'ack 1 and range 3 dropped');
  t.same(ns(c.nextBundle()), [2], 'bundle 1 was read without 2: lost; bundle 2 still outstanding');
  t.equal(c.stats().queuedMessages, 4);
  c.resendOutstanding();
  t.same(ns(c.nextBundle()), [2, 4, 5], 'after a time-out everything outstanding goes again, in order');
  t.equal(c.acknowledged({ ack: 6, ranges: [], seen: 4 }), 4);
  t.equal(c.stats().queuedMessages, 0);
  t.equal(c.stats().queuedBytes, 0);
});

t.test('longpoll channel - an ack or seen for what was never sent is refused and changes nothing', async (t) => {
  const c = new BundleChannel(limits);
  c.send(msg(1)); c.send(msg(2));
  c.nextBundle();
  c.send(msg(3));
  refuses(t, () => c.acknowledged({ ack: 3, ranges: [], seen: 1 }), ErrorCode.LONGPOLL_ACK_INVALID, 'ack of a queued, unsent message');
  refuses(t, () => c.acknowledged({ ack: 0, ranges: [[4, 4]], seen: 1 }), ErrorCode.LONGPOLL_ACK_INVALID, 'a range above what was sent');
  refuses(t, () => c.acknowledged({ ack: 2, ranges: [], seen: 2 }), ErrorCode.LONGPOLL_ACK_INVALID, 'seen of a bundle never built');
  t.equal(c.stats().queuedMessages, 3, 'nothing dropped');
});

t.test('longpoll channel - the queue is bounded: LONGPOLL_QUEUE_FULL until acks free room; oversize messages refused', async (t) => {
  const c = new BundleChannel(limits);
  for (let i = 1; i <= 6; i++) c.send(msg(i, 10));
  t.notOk(c.canSend(1), 'bytes limit 60 reached');
  refuses(t, () => c.send(msg(7, 1)), ErrorCode.LONGPOLL_QUEUE_FULL, 'past queueBytesMax');
  refuses(t, () => c.send(msg(7, 11)), ErrorCode.LONGPOLL_BODY_TOO_LARGE, 'past messageBytesMax');
  c.nextBundle();
  c.acknowledged({ ack: 2, ranges: [], seen: 1 });
  t.ok(c.canSend(10));
  const d = new BundleChannel(limits);
  for (let i = 1; i <= 8; i++) d.send(msg(i, 1));
  refuses(t, () => d.send(msg(9, 1)), ErrorCode.LONGPOLL_QUEUE_FULL, 'past queueMessagesMax');
  refuses(t, () => new BundleChannel({ ...limits, bundleBytesMax: 5 }), ErrorCode.CONFIG_INVALID, 'a bundle smaller than a message');
});

t.test('longpoll channel - receive hands each message on once, in order; a gap is held within the window and reported', async (t) => {
  const c = new BundleChannel(limits);
  const m = (n: number, len = 2) => ({ n, bytes: msg(n, len) });
  t.same(vals(c.receive({ bundle: 1, messages: [m(1), m(2)] })), [1, 2]);
  t.same(vals(c.receive({ bundle: 1, messages: [m(1), m(2)] })), [], 'a duplicate bundle gives nothing');
  t.same(vals(c.receive({ bundle: 3, messages: [m(4), m(6)] })), [], 'after a gap: held');
  t.same(c.nextBundle(), { bundle: 1, messages: [], ack: 2, ranges: [[4, 4], [6, 6]], seen: 3 }, 'held ones reported as ranges');
  t.same(vals(c.receive({ bundle: 4, messages: [m(5), m(7)] })), [], '5 is held; 7 is past the window (5 ahead of 2 > 4) and dropped unreported');
  t.same(vals(c.receive({ bundle: 2, messages: [m(3), m(4), m(5)] })), [3, 4, 5, 6], 'the gap fills: everything held goes in order, 4 and 5 once');
  t.same(c.stats().heldMessages, 0);
  t.same(c.nextBundle().ack, 6, '7 was not reported, so the peer sends it again');
  t.same(vals(c.receive({ bundle: 5, messages: [m(7)] })), [7]);
});

t.test('longpoll channel - the reorder window is bounded in bytes; the next in order is always taken', async (t) => {
  const c = new BundleChannel(limits);
  const m = (n: number, len: number) => ({ n, bytes: msg(n, len) });
  c.receive({ bundle: 1, messages: [m(2, 10), m(3, 10), m(4, 10), m(5, 10)] });
  t.equal(c.stats().heldBytes, 30, 'three held: 30 bytes; the fourth did not fit');
  t.same(vals(c.receive({ bundle: 2, messages: [m(1, 10)] })), [1, 2, 3, 4], 'the next in order passes a full window');
  t.same(vals(c.receive({ bundle: 3, messages: [m(5, 10)] })), [5]);
});

t.test('longpoll channel - an unreadable bundle is reported as not received, and its messages are sent again', async (t) => {
  const agent = new BundleChannel(limits);
  const gateway = new BundleChannel(limits);
  agent.send(msg(1)); agent.send(msg(2));
  agent.nextBundle(); // request 1: unreadable at the gateway, never accepted
  agent.send(msg(3));
  const r2 = agent.nextBundle(); // request 2: carries only 3
  t.same(ns(r2), [3]);
  t.same(vals(gateway.receive(r2)), [], '3 is held behind the gap');
  const resp = gateway.nextBundle();
  t.same({ ack: resp.ack, ranges: resp.ranges, seen: resp.seen }, { ack: 0, ranges: [[3, 3]], seen: 2 });
  agent.acknowledged(resp);
  t.same(ns(agent.nextBundle()), [1, 2], 'bundle 1 is covered by seen 2 but not acked: sent again');
  t.same(vals(gateway.receive({ bundle: 3, messages: [{ n: 1, bytes: msg(1) }, { n: 2, bytes: msg(2) }] })), [1, 2, 3]);
});
