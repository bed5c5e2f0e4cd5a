/**
 * What a downlink message may be, whichever way it arrives (the API, the MQTT subscription): one
 * set of checks with one set of codes, so the same message is refused the same way by both.
 * - target: the target rule (protocol/ids.ts targetProblem) → API_BODY_INVALID;
 * - data: bytes, or a JSON value nested at most `dataDepthMax` deep without a `__proto__` key
 *   (which does not survive CBOR) → API_BODY_INVALID; larger than `messageBytesMax` (bytes as
 *   they are, a value as its JSON text: what the agent counts) → API_BODY_TOO_LARGE;
 * - ttl: a number of seconds > 0, at most `ttlSecondsMax` → API_BODY_INVALID.
 * No IO.
 */
import { ErrorCode } from '../../protocol/errors.js';
import { targetProblem } from '../../protocol/ids.js';
import { dataShape } from '../../protocol/limits.js';
import { dataBytes, hasProtoKey, type PacketData } from '../../protocol/packet.js';

export interface MessageLimits {
  /** data bytes, at most (downlink.messageBytesMax) */
  messageBytesMax: number;
  /** arrays and maps on the longest path into the data, at most (limits.packetDepthMax) */
  dataDepthMax: number;
}

/** A refusal: the HTTP status the API answers with, the code, and a message naming the field. */
export interface Refusal {
  status: number;
  code: ErrorCode;
  message: string;
}

/** A year: a ttl longer than that is a mistake (and ms past 2^53 would not be exact). */
export const ttlSecondsMax = 365 * 24 * 3600;

export function refusal(status: number, code: ErrorCode, message: string): Refusal {
  return { status, code, message };
}

/** Why `target` cannot be a downlink target, or undefined. */
export function targetRefusal(target: unknown): Refusal | undefined {
  const problem = targetProblem(target);
  return problem === undefined ? undefined : refusal(400, ErrorCode.API_BODY_INVALID, `target: ${problem}`);
}

/** Why `data` cannot be a downlink message's data, or undefined. `field` names it in the message. */
export function dataRefusal(data: PacketData, limits: MessageLimits, field = 'data'): Refusal | undefined {
  if (!(data instanceof Uint8Array)) {
    const shape = dataShape(data, limits.dataDepthMax);
    if (shape.invalid !== undefined) return refusal(400, ErrorCode.API_BODY_INVALID, `${field}: holds ${shape.invalid}, which is not a JSON value`);
    if (shape.depth > limits.dataDepthMax) return refusal(400, ErrorCode.API_BODY_INVALID, `${field}: nested more than ${limits.dataDepthMax} levels deep (limits.packetDepthMax)`);
    if (hasProtoKey(data)) return refusal(400, ErrorCode.API_BODY_INVALID, `${field}: has a "__proto__" key, which does not survive encoding; rename it`);
  }
  const bytes = dataBytes(data);
  if (bytes > limits.messageBytesMax) {
    return refusal(413, ErrorCode.API_BODY_TOO_LARGE, `${field}: ${bytes} bytes${data instanceof Uint8Array ? '' : ' as JSON text'}; the maximum is ${limits.messageBytesMax} (downlink.messageBytesMax)`);
  }
  return undefined;
}

/** A ttl in seconds → ms (at least 1), or why it is not one. */
export function ttlMsOf(ttl: unknown, field = 'ttl'): { ttlMs: number } | Refusal {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) return refusal(400, ErrorCode.API_BODY_INVALID, `${field}: a number of seconds > 0 expected, got ${JSON.stringify(ttl) ?? String(ttl)}`);
  if (ttl > ttlSecondsMax) return refusal(400, ErrorCode.API_BODY_INVALID, `${field}: at most ${ttlSecondsMax} seconds (a year), got ${ttl}`);
  return { ttlMs: Math.max(1, Math.round(ttl * 1000)) };
}

export function isRefusal(x: object): x is Refusal {
  return 'code' in x && 'status' in x;
}
