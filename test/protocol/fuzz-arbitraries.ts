/**
 * fast-check arbitraries for the frame decoder fuzz properties (test/protocol/fuzz-properties.ts):
 * valid frames of every type, the CBOR values a hostile or buggy peer might send instead, and
 * the chunkings and mutations applied to the encoded bytes.
 */
import fc from 'fast-check';
import { frameBytesMaxDefault, frameHeaderBytes } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { ackRangesMax, FrameType, protocolVersion, seqMax, type Frame, type SeqRange } from '../../protocol/frames.js';
import { checkTarget, type Packet, type PacketData } from '../../protocol/packet.js';

const safeMax = Number.MAX_SAFE_INTEGER;

/** Unsigned integers as the schema allows them, biased to the edges (0, 2^32 boundaries, 2^53-1). */
export const uintArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, safeMax),
  fc.nat(),
  fc.maxSafeNat(),
);

/** Seqs as the schema allows them (0 to seqMax, issue 10 case 2), biased to the edges. */
export const seqArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, seqMax),
  fc.nat(),
  fc.integer({ min: 0, max: seqMax }),
);

/** A string of at most `unitsMax` UTF-16 units (what frames.ts counts), well-formed Unicode. */
export function stringArb(unitsMax: number): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: unitsMax }), weight: 10 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: Math.floor(unitsMax / 2) }), weight: 10 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).filter((s) => s.length <= unitsMax), weight: 6 },
    { arbitrary: fc.constantFrom('', 'x'.repeat(unitsMax), '🌡'.repeat(Math.floor(unitsMax / 2)), 'é'.repeat(unitsMax)), weight: 1 },
  );
}

function isTarget(s: string): boolean {
  try {
    checkTarget(s);
    return true;
  } catch {
    return false;
  }
}

/** Non-empty, at most 255 UTF-8 bytes, no control characters. */
export const targetArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
  fc.constantFrom('a', 'mqtt/temperature', 'é'.repeat(127) + 'z', 'x'.repeat(255), '🌡'.repeat(63) + 'abc'),
).filter(isTarget);

/**
 * Map keys for packet data. "__proto__" is left out: cbor-x decodes it as "__proto_" (its guard
 * against prototype pollution), so such a key does not survive the wire; fuzz.test.ts keeps that
 * as a todo test until packet admission refuses the key.
 */
const dataKeyArb = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('constructor', 'toString', 'valueOf', 'hasOwnProperty', 't', '0', ''));

const dataLeafArb: fc.Arbitrary<PacketData> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'binary', maxLength: 16 }),
  fc.uint8Array({ maxLength: 48 }),
);

/** Bytes or a JSON value, bytes anywhere inside, up to 5 levels. */
export const dataArb: fc.Arbitrary<PacketData> = fc.letrec<{ data: PacketData; arr: PacketData[]; obj: { [key: string]: PacketData } }>((tie) => ({
  data: fc.oneof({ depthSize: 'small', maxDepth: 5 }, dataLeafArb, tie('arr'), tie('obj')),
  arr: fc.array(tie('data'), { maxLength: 4 }),
  obj: fc.dictionary(dataKeyArb, tie('data'), { maxKeys: 4, noNullPrototype: true }),
})).data;

/** A leaf wrapped in `levels` arrays or maps: 32 is the deepest nesting frames.ts accepts. */
export function nestedDataArb(levelsMin: number, levelsMax: number): fc.Arbitrary<PacketData> {
  return fc.tuple(dataLeafArb, fc.array(fc.boolean(), { minLength: levelsMin, maxLength: levelsMax })).map(([leaf, wraps]) =>
    wraps.reduce<PacketData>((inner, asArray) => (asArray ? [inner] : { k: inner }), leaf));
}

const packetArb: fc.Arbitrary<Packet> = fc.record({
  seq: fc.oneof(fc.constantFrom(1, seqMax), fc.integer({ min: 1, max: seqMax })),
  target: targetArb,
  ts: fc.oneof(uintArb, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: -1e6, max: 0 })),
  data: fc.oneof({ arbitrary: dataArb, weight: 8 }, { arbitrary: nestedDataArb(0, 32), weight: 1 }),
});

/** A cumulative seq with ascending, disjoint ranges above it (or none, or an empty list). */
export const seqAndRangesArb: fc.Arbitrary<{ seq: number; ranges?: SeqRange[] }> = fc.oneof(
  { arbitrary: seqArb.map((seq) => ({ seq })), weight: 40 },
  {
    arbitrary: fc.tuple(
      fc.uniqueArray(fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: seqMax })), { minLength: 0, maxLength: 24 }),
      fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      seqArb,
    ).map(([values, singles, fraction, anySeq]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const ranges: SeqRange[] = [];
      for (let i = 0; i < sorted.length; i += 2) {
        const a = sorted[i]!;
        const b = sorted[i + 1] ?? a;
        ranges.push(singles[(i / 2) % singles.length] ? [a, a] : [a, b]);
      }
      const seq = sorted.length === 0 ? anySeq : Math.floor(fraction * sorted[0]!);
      return { seq, ranges };
    }),
    weight: 60,
  },
  { arbitrary: fc.constant({ seq: 0, ranges: Array.from({ length: ackRangesMax }, (_, i): SeqRange => [2 * i + 1, 2 * i + 1]) }), weight: 1 },
);

const downIdArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const codeArb = fc.oneof(fc.constantFrom(...Object.values(ErrorCode)), stringArb(64));
/** Valid frames of every type, optional fields present or absent (never present as undefined). */
export const frameArbs: Record<keyof typeof FrameType, fc.Arbitrary<Frame>> = {
  HELLO: fc.record(
    {
      t: fc.constant(FrameType.HELLO), version: fc.oneof(fc.constant(protocolVersion), uintArb), agent: stringArb(255), token: stringArb(1024), ackedSeq: seqArb,
      downMessagesMax: uintArb, downBytesMax: uintArb,
    },
    { requiredKeys: ['t', 'version', 'agent', 'ackedSeq'] },
  ),
  WELCOME: fc.tuple(
    fc.record({ session: stringArb(1024), creditPackets: uintArb, creditBytes: uintArb, pingIntervalMs: uintArb }, { requiredKeys: ['session', 'creditPackets', 'creditBytes'] }),
    seqAndRangesArb,
  ).map(([f, { seq, ranges }]) => ({ t: FrameType.WELCOME, ...f, dispatchedSeq: seq, ...(ranges ? { ranges } : {}) })),
  DATA: fc.record({ t: fc.constant(FrameType.DATA), packets: fc.array(packetArb, { minLength: 1, maxLength: 4 }) }),
  ACK: fc.tuple(fc.record({ creditPackets: uintArb, creditBytes: uintArb }), seqAndRangesArb)
    .map(([f, { seq, ranges }]) => ({ t: FrameType.ACK, seq, ...f, ...(ranges ? { ranges } : {}) })),
  NACK: fc.record(
    { t: fc.constant(FrameType.NACK), seq: seqArb.filter((n) => n >= 1), code: codeArb, message: stringArb(1024), retryAfterMs: uintArb },
    { requiredKeys: ['t', 'seq', 'code', 'message'] },
  ),
  PING: fc.record({ t: fc.constant(FrameType.PING), id: uintArb, ackedSeq: seqArb }, { requiredKeys: ['t', 'id'] }),
  PONG: fc.record({ t: fc.constant(FrameType.PONG), id: uintArb }),
  BYE: fc.record(
    { t: fc.constant(FrameType.BYE), code: codeArb, reason: stringArb(1024), retryAfterMs: uintArb },
    { requiredKeys: ['t', 'code', 'reason'] },
  ),
  DOWN: fc.record({
    t: fc.constant(FrameType.DOWN),
    messages: fc.array(fc.record(
      { id: downIdArb, target: targetArb, data: dataArb, ts: uintArb, ttlMs: uintArb },
      { requiredKeys: ['id', 'target', 'data', 'ts'] },
    ), { minLength: 1, maxLength: 4 }),
  }),
  DOWN_ACK: fc.record({
    t: fc.constant(FrameType.DOWN_ACK),
    results: fc.array(fc.oneof(
      fc.record({ id: downIdArb, ok: fc.constant(true as const) }),
      fc.record({ id: downIdArb, ok: fc.constant(false as const), code: codeArb, reason: stringArb(1024) }),
    ), { minLength: 1, maxLength: 4 }),
  }),
};

export const frameArb: fc.Arbitrary<Frame> = fc.oneof(...Object.values(frameArbs));

/** The field names frames use, so random maps often look almost like a frame. */
export const fieldNames = [
  't', 'version', 'agent', 'token', 'ackedSeq', 'session', 'dispatchedSeq', 'ranges', 'creditPackets', 'creditBytes',
  'pingIntervalMs', 'packets', 'seq', 'target', 'ts', 'data', 'code', 'message', 'retryAfterMs', 'id', 'reason',
] as const;

const anythingArb = fc.anything({
  maxDepth: 4,
  maxKeys: 5,
  key: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(...fieldNames, '__proto__', 'constructor')),
  withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true,
  withObjectString: true, withSparseArray: true, withTypedArray: true, withUnicodeString: true,
});

/** Values a field might hold in a buggy or hostile frame: wrong types, out of range, huge, negative. */
export const weirdValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    undefined, null, true, -0, -1, 0.5, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 2 ** 64, Number.MAX_VALUE, Number.MIN_VALUE,
    0n, 1n, -1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n, -(2n ** 64n), '', '1', 'x'.repeat(1025), 'é'.repeat(256), [], {},
  ),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.double(),
  fc.integer(),
  fc.string({ unit: 'binary-ascii', maxLength: 12 }),
  fc.uint8Array({ maxLength: 12 }),
  fc.array(fc.tuple(fc.oneof(fc.integer({ min: -2, max: 40 }), fc.bigInt({ min: -1n, max: 2n ** 64n })), fc.integer({ min: -2, max: 40 })), { maxLength: 5 }),
  nestedDataArb(30, 40),
  anythingArb,
);

/** A map whose `t` is each frame type (or a near miss) with random frame fields. */
export const frameShapedArb: fc.Arbitrary<unknown> = fc.tuple(
  fc.oneof(fc.constantFrom(...Object.values(FrameType)), fc.constantFrom<unknown>(0, 9, -1, 1.5, '1', 3n, 2 ** 53, null)),
  fc.dictionary(fc.constantFrom(...fieldNames.filter((k) => k !== 't')), weirdValueArb, { maxKeys: 6 }),
  fc.option(fc.array(fc.dictionary(fc.constantFrom('seq', 'target', 'ts', 'data', 'x'), weirdValueArb, { maxKeys: 5 }), { maxLength: 3 })),
).map(([t, fields, packets]) => ({ t, ...fields, ...(packets ? { packets } : {}) }));

/** A valid frame with one field replaced by a weird value, deleted, or an extra field added. */
export const nearlyValidArb: fc.Arbitrary<unknown> = fc.tuple(frameArb, fc.constantFrom(...fieldNames), weirdValueArb, fc.constantFrom('replace', 'delete', 'packet'))
  .map(([frame, key, value, how]) => {
    const f: Record<string, unknown> = { ...frame };
    if (how === 'delete') delete f[key];
    else if (how === 'packet' && frame.t === FrameType.DATA) f.packets = frame.packets.map((p, i) => (i === 0 ? { ...p, [key]: value } : p));
    else f[key] = value;
    return f;
  });

/** Any CBOR value worth trying as a frame body. */
export const cborValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anythingArb, weight: 2 },
  { arbitrary: frameShapedArb, weight: 3 },
  { arbitrary: nearlyValidArb, weight: 3 },
);

/** The largest body some decoders in a property are limited to; most use the default. */
export const frameBytesMaxArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constant(frameBytesMaxDefault), weight: 8 },
  { arbitrary: fc.constantFrom(0, 1, 8, 64, 1024), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 4096 }), weight: 1 },
);

/** Chunk sizes: each push takes the next size (0 = an empty push), the rest goes in one last push. */
export const chunkSizesArb: fc.Arbitrary<number[]> = fc.oneof(
  fc.constant<number[]>([]),
  fc.array(fc.integer({ min: 0, max: 8 }), { maxLength: 64 }),
  fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 24 }),
);

export function chunk(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const n of sizes) {
    if (at >= bytes.length) break;
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  if (at < bytes.length || out.length === 0) out.push(bytes.subarray(at));
  return out;
}

export function header(length: number): Buffer {
  const h = Buffer.alloc(frameHeaderBytes);
  h.writeUInt32BE(length >>> 0, 0);
  return h;
}

/** Random bytes: raw, or segments behind small (right, wrong or zero) length prefixes so bodies get read. */
export const noiseArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
  {
    arbitrary: fc.array(fc.tuple(
      fc.uint8Array({ maxLength: 40 }),
      fc.oneof({ arbitrary: fc.constant('exact' as const), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 48 }), weight: 2 }, { arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }), weight: 1 }),
      fc.constantFrom(0xa0, 0xa1, 0xa2, 0xa3, 0xbf, 0x81, -1),
    ), { minLength: 1, maxLength: 4 }).map((segments) => Buffer.concat(segments.flatMap(([body, length, first]) => {
      const b = Buffer.from(body);
      // steer many bodies past "not a map": a map header, then a t key with a small type number
      if (first >= 0 && b.length >= 4) Buffer.from([first, 0x61, 0x74, b[3]! % 10]).copy(b);
      return [header(length === 'exact' ? b.length : length), b];
    }))),
    weight: 4,
  },
);

export type Mutation = { kind: 'set' | 'flip' | 'insert' | 'delete' | 'truncate'; at: number; value: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('set', 'flip', 'insert', 'delete', 'truncate'),
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
});

/** One mutation of `bytes`; `at` is reduced modulo the length so shrinking stays meaningful. */
export function mutate(bytes: Uint8Array, m: Mutation): Buffer {
  const b = Buffer.from(bytes);
  if (b.length === 0) return b;
  const at = m.at % b.length;
  switch (m.kind) {
    case 'set': b[at] = m.value; return b;
    case 'flip': b[at] = b[at]! ^ (1 << (m.value % 8)); return b;
    case 'insert': return Buffer.concat([b.subarray(0, at), Buffer.from([m.value]), b.subarray(at)]);
    case 'delete': return Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    case 'truncate': return b.subarray(0, at);
  }
}
