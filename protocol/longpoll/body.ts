/**
 * The body of a long-poll HTTP request or response: a CBOR map carrying one bundle of messages
 * (each the CBOR body of a ferry frame) with its message numbers, the acknowledgement of what
 * the sender got from its peer, and the numbers that let either side spot lost, replayed or
 * reordered bodies. docs/protocol.md ("HTTP long-poll carrier") has the table.
 *
 * The decoder checks the length before it decodes, then every field and limit before the body
 * is handed on; anything else is a FerryError (LONGPOLL_VERSION, LONGPOLL_BODY_TOO_LARGE,
 * LONGPOLL_BODY_INVALID), and nothing of the body may be applied.
 */
import { Decoder, Encoder } from 'cbor-x';
import { ErrorCode, FerryError } from '../errors.js';
import { seqMax } from '../frames.js';
import { ackRangesMax, endCodeCharsMax, endReasonCharsMax, longpollVersion, sessionIdCharsMax, type BodyLimits } from './limits.js';

export const BodyKind = { REQUEST: 1, RESPONSE: 2 } as const;
export type BodyKind = (typeof BodyKind)[keyof typeof BodyKind];

/** One message of a bundle: its number in its direction (from 1) and its bytes (a frame body). */
export interface Message {
  n: number;
  bytes: Uint8Array;
}

/** Inclusive message-number range [from, to]. */
export type MsgRange = [number, number];

/** What a side reports it received from its peer: every number up to `ack`, and the `ranges` above it. */
export interface Ack {
  ack: number;
  ranges: MsgRange[];
  /** the highest bundle number of the peer this side read (0: none); a message the peer sent in a bundle up to it and not acknowledged was lost */
  seen: number;
}

export interface End {
  code: string;
  reason: string;
}

export interface Body extends Ack {
  kind: BodyKind;
  /** absent only in an agent's opening request (the gateway answers with the session it made) */
  session?: string;
  /** this body's number in its direction, from 1; a request's is its request number */
  bundle: number;
  /** responses only: the request number this response answers */
  answers?: number;
  /** ascending by n */
  messages: Message[];
  /** present: the sender ends the session */
  end?: End;
}

// Plain CBOR (no cbor-x records) so any CBOR implementation can speak the carrier; byte strings decode as views.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeBody(b: Body): Buffer {
  const wire: Record<string, unknown> = { v: longpollVersion, k: b.kind };
  if (b.session !== undefined) wire.s = b.session;
  wire.b = b.bundle;
  if (b.answers !== undefined) wire.re = b.answers;
  wire.seen = b.seen;
  wire.ack = b.ack;
  if (b.ranges.length > 0) wire.ranges = b.ranges;
  wire.m = b.messages.map((m) => [m.n, m.bytes]);
  if (b.end !== undefined) wire.end = { code: b.end.code, reason: b.end.reason };
  return cbor.encode(wire);
}

function invalid(msg: string): never {
  throw new FerryError(ErrorCode.LONGPOLL_BODY_INVALID, `invalid long-poll body: ${msg}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A number on the carrier: an integer from `min` to seqMax (2^52 - 1); other CBOR encoders may send a bigint. */
function num(v: unknown, what: string, min: number): number {
  const n = typeof v === 'bigint' && v >= 0n && v <= BigInt(seqMax) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > seqMax) invalid(`${what} must be an integer from ${min} to ${seqMax}`);
  return n;
}

function text(v: unknown, what: string, charsMax: number, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > charsMax) invalid(`${what} must be a string of 1 to ${charsMax} characters`);
  if (pattern && !pattern.test(v)) invalid(`${what} has characters outside ${pattern.source}`);
  return v;
}

const sessionPattern = /^[A-Za-z0-9_-]+$/;
const codePattern = /^[A-Z][A-Z0-9_]*$/;

function rangesOf(v: unknown, above: number): MsgRange[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length === 0 || v.length > ackRangesMax) invalid(`ranges must be a non-empty array of at most ${ackRangesMax} [from, to] pairs`);
  let floor = above + 1; // a range starts above the cumulative number and leaves a gap after it: else it would be part of it
  return v.map((r: unknown) => {
    if (!Array.isArray(r) || r.length !== 2) invalid('a range must be a [from, to] pair');
    const from = num(r[0], 'range from', 1);
    const to = num(r[1], 'range to', 1);
    if (from <= floor || to < from) invalid('ranges must be ascending, disjoint, apart and above ack');
    floor = to + 1;
    return [from, to] as MsgRange;
  });
}

function messagesOf(v: unknown, limits: BodyLimits): Message[] {
  if (!Array.isArray(v)) invalid('m must be an array of [n, bytes] pairs');
  if (v.length > limits.bundleMessagesMax) {
    throw new FerryError(ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll body holds ${v.length} messages; the maximum is ${limits.bundleMessagesMax}`);
  }
  let last = 0;
  return v.map((p: unknown) => {
    if (!Array.isArray(p) || p.length !== 2) invalid('a message must be an [n, bytes] pair');
    const n = num(p[0], 'message number', 1);
    if (n <= last) invalid('message numbers must be ascending without repeats');
    last = n;
    const bytes = p[1];
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) invalid(`message ${n} must be a non-empty byte string`);
    if (bytes.length > limits.messageBytesMax) {
      throw new FerryError(ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll message ${n} is ${bytes.length} bytes; the maximum is ${limits.messageBytesMax}`);
    }
    return { n, bytes };
  });
}

/** Decodes and checks a body of the `expect`ed kind. Unknown keys are ignored (a later version may add optional ones). */
export function decodeBody(bytes: Uint8Array, expect: BodyKind, limits: BodyLimits): Body {
  if (bytes.length > limits.bodyBytesMax) {
    throw new FerryError(ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll body of ${bytes.length} bytes exceeds the maximum of ${limits.bodyBytesMax}`);
  }
  if (bytes.length === 0) invalid('empty');
  let v: unknown;
  try {
    v = cborDecoder.decode(bytes);
  } catch (err) {
    throw new FerryError(ErrorCode.LONGPOLL_BODY_INVALID, `invalid long-poll body: not CBOR (${(err as Error).message})`, { cause: err });
  }
  if (!isRecord(v)) invalid('not a map');
  if (v.v !== longpollVersion) {
    throw new FerryError(ErrorCode.LONGPOLL_VERSION, `long-poll body of carrier version ${typeof v.v === 'number' ? v.v : `(a ${typeof v.v})`}; this side speaks ${longpollVersion}`);
  }
  if (v.k !== expect) invalid(`k must be ${expect} (${expect === BodyKind.REQUEST ? 'a request' : 'a response'})`);
  const body: Body = { kind: expect, bundle: num(v.b, 'b', 1), seen: num(v.seen, 'seen', 0), ack: 0, ranges: [], messages: [] };
  if (v.s !== undefined) body.session = text(v.s, 's (session)', sessionIdCharsMax, sessionPattern);
  else if (expect === BodyKind.RESPONSE) invalid('a response needs s (session)');
  if (expect === BodyKind.RESPONSE) body.answers = num(v.re, 're', 1);
  else if (v.re !== undefined) invalid('a request has no re');
  body.ack = num(v.ack, 'ack', 0);
  body.ranges = rangesOf(v.ranges, body.ack);
  body.messages = messagesOf(v.m, limits);
  if (v.end !== undefined) {
    if (!isRecord(v.end)) invalid('end must be a map of code and reason');
    body.end = { code: text(v.end.code, 'end code', endCodeCharsMax, codePattern), reason: typeof v.end.reason === 'string' && v.end.reason.length <= endReasonCharsMax ? v.end.reason : invalid(`end reason must be a string of at most ${endReasonCharsMax} characters`) };
  }
  return body;
}
