import { ErrorCode, FerryError } from './errors.js';
import { dataShape, frameDataDepthMax } from './limits.js';
import type { Packet, PacketData } from './packet.js';

/** The tunnel protocol version this build speaks; HELLO carries it, the gateway refuses others with BYE PROTOCOL_VERSION. */
export const protocolVersion = 2;

/**
 * The highest seq on the wire (a packet's seq, an ack, a resume point, a range bound): 2^52 - 1,
 * refused above at decode (FRAME_MALFORMED). Half of 2^53 so that arithmetic on seqs stays exact
 * in a JS number: `seq + 1`, and a renumbering that adds one seq to another (at most 2^53 - 2).
 * At a million packets a second, an agent takes 142 years to get there. The store and the
 * gateway hold seqs to it too.
 */
export const seqMax = 2 ** 52 - 1;

/**
 * A fresh store renumbers above the seqs a gateway names (see docs/protocol.md, the trust rule)
 * only while its renumbered packets end at or below this, so at least 2^51 seqs are left for the
 * rest of its life: no gateway, nor a fake one, can push an agent's seqs to the end of the range.
 */
export const seqRenumberTopMax = 2 ** 51;

/** Selective ranges in one ACK or WELCOME, at most. */
export const ackRangesMax = 1024;

/** Inclusive seq ranges, ascending and disjoint. */
export type SeqRange = [number, number];

export const FrameType = {
  HELLO: 1,
  WELCOME: 2,
  DATA: 3,
  ACK: 4,
  NACK: 5,
  PING: 6,
  PONG: 7,
  BYE: 8,
  DOWN: 9,
  DOWN_ACK: 10,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/**
 * Agent → gateway, first frame. `ackedSeq`: the highest seq the agent knows was acked (its resume point).
 * `downMessagesMax`, `downBytesMax`: the agent's downlink window, the DOWN messages (and their
 * bytes, as packetCreditBytes counts them) it takes un-acked at once; absent: it takes no downlink.
 */
export interface HelloFrame {
  t: typeof FrameType.HELLO; version: number; agent: string; token?: string; ackedSeq: number;
  downMessagesMax?: number; downBytesMax?: number;
}
/**
 * Gateway → agent. `dispatchedSeq`: every seq of this agent up to it is dispatched durably (the
 * gateway's resume point); `ranges`: seqs above it dispatched too (targets are not blocked by each
 * other, so dispatch has gaps). Credit: packets and bytes the agent may have un-acked in flight.
 * `pingIntervalMs`: how often the gateway wants a PING; it ends the session after silence.
 * The gateway's limits (optional, absent from older gateways): `frameBytesMax`, the largest frame
 * body it reads; `dataBytesMax` and `dataDepthMax`, the packet limits it NACKs beyond (protocol/limits.ts).
 * The agent sizes its DATA frames to the first and dead-letters, without sending, a packet over any.
 */
export interface WelcomeFrame {
  t: typeof FrameType.WELCOME; session: string; dispatchedSeq: number; ranges?: SeqRange[]; creditPackets: number; creditBytes: number; pingIntervalMs?: number;
  frameBytesMax?: number; dataBytesMax?: number; dataDepthMax?: number;
  /** no seq of this agent above it was ever handed to a handler (absent from older gateways): a store made empty renumbers above it */
  seenSeq?: number;
}
export interface DataFrame { t: typeof FrameType.DATA; packets: Packet[] }
/**
 * `seq` is cumulative: every packet with seq <= `seq` is dispatched (or was rejected with a NACK
 * sent before). `ranges`: seqs above `seq` that are dispatched too (selective). Credit: how much
 * the gateway can take now, counting packets the agent has sent and not yet had acked or nacked.
 */
export interface AckFrame { t: typeof FrameType.ACK; seq: number; ranges?: SeqRange[]; creditPackets: number; creditBytes: number }
/** The packet `seq` was not dispatched; `retryAfterMs` set means retry later, absent means permanent. */
export interface NackFrame { t: typeof FrameType.NACK; seq: number; code: string; message: string; retryAfterMs?: number }
/**
 * `ackedSeq` (agent → gateway): the agent's store has let go of every seq up to it, so the gateway may forget gaps below it.
 * The agent's backlog as it sends the PING (optional, absent from older agents; shown by the gateway's status):
 * `backlogPackets` stored and not acked, `backlogBytes` its store's size on disk, `oldestAgeMs` the age of the
 * oldest packet it has in flight or waiting for a retry (absent when none).
 */
export interface PingFrame { t: typeof FrameType.PING; id: number; ackedSeq?: number; backlogPackets?: number; backlogBytes?: number; oldestAgeMs?: number }
export interface PongFrame { t: typeof FrameType.PONG; id: number }
/** `retryAfterMs`: do not dial again sooner (the gateway paces reconnect storms). */
export interface ByeFrame { t: typeof FrameType.BYE; code: string; reason: string; retryAfterMs?: number }

/**
 * One downlink message. `id`: its identity end to end (the gateway's API names it; the agent
 * de-duplicates by it); `ts`: when it was queued (ms since the epoch, the gateway's clock);
 * `ttlMs`: how long it has left to live as the gateway sends it (absent: no expiry); the agent
 * counts it from when the frame arrives, so the two clocks need not agree.
 */
export interface DownMessage { id: string; target: string; data: PacketData; ts: number; ttlMs?: number }
/** Gateway → agent: messages in queue order, within the agent's downlink window (HELLO). */
export interface DownFrame { t: typeof FrameType.DOWN; messages: DownMessage[] }
/** A consumer's verdict on one message: taken, or refused for good with a code and a reason. */
export type DownResult = { id: string; ok: true } | { id: string; ok: false; code: string; reason: string };
/** Agent → gateway: verdicts; each frees its message's room in the downlink window. */
export interface DownAckFrame { t: typeof FrameType.DOWN_ACK; results: DownResult[] }

export type Frame = HelloFrame | WelcomeFrame | DataFrame | AckFrame | NackFrame | PingFrame | PongFrame | ByeFrame | DownFrame | DownAckFrame;

/** A downlink message ID: 1-64 of letters, digits, `_` and `-` (the gateway makes them: 22 base64url characters). */
export const downIdPattern = /^[A-Za-z0-9_-]{1,64}$/;
/** Messages or results in one DOWN or DOWN_ACK frame, at most. */
export const downFrameMessagesMax = 1024;

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

/** A seq field: an unsigned integer of at most seqMax (at least `min`: 1 for a packet's seq). */
function seqOf(o: Record<string, unknown>, key: string, min = 0): number {
  const v = uint(o, key);
  if (v > seqMax || v < min) malformed(`${key} ${v} out of range (${min} to ${seqMax})`);
  return v;
}

function str(o: Record<string, unknown>, key: string, bytesMax = 1024): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > bytesMax) malformed(`${key} must be a string of at most ${bytesMax} characters`);
  return v;
}

function ranges(o: Record<string, unknown>, above: number): SeqRange[] | undefined {
  const v = o.ranges;
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > ackRangesMax) malformed(`ranges must be an array of at most ${ackRangesMax} [from, to] pairs`);
  let floor = above;
  return v.map((r: unknown) => {
    if (!Array.isArray(r) || r.length !== 2) malformed('a range must be a [from, to] pair');
    const pair = { a: r[0], b: r[1] };
    const a = seqOf(pair, 'a');
    const b = seqOf(pair, 'b');
    if (a <= floor || b < a) malformed('ranges must be ascending, disjoint and above the cumulative seq');
    floor = b;
    return [a, b] as SeqRange;
  });
}

/**
 * The packet's shape only. Its limits (target rule, data size, nesting, `__proto__`) are not the
 * frame's business: the gateway checks each packet with checkPacket (protocol/limits.ts) and
 * refuses it alone with a NACK, so one bad packet never ends the session.
 */
function packet(v: unknown): Packet {
  if (!isRecord(v)) malformed('packet must be a map');
  if (typeof v.target !== 'string') malformed('packet target must be a string');
  if (!('data' in v)) malformed('packet has no data');
  // Other CBOR encoders write a millisecond time as a 64-bit integer, which cbor-x decodes as a bigint.
  const ts = typeof v.ts === 'bigint' ? uint(v, 'ts') : v.ts;
  if (typeof ts !== 'number' || !Number.isFinite(ts)) malformed('packet ts must be a number');
  const seq = seqOf(v, 'seq', 1);
  checkDataValue(v.data);
  return { seq, target: v.target, ts, data: v.data as PacketData };
}

/**
 * Packet data must be bytes or a JSON value, so every handler can pass it on: no bigint, Date,
 * undefined, non-finite number, Map/Set or other tag. Nesting past frameDataDepthMax (far above
 * any packet limit) is no packet a ferry agent writes: it also rules out the cycles CBOR's
 * shared-reference tags can build.
 */
function checkDataValue(v: unknown): void {
  const shape = dataShape(v, frameDataDepthMax);
  if (shape.invalid !== undefined) malformed(`packet data holds ${shape.invalid} (bytes or a JSON value expected)`);
  if (shape.depth > frameDataDepthMax) malformed(`packet data nested deeper than ${frameDataDepthMax} levels`);
}

function downId(o: Record<string, unknown>): string {
  const id = o.id;
  if (typeof id !== 'string' || !downIdPattern.test(id)) malformed('a downlink message id must be 1-64 of A-Z a-z 0-9 _ -');
  return id;
}

/** A DOWN message's shape; its target and data limits are the agent's to check (it refuses the one message, not the frame). */
function downMessage(v: unknown): DownMessage {
  if (!isRecord(v)) malformed('a DOWN message must be a map');
  if (typeof v.target !== 'string') malformed('a DOWN message target must be a string');
  if (!('data' in v)) malformed('a DOWN message has no data');
  checkDataValue(v.data);
  const m: DownMessage = { id: downId(v), target: v.target, data: v.data as PacketData, ts: uint(v, 'ts') };
  if (v.ttlMs !== undefined) m.ttlMs = uint(v, 'ttlMs');
  return m;
}

function downResult(v: unknown): DownResult {
  if (!isRecord(v)) malformed('a DOWN_ACK result must be a map');
  const id = downId(v);
  if (v.ok === true) return { id, ok: true };
  if (v.ok !== false) malformed('a DOWN_ACK result needs ok: true or false');
  return { id, ok: false, code: str(v, 'code', 64), reason: str(v, 'reason') };
}

/** Checks a decoded CBOR value against the frame schema; anything else is FRAME_MALFORMED or FRAME_UNKNOWN_TYPE. */
export function frameFromValue(v: unknown): Frame {
  if (!isRecord(v)) malformed('body must be a map');
  switch (v.t) {
    case FrameType.HELLO: {
      const f: HelloFrame = { t: FrameType.HELLO, version: uint(v, 'version'), agent: str(v, 'agent', 255), ackedSeq: seqOf(v, 'ackedSeq') };
      if (v.token !== undefined) f.token = str(v, 'token');
      if (v.downMessagesMax !== undefined) f.downMessagesMax = uint(v, 'downMessagesMax');
      if (v.downBytesMax !== undefined) f.downBytesMax = uint(v, 'downBytesMax');
      return f;
    }
    case FrameType.WELCOME: {
      const f: WelcomeFrame = {
        t: FrameType.WELCOME, session: str(v, 'session'), dispatchedSeq: seqOf(v, 'dispatchedSeq'),
        creditPackets: uint(v, 'creditPackets'), creditBytes: uint(v, 'creditBytes'),
      };
      const r = ranges(v, f.dispatchedSeq);
      if (r) f.ranges = r;
      if (v.pingIntervalMs !== undefined) f.pingIntervalMs = uint(v, 'pingIntervalMs');
      for (const key of ['frameBytesMax', 'dataBytesMax', 'dataDepthMax'] as const) if (v[key] !== undefined) f[key] = uint(v, key);
      if (v.seenSeq !== undefined) f.seenSeq = seqOf(v, 'seenSeq');
      return f;
    }
    case FrameType.DATA: {
      if (!Array.isArray(v.packets) || v.packets.length === 0) malformed('DATA needs a non-empty packets array');
      return { t: FrameType.DATA, packets: v.packets.map(packet) };
    }
    case FrameType.ACK: {
      const f: AckFrame = { t: FrameType.ACK, seq: seqOf(v, 'seq'), creditPackets: uint(v, 'creditPackets'), creditBytes: uint(v, 'creditBytes') };
      const r = ranges(v, f.seq);
      if (r) f.ranges = r;
      return f;
    }
    case FrameType.NACK: {
      const f: NackFrame = { t: FrameType.NACK, seq: seqOf(v, 'seq', 1), code: str(v, 'code', 64), message: str(v, 'message') };
      if (v.retryAfterMs !== undefined) f.retryAfterMs = uint(v, 'retryAfterMs');
      return f;
    }
    case FrameType.PING: {
      const f: PingFrame = { t: FrameType.PING, id: uint(v, 'id') };
      if (v.ackedSeq !== undefined) f.ackedSeq = seqOf(v, 'ackedSeq');
      // Unsigned safe integers, like every count on the wire: nothing larger can be held exactly.
      for (const key of ['backlogPackets', 'backlogBytes', 'oldestAgeMs'] as const) if (v[key] !== undefined) f[key] = uint(v, key);
      return f;
    }
    case FrameType.PONG:
      return { t: FrameType.PONG, id: uint(v, 'id') };
    case FrameType.BYE: {
      const f: ByeFrame = { t: FrameType.BYE, code: str(v, 'code', 64), reason: str(v, 'reason') };
      if (v.retryAfterMs !== undefined) f.retryAfterMs = uint(v, 'retryAfterMs');
      return f;
    }
    case FrameType.DOWN: {
      if (!Array.isArray(v.messages) || v.messages.length === 0 || v.messages.length > downFrameMessagesMax) malformed(`DOWN needs 1 to ${downFrameMessagesMax} messages`);
      return { t: FrameType.DOWN, messages: v.messages.map(downMessage) };
    }
    case FrameType.DOWN_ACK: {
      if (!Array.isArray(v.results) || v.results.length === 0 || v.results.length > downFrameMessagesMax) malformed(`DOWN_ACK needs 1 to ${downFrameMessagesMax} results`);
      return { t: FrameType.DOWN_ACK, results: v.results.map(downResult) };
    }
    default:
      throw new FerryError(ErrorCode.FRAME_UNKNOWN_TYPE, `unknown frame type ${typeof v.t === 'number' ? v.t : `(a ${typeof v.t})`}`);
  }
}
