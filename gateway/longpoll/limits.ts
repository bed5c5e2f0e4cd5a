/**
 * The gateway's long-poll limits, in one place (gateway/config.ts `limits.longpoll` fills them;
 * docs/config.md describes each). Units last in every name.
 */
import { gatewayLingerMsDefault, holdMsDefault } from '../../protocol/longpoll/hold-policy.js';
import { channelLimitsDefault, type ChannelLimits } from '../../protocol/longpoll/limits.js';

export interface LongPollSessionLimits {
  /** a request is held at most this long, then answered even empty (below common proxy idle time-outs) */
  holdMs: number;
  /** messages short of a full bundle wait this long for more before the held request takes them */
  lingerMs: number;
  /** a session with no request for this long (and none held) is closed and forgotten; above the agent's response time-out (35 s) */
  sessionIdleMs: number;
  /** requests held at once, gateway-wide; past it a request that would be held is refused (503 GATEWAY_BUSY, retry-after) */
  heldRequestsMax: number;
  /** long-poll sessions at once; past it an opening request is refused (503 GATEWAY_BUSY) */
  sessionsMax: number;
  /** requests of one session per second (token bucket, burst of one second); past it 429 LONGPOLL_TOO_MANY_REQUESTS */
  requestsPerSessionPerSecondMax: number;
  /** each session's bundle channel */
  channel: ChannelLimits;
}

export const longPollSessionLimitsDefault: LongPollSessionLimits = {
  holdMs: holdMsDefault,
  lingerMs: gatewayLingerMsDefault,
  sessionIdleMs: 60_000,
  heldRequestsMax: 10_000,
  sessionsMax: 10_000,
  requestsPerSessionPerSecondMax: 200,
  channel: channelLimitsDefault,
};

/**
 * The channel limits for a gateway whose frames may be `frameBytesMax` long: a message is one
 * frame body; bundles and queues grow with it so any frame fits, and never shrink below the
 * defaults the agent builds its bundles within.
 */
export function channelLimitsFor(frameBytesMax: number): ChannelLimits {
  const d = channelLimitsDefault;
  return {
    ...d,
    messageBytesMax: frameBytesMax,
    bundleBytesMax: Math.max(d.bundleBytesMax, frameBytesMax),
    queueBytesMax: Math.max(d.queueBytesMax, 4 * frameBytesMax),
    reorderBytesMax: Math.max(d.reorderBytesMax, frameBytesMax),
  };
}
