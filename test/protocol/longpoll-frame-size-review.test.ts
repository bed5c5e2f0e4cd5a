/**
 * Found in review (issue 11): the agent's long-poll carrier takes messages (encoded frames) of at
 * most channelLimitsDefault.messageBytesMax (1 MiB), while the Link sized DATA frames by the
 * frameBytesMax the gateway names in WELCOME, which may be larger. A packet that fit the gateway
 * but not 1 MiB went as one DATA frame; ChannelTransport.send closed the session with
 * LONGPOLL_QUEUE_FULL, the Link reconnected and sent the same first packet again: forever. Now the
 * transport names its own frame limit and the Link keeps such a packet back as a dead letter
 * (DATA_TOO_LARGE), as it does for a packet over the gateway's limit; the other way, the gateway
 * builds responses within the default bundle limits every agent reads.
 */
import t from 'tap';
import { GatewayLimits } from '../../agent/link/gateway-limits.js';
import { encodeFrameBody } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type Frame, type WelcomeFrame } from '../../protocol/frames.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { channelLimitsDefault } from '../../protocol/longpoll/limits.js';
import { channelLimitsFor } from '../../gateway/longpoll/limits.js';

const gatewayFrameBytesMax = 4 * 1024 * 1024;
const welcome: WelcomeFrame = { t: FrameType.WELCOME, session: 's', dispatchedSeq: 0, creditPackets: 16, creditBytes: 1 << 24, frameBytesMax: gatewayFrameBytesMax };
const big = { seq: 1, target: 'big', ts: 1, data: new Uint8Array(1536 * 1024) };

t.test('review - a packet within the gateway frameBytesMax but over the long-poll carrier is a dead letter (DATA_TOO_LARGE), not a session closed forever', async (t) => {
  const frame: Frame = { t: FrameType.DATA, packets: [big] };
  t.ok(encodeFrameBody(frame).length <= gatewayFrameBytesMax, 'the frame is within what the gateway reads');
  const tr = new ChannelTransport(new BundleChannel(channelLimitsDefault), { onSendable: () => undefined, onClose: () => undefined });
  t.equal(tr.frameBytesMax, channelLimitsDefault.messageBytesMax, 'the long-poll transport names its own frame limit');
  t.equal(new GatewayLimits(welcome).refusal(big), null, 'over TCP (no carrier limit) the gateway takes it');
  t.equal(new GatewayLimits(welcome, tr.frameBytesMax).refusal(big)?.code, ErrorCode.DATA_TOO_LARGE, 'over long-poll the link keeps it back as DATA_TOO_LARGE');
  t.equal(new GatewayLimits(welcome, tr.frameBytesMax).frameBytesMax, channelLimitsDefault.messageBytesMax, 'and sizes DATA frames to the smaller limit');
});

t.test('review - the gateway builds responses within the default bundle limits, whatever frames it takes', async (t) => {
  const channel = new BundleChannel(channelLimitsFor(gatewayFrameBytesMax));
  // Many frames to the agent, more bytes than a default bundle holds.
  const nack = encodeFrameBody({ t: FrameType.NACK, seq: 1, code: 'X', message: 'y'.repeat(200_000) });
  for (let i = 0; i < 20; i++) channel.send(nack);
  const ob = channel.nextBundle(channelLimitsDefault);
  const bytes = ob.messages.reduce((n, m) => n + m.bytes.length, 0);
  t.ok(bytes <= channelLimitsDefault.bundleBytesMax, `a response bundle holds ${bytes} bytes, within the ${channelLimitsDefault.bundleBytesMax} every agent reads`);
  t.ok(ob.messages.length < 20, 'the rest goes in later responses');
});
