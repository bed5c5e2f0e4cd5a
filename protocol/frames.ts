import { ErrorCode, FerryError } from './errors.js';
import { checkTarget, type Packet, type PacketData } from './packet.js';

/** The tunnel protocol version this build speaks; HELLO carries it, the gateway refuses others with BYE PROTOCOL_VERSION. */
export const protocolVersion = 1;

export const FrameType = {
  HELLO: 1,
  WELCOME: 2,
  DATA: 3,
  ACK: 4,
  NACK: 5,
  PING: 6,
  PONG: 7,
  BYE: 8,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Agent → gateway, first frame. `ackedSeq`: the highest seq the agent knows was acked (its resume point). */
export interface HelloFrame { t: typeof FrameType.HELLO; version: number; agent: string; token?: string; ackedSeq: number }
/** Gateway → agent. `dispatchedSeq`: the highest seq of this agent the gateway has dispatched durably. */
export interface WelcomeFrame { t: typeof FrameType.WELCOME; session: string; dispatchedSeq: number; creditPackets: number; creditBytes: number }
export interface DataFrame { t: typeof FrameType.DATA; packets: Packet[] }
/** Cumulative: every packet with seq <= `seq` is dispatched (or rejected with a NACK sent before). */
export interface AckFrame { t: typeof FrameType.ACK; seq: number; creditPackets: number; creditBytes: number }
/** The packet `seq` was not dispatched; `retryAfterMs` set means retry later, absent means permanent. */
export interface NackFrame { t: typeof FrameType.NACK; seq: number; code: string; message: string; retryAfterMs?: number }
export interface PingFrame { t: typeof FrameType.PING; id: number }
export interface PongFrame { t: typeof FrameType.PONG; id: number }
export interface ByeFrame { t: typeof FrameType.BYE; code: string; reason: string }

export type Frame = HelloFrame | WelcomeFrame | DataFrame | AckFrame | NackFrame | PingFrame | PongFrame | ByeFrame;

function malformed(what: string): never {
  throw new FerryError(ErrorCode.FRAME_MALFORMED, `malformed frame: ${what}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function uint(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v === 'bigint') {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) malformed(`${key} out of range`);
    return Number(v);
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) malformed(`${key} must be an unsigned integer`);
  return v;
}

function str(o: Record<string, unknown>, key: string, bytesMax = 1024): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > bytesMax) malformed(`${key} must be a string of at most ${bytesMax} characters`);
  return v;
}

function packet(v: unknown): Packet {
  if (!isRecord(v)) malformed('packet must be a map');
  let target: string;
  try {
    target = checkTarget(v.target);
  } catch (err) {
    malformed(`packet target: ${(err as Error).message}`);
  }
  if (!('data' in v)) malformed('packet has no data');
  // Other CBOR encoders write a millisecond time as a 64-bit integer, which cbor-x decodes as a bigint.
  const ts = typeof v.ts === 'bigint' ? uint(v, 'ts') : v.ts;
  if (typeof ts !== 'number' || !Number.isFinite(ts)) malformed('packet ts must be a number');
  const seq = uint(v, 'seq');
  if (seq === 0) malformed('packet seq must be at least 1');
  checkDataValue(v.data, 0);
  return { seq, target, ts, data: v.data as PacketData };
}

const dataDepthMax = 32;

/**
 * Packet data must be bytes or a JSON value, so every handler can pass it on: no bigint, Date,
 * undefined, non-finite number, Map/Set or other tag, and no nesting deeper than 32 levels (which
 * also rules out the cycles CBOR's shared-reference tags can build).
 */
function checkDataValue(v: unknown, depth: number): void {
  if (depth > dataDepthMax) malformed(`packet data nested deeper than ${dataDepthMax} levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || v instanceof Uint8Array) return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) malformed('packet data holds a non-finite number');
    return;
  }
  if (Array.isArray(v)) {
    for (const item of v) checkDataValue(item, depth + 1);
    return;
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const item of Object.values(v as Record<string, unknown>)) checkDataValue(item, depth + 1);
    return;
  }
  malformed(`packet data holds a ${v === undefined ? 'undefined' : typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v} (bytes or a JSON value expected)`);
}

/** Checks a decoded CBOR value against the frame schema; anything else is FRAME_MALFORMED or FRAME_UNKNOWN_TYPE. */
export function frameFromValue(v: unknown): Frame {
  if (!isRecord(v)) malformed('body must be a map');
  switch (v.t) {
    case FrameType.HELLO: {
      const f: HelloFrame = { t: FrameType.HELLO, version: uint(v, 'version'), agent: str(v, 'agent', 255), ackedSeq: uint(v, 'ackedSeq') };
      if (v.token !== undefined) f.token = str(v, 'token');
      return f;
    }
    case FrameType.WELCOME:
      return {
        t: FrameType.WELCOME, session: str(v, 'session'), dispatchedSeq: uint(v, 'dispatchedSeq'),
        creditPackets: uint(v, 'creditPackets'), creditBytes: uint(v, 'creditBytes'),
      };
    case FrameType.DATA: {
      if (!Array.isArray(v.packets) || v.packets.length === 0) malformed('DATA needs a non-empty packets array');
      return { t: FrameType.DATA, packets: v.packets.map(packet) };
    }
    case FrameType.ACK:
      return { t: FrameType.ACK, seq: uint(v, 'seq'), creditPackets: uint(v, 'creditPackets'), creditBytes: uint(v, 'creditBytes') };
    case FrameType.NACK: {
      const f: NackFrame = { t: FrameType.NACK, seq: uint(v, 'seq'), code: str(v, 'code', 64), message: str(v, 'message') };
      if (v.retryAfterMs !== undefined) f.retryAfterMs = uint(v, 'retryAfterMs');
      return f;
    }
    case FrameType.PING:
      return { t: FrameType.PING, id: uint(v, 'id') };
    case FrameType.PONG:
      return { t: FrameType.PONG, id: uint(v, 'id') };
    case FrameType.BYE:
      return { t: FrameType.BYE, code: str(v, 'code', 64), reason: str(v, 'reason') };
    default:
      throw new FerryError(ErrorCode.FRAME_UNKNOWN_TYPE, `unknown frame type ${typeof v.t === 'number' ? v.t : `(a ${typeof v.t})`}`);
  }
}
