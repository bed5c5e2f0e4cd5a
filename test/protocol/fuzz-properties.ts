/**
 * The frame decoder's fuzz properties, shared by test/protocol/fuzz.test.ts (a bounded run in CI)
 * and scripts/fuzz.ts (`npm run fuzz`, a long run). Every property feeds bytes to a fresh
 * FrameDecoder and checks the decoder's contract:
 * - a push returns frames or throws a FerryError with a wire code (FRAME_TOO_LARGE,
 *   FRAME_MALFORMED, FRAME_UNKNOWN_TYPE), never another exception;
 * - after a throw it holds nothing and every further push throws PROTOCOL_STATE;
 * - between pushes it holds less than one header plus frameBytesMax;
 * - the outcome does not depend on the chunking: the same bytes fed so that no push both completes
 *   a frame and fails (one byte at a time, or header bytes alone and whole bodies) give the same
 *   refusal code and the same frames (a chunked push that throws loses the frames it completed);
 * - every frame it returns passes the schema again unchanged and survives encodeFrame again.
 */
import { isDeepStrictEqual } from 'node:util';
import { Encoder } from 'cbor-x';
import fc from 'fast-check';
import { decodeBody, encodeFrame, FrameDecoder, frameHeaderBytes } from '../../protocol/codec.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { frameFromValue, FrameType, type Frame } from '../../protocol/frames.js';
import {
  chunk, chunkSizesArb, cborValueArb, frameArb, frameBytesMaxArb, header, mutate, mutationArb, noiseArb,
} from './fuzz-arbitraries.js';

/** How often each outcome occurred: a refusal code, `frames` (at least one decoded) or `waiting` (none yet). */
export type Tally = Map<string, number>;

export interface FuzzProperty {
  name: string;
  /** this property's share of the total number of runs */
  share: number;
  property: fc.IProperty<unknown[]>;
  tally: Tally;
}

/** The codes a decoder may refuse bytes with (PROTOCOL_STATE only once it has failed). */
const wireCodes = new Set<string>([ErrorCode.FRAME_TOO_LARGE, ErrorCode.FRAME_MALFORMED, ErrorCode.FRAME_UNKNOWN_TYPE]);
const catalogue = new Set<string>(Object.values(ErrorCode));
const typeNames = new Map<number, string>(Object.entries(FrameType).map(([name, t]) => [t, name]));
const aValidFrame = encodeFrame({ t: FrameType.PING, id: 1 });

function count(tally: Tally, key: string): void {
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.constructor.name}${err instanceof FerryError ? ` ${err.code}` : ''}: ${err.message}` : `a thrown ${typeof err} ${String(err)}`;
}

/** Byte strings become {bytes: hex} and map keys are sorted, so frames compare by value only; -0 is 0 (CBOR writes it as 0, JSON has no -0). */
export function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'), type: v.constructor.name === 'Uint8Array' || v instanceof Buffer ? 'u8' : v.constructor.name };
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, plain(x)]));
  }
  return Object.is(v, -0) ? 0 : v;
}

export function sameFrames(a: readonly Frame[], b: readonly Frame[]): boolean {
  return isDeepStrictEqual(plain(a), plain(b));
}

interface Outcome { frames: Frame[]; code?: string; buffered: number }

/** Feeds `chunks` to a fresh decoder, checking the contract after every push; throws an Error naming any violation. */
function feed(chunks: readonly Uint8Array[], frameBytesMax: number, checkAfterFailure: boolean): Outcome {
  const decoder = new FrameDecoder({ frameBytesMax });
  const frames: Frame[] = [];
  for (const [i, c] of chunks.entries()) {
    let out: Frame[];
    try {
      out = decoder.push(c);
    } catch (err) {
      if (!(err instanceof FerryError) || !catalogue.has(err.code) || !wireCodes.has(err.code)) {
        throw new Error(`push ${i} threw ${describe(err)} (only a FerryError with a wire code is allowed)`, { cause: err });
      }
      if (decoder.bufferedBytes !== 0) throw new Error(`after ${err.code} the decoder still holds ${decoder.bufferedBytes} bytes`);
      for (const more of checkAfterFailure ? [c, new Uint8Array(0), aValidFrame] : []) {
        try {
          decoder.push(more);
          throw new Error(`a push of ${more.length} bytes after ${err.code} was accepted`);
        } catch (again) {
          if (!(again instanceof FerryError) || again.code !== ErrorCode.PROTOCOL_STATE) throw new Error(`a push after ${err.code} threw ${describe(again)}, not PROTOCOL_STATE`, { cause: again });
        }
      }
      return { frames, code: err.code, buffered: 0 };
    }
    frames.push(...out);
    const held = decoder.bufferedBytes;
    if (!(held >= 0 && (held < frameHeaderBytes || held < frameHeaderBytes + frameBytesMax))) {
      throw new Error(`push ${i}: the decoder holds ${held} bytes, more than a header and frameBytesMax (${frameBytesMax}) allow`);
    }
  }
  return { frames, buffered: decoder.bufferedBytes };
}

/** A frame the decoder returned must be one the schema accepts unchanged and that encodes and decodes to itself. */
function checkReturnedFrame(frame: Frame): void {
  let again: unknown;
  try {
    again = frameFromValue(frame);
  } catch (err) {
    throw new Error(`a returned frame fails the schema when checked again: ${describe(err)}`, { cause: err });
  }
  if (!sameFrames([again as Frame], [frame])) throw new Error('a returned frame changes when checked again');
  let decoded: Frame;
  try {
    decoded = decodeBody(encodeFrame(frame).subarray(frameHeaderBytes));
  } catch (err) {
    throw new Error(`a returned frame does not survive encodeFrame and decoding again: ${describe(err)}`, { cause: err });
  }
  if (!sameFrames([decoded], [frame])) throw new Error('a returned frame changes when encoded and decoded again');
}

/** Inputs up to this size are fed one byte at a time for the reference run. */
const byteAtATimeBytesMax = 64;

/**
 * Chunks for the reference run, in which no push can both complete a frame and fail, so it loses
 * no frame before a refusal: one byte at a time for small inputs; else the framing read by hand,
 * each header byte alone and then each body (or what is left of it) in one push.
 */
function referenceChunks(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length <= byteAtATimeBytesMax) return chunk(bytes, new Array<number>(bytes.length).fill(1));
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let at = 0; at < view.length;) {
    const headerEnd = Math.min(at + frameHeaderBytes, view.length);
    for (let i = at; i < headerEnd; i++) out.push(view.subarray(i, i + 1));
    if (headerEnd - at < frameHeaderBytes) break;
    const bodyEnd = headerEnd + view.readUInt32BE(at);
    out.push(view.subarray(headerEnd, bodyEnd));
    at = bodyEnd;
  }
  return out;
}

/** The whole decoder contract for one input; returns the outcome label for the tally. */
export function checkDecoder(bytes: Uint8Array, sizes: readonly number[], frameBytesMax: number): string {
  const chunked = feed(chunk(bytes, sizes), frameBytesMax, true);
  const reference = feed(referenceChunks(bytes), frameBytesMax, false);
  if (chunked.code !== reference.code) {
    throw new Error(`chunking changes the outcome: ${chunked.code ?? 'accepted'} in chunks of ${chunk(bytes, sizes).map((c) => c.length).join(',')}, ${reference.code ?? 'accepted'} in the reference chunks`);
  }
  if (!sameFrames(chunked.frames, reference.frames.slice(0, chunked.frames.length))) throw new Error('chunking changes the frames decoded');
  if (chunked.code === undefined) {
    if (chunked.frames.length !== reference.frames.length) throw new Error(`chunking changes how many frames come out: ${chunked.frames.length} vs ${reference.frames.length}`);
    if (chunked.buffered !== reference.buffered) throw new Error(`chunking changes the bytes held: ${chunked.buffered} vs ${reference.buffered}`);
  }
  for (const f of reference.frames) checkReturnedFrame(f);
  return chunked.code ?? (chunked.frames.length > 0 ? 'frames' : 'waiting');
}

/** Encoders a peer might use: the codec's own plain CBOR, and cbor-x's extensions (records, shared references, packing). */
const encoders = {
  plain: new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true }),
  records: new Encoder({ useRecords: true }),
  structuredClone: new Encoder({ structuredClone: true, useRecords: false }),
  pack: new Encoder({ pack: true, useRecords: false }),
};
const encoderNames = Object.keys(encoders) as (keyof typeof encoders)[];

function withPrefix(body: Uint8Array): Buffer {
  return Buffer.concat([header(body.length), body]);
}

/** (e) A length prefix above frameBytesMax is refused by the push that brings its 4th byte, before any body byte. */
function checkOversize(pre: Frame[], frameBytesMax: number, over: number, sizes: number[], bodyBytes: Uint8Array): string {
  const allowed = pre.map(encodeFrame).filter((e) => e.length - frameHeaderBytes <= frameBytesMax && e.length > frameHeaderBytes);
  const lead = Buffer.concat(allowed);
  const length = frameBytesMax + 1 + (over % (2 ** 32 - 1 - frameBytesMax));
  const bytes = Buffer.concat([lead, header(length)]);
  const chunks = chunk(bytes, sizes);
  const decoder = new FrameDecoder({ frameBytesMax });
  const got: Frame[] = [];
  for (const [i, c] of chunks.entries()) {
    const last = i === chunks.length - 1;
    const push = last && bodyBytes.length > 0 ? Buffer.concat([c, bodyBytes]) : c;
    try {
      got.push(...decoder.push(push));
    } catch (err) {
      if (!last) throw new Error(`push ${i} of ${chunks.length} threw ${describe(err)} before the 4th header byte arrived`, { cause: err });
      if (!(err instanceof FerryError) || err.code !== ErrorCode.FRAME_TOO_LARGE) throw new Error(`a ${length}-byte frame against a maximum of ${frameBytesMax} threw ${describe(err)}`, { cause: err });
      if (decoder.bufferedBytes !== 0) throw new Error(`${decoder.bufferedBytes} bytes held after FRAME_TOO_LARGE`);
      if (!sameFrames(got, allowed.map((e) => decodeBody(e.subarray(frameHeaderBytes))).slice(0, got.length))) throw new Error('the frames before the oversize header changed');
      return ErrorCode.FRAME_TOO_LARGE;
    }
    if (last) throw new Error(`a ${length}-byte frame against a maximum of ${frameBytesMax} was not refused once its header was complete (${decoder.bufferedBytes} bytes held)`);
  }
  throw new Error('unreachable: no push was made');
}

/** The properties, each with a fresh tally. */
export function fuzzProperties(): FuzzProperty[] {
  const make = (name: string, share: number, build: (tally: Tally) => fc.IProperty<unknown[]>): FuzzProperty => {
    const tally: Tally = new Map();
    return { name, share, tally, property: build(tally) };
  };
  return [
    make('decoder - arbitrary bytes in arbitrary chunks only ever raise wire-coded FerryErrors', 0.28, (tally) =>
      fc.property(fc.array(frameArb, { maxLength: 2 }), noiseArb, chunkSizesArb, frameBytesMaxArb, (lead, noise, sizes, max) => {
        count(tally, checkDecoder(Buffer.concat([...lead.map(encodeFrame), noise]), sizes, max));
      })),
    make('decoder - arbitrary CBOR values as frame bodies only ever raise wire-coded FerryErrors', 0.24, (tally) =>
      fc.property(cborValueArb, fc.constantFrom(...encoderNames), fc.boolean(), chunkSizesArb, frameBytesMaxArb, (value, encoder, trailer, sizes, max) => {
        let body: Uint8Array;
        try {
          body = encoders[encoder].encode(value);
        } catch {
          count(tally, 'unencodable');
          return;
        }
        const bytes = Buffer.concat([withPrefix(body), trailer ? aValidFrame : Buffer.alloc(0)]);
        count(tally, checkDecoder(bytes, sizes, max));
      })),
    make('decoder - valid frames of every type survive encodeFrame and random split points', 0.14, (tally) =>
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), (frames, cuts) => {
        const bytes = Buffer.concat(frames.map(encodeFrame));
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const decoder = new FrameDecoder();
        const got: Frame[] = [];
        let from = 0;
        for (const to of [...at, bytes.length]) {
          got.push(...decoder.push(bytes.subarray(from, to)));
          from = to;
        }
        if (!sameFrames(got, frames)) throw new Error(`decoded ${JSON.stringify(plain(got))}`);
        if (decoder.bufferedBytes !== 0) throw new Error(`${decoder.bufferedBytes} bytes held after the last frame`);
        for (const f of frames) count(tally, typeNames.get(f.t) ?? String(f.t));
      })),
    make('decoder - valid frames with one byte mutated, inserted, deleted or the stream truncated', 0.24, (tally) =>
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 3 }), mutationArb, chunkSizesArb, frameBytesMaxArb, (frames, m, sizes, max) => {
        count(tally, checkDecoder(mutate(Buffer.concat(frames.map(encodeFrame)), m), sizes, max));
      })),
    make('decoder - a length prefix above frameBytesMax is refused after exactly 4 header bytes', 0.1, (tally) =>
      fc.property(
        fc.array(frameArb, { maxLength: 2 }),
        fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 2 ** 20 }), fc.integer({ min: 0, max: 2 ** 32 - 2 })),
        fc.oneof(fc.constant(0), fc.nat(1000), fc.nat()),
        fc.array(fc.integer({ min: 0, max: 24 }), { maxLength: 12 }),
        fc.oneof({ arbitrary: fc.constant(new Uint8Array(0)), weight: 3 }, { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 8 }), weight: 1 }),
        (pre, max, over, sizes, body) => count(tally, checkOversize(pre, max, over, sizes, body)),
      )),
  ];
}

/** `total` runs split across the properties by their shares. */
export function runsFor(p: FuzzProperty, total: number): number {
  return Math.max(1, Math.ceil(total * p.share));
}

export function formatTally(tally: Tally): string {
  return [...tally.entries()].sort(([, a], [, b]) => b - a).map(([k, n]) => `${k} ${n}`).join(', ');
}
