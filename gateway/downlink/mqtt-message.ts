/**
 * What an MQTT message published under the downlink subscription means, without IO:
 * - topic `ferry/down/{agent}/#` is subscribed as `ferry/down/+/#`; the level at `{agent}` names
 *   the agent, the levels after it joined by `/` are the target (none: refused);
 * - the payload is the data: UTF-8 JSON text is taken as its value, anything else as bytes; the
 *   payload may be at most `messageBytesMax` bytes;
 * - an MQTT 5 message expiry interval (seconds; the broker counts down the time a message waited
 *   with it) becomes the ttl.
 * Refusals use the API's codes (gateway/downlink/message-rules.ts), so a message is refused the
 * same way whichever way it came.
 */
import { ErrorCode } from '../../protocol/errors.js';
import { agentIdPattern, agentIdRule } from '../../protocol/ids.js';
import type { PacketData } from '../../protocol/packet.js';
import { dataRefusal, isRefusal, refusal, targetRefusal, ttlMsOf, ttlSecondsMax, type MessageLimits, type Refusal } from './message-rules.js';
import type { NewMessage } from './queue.js';

export interface DownlinkTopic {
  /** the subscription's topic filter, `{agent}` as `+` */
  filter: string;
  /** the index of the agent's level */
  agentLevel: number;
}

/** The filter and agent level of a topic template (config checks its shape: `{agent}` a whole level, ending in `/#`). */
export function downlinkTopic(template: string): DownlinkTopic {
  const levels = template.split('/');
  const agentLevel = levels.indexOf('{agent}');
  if (agentLevel < 0 || levels[levels.length - 1] !== '#' || agentLevel !== levels.length - 2) throw new Error(`downlink topic template ${template}: {agent} must be the level before the final /#`);
  return { filter: levels.map((l) => (l === '{agent}' ? '+' : l)).join('/'), agentLevel };
}

export interface Publish {
  topic: string;
  payload: Uint8Array;
  /** MQTT 5 message expiry interval, seconds */
  messageExpiryInterval?: number;
}

export type Parsed = { agent: string; accepted: NewMessage } | (Refusal & { agent?: string });

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as data: JSON text → its value; anything else (not UTF-8, not JSON) → the bytes. */
export function payloadData(payload: Uint8Array): PacketData {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return new Uint8Array(payload);
  }
  try {
    return JSON.parse(text) as PacketData;
  } catch {
    return new Uint8Array(payload);
  }
}

export function parsePublish(p: Publish, topic: DownlinkTopic, limits: MessageLimits): Parsed {
  const levels = p.topic.split('/');
  const agent = levels[topic.agentLevel];
  if (agent === undefined || !agentIdPattern.test(agent)) {
    return refusal(404, ErrorCode.API_AGENT_UNKNOWN, `topic ${JSON.stringify(p.topic.slice(0, 300))}: the level at {agent} is not an agent ID (${agentIdRule})`);
  }
  const target = levels.slice(topic.agentLevel + 1).join('/');
  if (target === '') return { ...refusal(400, ErrorCode.API_BODY_INVALID, `topic ${JSON.stringify(p.topic)}: no target after the agent ID`), agent };
  const badTarget = targetRefusal(target);
  if (badTarget) return { ...badTarget, agent };
  if (p.payload.byteLength > limits.messageBytesMax) {
    return { ...refusal(413, ErrorCode.API_BODY_TOO_LARGE, `payload: ${p.payload.byteLength} bytes; the maximum is ${limits.messageBytesMax} (downlink.messageBytesMax)`), agent };
  }
  const data = payloadData(p.payload);
  const badData = dataRefusal(data, limits, 'payload');
  if (badData) return { ...badData, agent };
  const message: NewMessage = { target, data, from: 'mqtt' };
  if (p.messageExpiryInterval !== undefined) {
    // 0 left means the broker was about to drop it: the least ttl there is. Past a year (the API's
    // bound) it is held to a year: an expiry the publisher chose is not a reason to drop a message.
    const ttl = ttlMsOf(Math.min(Math.max(p.messageExpiryInterval, 0.001), ttlSecondsMax), 'messageExpiryInterval');
    if (isRefusal(ttl)) return { ...ttl, agent };
    message.ttlMs = ttl.ttlMs;
  }
  return { agent, accepted: message };
}
