/**
 * Review reproduction (issue 11): the agent's long-poll carrier has fixed message limits
 * (channelLimitsDefault: a message, one encoded frame, of at most 1 MiB; agent/link/longpoll-client.ts
 * takes no limits from main.ts), while the Link sizes DATA frames by the frameBytesMax the
 * gateway names in WELCOME (gateway limits.frameBytesMax, which may be larger, with a
 * packetBytesMax to match). A packet that fits the gateway's limits but not 1 MiB is sent as one
 * DATA frame; ChannelTransport.send then closes the session with LONGPOLL_QUEUE_FULL though the
 * queue is empty; the Link reconnects and sends the same first packet again: the same close,
 * forever. Over TCP the packet is delivered. Nothing dead-letters it.
 */
import t from 'tap';
import { encodeFrameBody } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { channelLimitsDefault } from '../../protocol/longpoll/limits.js';
import { channelLimitsFor } from '../../gateway/longpoll/limits.js';

t.test('review - a DATA frame within the gateway frameBytesMax but over 1 MiB closes the agent long-poll session as QUEUE_FULL', async (t) => {
  const gatewayFrameBytesMax = 4 * 1024 * 1024;
  const frame: Frame = { t: FrameType.DATA, packets: [{ seq: 1, target: 'big', ts: 1, data: new Uint8Array(1536 * 1024) }] };
  const bytes = encodeFrameBody(frame).length;
  t.ok(bytes <= gatewayFrameBytesMax, `the frame (${bytes} bytes) is within what the gateway reads, so the Link sends it`);
  t.ok(bytes <= channelLimitsFor(gatewayFrameBytesMax).messageBytesMax, 'and within what the gateway long-poll channel accepts');

  // The agent's side, built as longPollDialer builds it (channelLimitsDefault).
  const channel = new BundleChannel(channelLimitsDefault);
  const tr = new ChannelTransport(channel, { onSendable: () => undefined, onClose: () => undefined });
  tr.send(frame);
  t.equal(tr.isClosed, false, 'the agent long-poll session carries a frame the gateway takes (as TCP does)');
  const err = tr.isClosed ? await tr.closed : undefined;
  t.not((err as { code?: string } | undefined)?.code, ErrorCode.LONGPOLL_QUEUE_FULL, 'not closed as QUEUE_FULL with an empty queue');
});
