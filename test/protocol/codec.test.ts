import t, { type Test } from 'tap';
import { Encoder } from 'cbor-x';
import { dataFrameOverheadBytes, encodeFrame, FrameDecoder, frameBytesMaxDefault, frameHeaderBytes, packetWireBytes } from '../../protocol/codec.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, protocolVersion, seqMax, type Frame, type ByeFrame } from '../../protocol/frames.js';
import type { PacketData } from '../../protocol/packet.js';
import { frameDataDepthMax, helloFrameBytesMax } from '../../protocol/limits.js';
import { refuses } from '../helpers/refuses.js';

// ---------------------------------------------------------------------------------------------
// Seeded randomness: every randomized test below draws from mulberry32(seed ^ salt). Replay a run
// with SEED=<n> npx tap test/protocol/codec.test.ts. A seed that once failed goes into
// `regressionSeeds` so it runs every time.
// ---------------------------------------------------------------------------------------------
const regressionSeeds: number[] = [];

function parseSeed(text: string | undefined): number {
  if (text === undefined || text === '') return Math.floor(Math.random() * 2 ** 32);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`SEED must be an integer, got ${JSON.stringify(text)}`);
  return n >>> 0;
}
const seed = parseSeed(process.env.SEED);
t.comment(`codec seed ${seed} (replay with SEED=${seed})`);
const seeds = [seed, ...regressionSeeds];

type Rng = () => number;
function mulberry32(a: number): Rng {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
/** integer in [lo, hi] */
function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}
function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}
function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 0, 255);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** The same plain-CBOR settings the codec uses, for writing frames the codec would never write. */
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

function withHeader(body: Uint8Array, length = body.length): Buffer {
  const out = Buffer.alloc(frameHeaderBytes + body.length);
  out.writeUInt32BE(length, 0);
  out.set(body, frameHeaderBytes);
  return out;
}
function frameOf(value: unknown): Buffer {
  return withHeader(cbor.encode(value));
}
function header(length: number): Buffer {
  const h = Buffer.alloc(frameHeaderBytes);
  h.writeUInt32BE(length, 0);
  return h;
}
/** A CBOR unsigned integer in its 8-byte form (major type 0, additional info 27), as non-JS encoders write large ints. */
function cborUint64(n: bigint): Buffer {
  const b = Buffer.alloc(9);
  b[0] = 0x1b;
  b.writeBigUInt64BE(n, 1);
  return b;
}
/** A CBOR map written by hand from [key, already-encoded value] pairs (at most 23 entries). */
function cborMap(entries: [string, Uint8Array][]): Buffer {
  return Buffer.concat([Buffer.from([0xa0 + entries.length]), ...entries.flatMap(([k, v]) => [cbor.encode(k), v])]);
}

/**
 * Byte strings become {bytes: hex} so that a Buffer, a Uint8Array and a view compare by content
 * only; map keys are sorted so that JSON.stringify of two plain values compares them.
 */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function decodeChunks(chunks: Uint8Array[], decoder = new FrameDecoder()): Frame[] {
  const out: Frame[] = [];
  for (const c of chunks) out.push(...decoder.push(c));
  return out;
}

// ---------------------------------------------------------------------------------------------
// A fixed sequence with every frame type and the edge values of each field
// ---------------------------------------------------------------------------------------------
const target255 = 'é'.repeat(127) + 'z'; // 128 characters, 255 UTF-8 bytes: the largest target
const frames: Frame[] = [
  { t: FrameType.HELLO, version: protocolVersion, agent: 'pi-kitchen', token: 's3cret-tøken', ackedSeq: 0 },
  { t: FrameType.HELLO, version: protocolVersion, agent: 'pi-garage', ackedSeq: 41 },
  { t: FrameType.WELCOME, session: 'sess-0001', dispatchedSeq: 41, creditPackets: 64, creditBytes: 1 << 20 },
  {
    t: FrameType.DATA,
    packets: [
      {
        seq: 42, target: 'mqtt/temperature', ts: 1732000000000,
        data: { celsius: 21.5, tenth: 0.1, ok: true, none: null, tags: ['a', 'b'], nested: { neg: -3, big: 2 ** 40, min: -(2 ** 53) + 1 }, empty: {} },
      },
      { seq: 43, target: 'files/raw', ts: 1732000000001, data: new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]) },
      { seq: 44, target: 'capteur/température/北京/🌡️', ts: 1732000000002.5, data: 'héllo wörld ✓ 🚀' },
      { seq: 45, target: target255, ts: -1, data: [1, 'two', false, 3.25, [], new Uint8Array(0)] },
      { seq: 46, target: 'e', ts: 0, data: new Uint8Array(300).fill(7) },
      { seq: seqMax, target: 'x', ts: Number.MAX_SAFE_INTEGER, data: null },
    ],
  },
  { t: FrameType.DATA, packets: [{ seq: 1, target: 'one', ts: 1, data: 0 }] },
  { t: FrameType.ACK, seq: seqMax, creditPackets: 0, creditBytes: 2 ** 32 },
  { t: FrameType.NACK, seq: 43, code: ErrorCode.UNKNOWN_TARGET, message: 'no route for files/raw' },
  { t: FrameType.NACK, seq: 44, code: ErrorCode.HANDLER_FAILED, message: 'broker down', retryAfterMs: 5000 },
  { t: FrameType.NACK, seq: 45, code: ErrorCode.HANDLER_FAILED, message: '', retryAfterMs: 0 },
  { t: FrameType.PING, id: 0 },
  { t: FrameType.PONG, id: 2 ** 32 + 1 },
  { t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'gateway stopping' },
  { t: FrameType.HELLO, version: protocolVersion, agent: 'pi-down', ackedSeq: 0, downMessagesMax: 32, downBytesMax: 262144 },
  {
    t: FrameType.DOWN,
    messages: [
      { id: 'AbC-_09xyzAbC-_09xyzAb', target: 'sensor/cmd', data: 'interval=200', ts: 1732000000000, ttlMs: 30000 },
      { id: 'm2', target: target255, data: new Uint8Array([0, 255]), ts: 0 },
    ],
  },
  { t: FrameType.DOWN_ACK, results: [{ id: 'AbC-_09xyzAbC-_09xyzAb', ok: true }, { id: 'm2', ok: false, code: ErrorCode.DOWNLINK_REFUSED, reason: 'err unknown command' }] },
];
const encoded = frames.map(encodeFrame);
const stream = Buffer.concat(encoded);
/** Offsets in `stream` at which each frame ends. */
const frameEnds = encoded.reduce<number[]>((ends, e) => [...ends, (ends.at(-1) ?? 0) + e.length], []);

t.test('codec - the fixed sequence covers every frame type', async (t) => {
  t.same(new Set(frames.map((f) => f.t)), new Set(Object.values(FrameType)));
});

t.test('codec - every frame type survives one push', async (t) => {
  const decoder = new FrameDecoder();
  const got = decoder.push(stream);
  t.strictSame(plain(got), plain(frames));
  t.equal(decoder.bufferedBytes, 0, 'nothing left over');
  const data = got[3]?.t === FrameType.DATA ? got[3].packets[1]?.data : undefined;
  t.ok(data instanceof Uint8Array, 'byte data comes back as bytes, not as an array or a map');
});

t.test('codec - frames survive being fed one byte at a time', async (t) => {
  const decoder = new FrameDecoder();
  const got: Frame[] = [];
  let early = 0;
  let start = 0;
  for (let i = 0; i < stream.length; i++) {
    const out = decoder.push(stream.subarray(i, i + 1));
    const end = i + 1;
    if (frameEnds.includes(end)) {
      if (out.length !== 1) t.fail(`byte ${i}: expected exactly one frame at the end of a frame, got ${out.length}`);
      if (decoder.bufferedBytes !== 0) t.fail(`byte ${i}: ${decoder.bufferedBytes} bytes held after a whole frame`);
      start = end;
    } else {
      if (out.length !== 0) early++;
      if (decoder.bufferedBytes !== end - start) t.fail(`byte ${i}: bufferedBytes ${decoder.bufferedBytes}, expected ${end - start}`);
    }
    got.push(...out);
  }
  t.equal(early, 0, 'no frame comes out before its last byte');
  t.strictSame(plain(got), plain(frames));
});

t.test('codec - frames survive a split at every offset', async (t) => {
  const want = plain(frames);
  let bad = 0;
  for (let at = 0; at <= stream.length; at++) {
    const decoder = new FrameDecoder();
    const got = decodeChunks([stream.subarray(0, at), stream.subarray(at)], decoder);
    const ok = JSON.stringify(plain(got)) === JSON.stringify(want) && decoder.bufferedBytes === 0;
    if (!ok) {
      bad++;
      t.strictSame(plain(got), want, `split at ${at}`);
    }
  }
  t.equal(bad, 0, `all ${stream.length + 1} splits give the original frames`);
});

t.test('codec - frames survive random chunkings', async (t) => {
  const want = plain(frames);
  for (const s of seeds) {
    const rng = mulberry32(s ^ 0x51ced);
    let bad = 0;
    const runs = 300;
    for (let run = 0; run < runs; run++) {
      const chunks: Buffer[] = [];
      let at = 0;
      const sizeMax = pick(rng, [2, 8, 64, 512]);
      while (at < stream.length) {
        const n = rng() < 0.05 ? 0 : int(rng, 1, sizeMax); // empty pushes too
        chunks.push(stream.subarray(at, at + n));
        at += n;
      }
      const decoder = new FrameDecoder();
      const got = decodeChunks(chunks, decoder);
      if (JSON.stringify(plain(got)) !== JSON.stringify(want) || decoder.bufferedBytes !== 0) {
        bad++;
        if (bad === 1) t.strictSame(plain(got), want, `seed ${s} run ${run}: chunks ${chunks.map((c) => c.length).join(',')}`);
      }
    }
    t.equal(bad, 0, `seed ${s}: ${runs} random chunkings give the original frames`);
  }
});

// Random valid frames: the codec must give back whatever the schema allows.
const chars = ['a', 'Z', '0', '/', '-', '.', ' ', '~', 'é', '€', '北', '🌡', 'ß', '\u00a0'];
function randomString(rng: Rng, bytesMax: number, nonEmpty: boolean): string {
  let s = nonEmpty ? pick(rng, ['a', 'b', 'é']) : '';
  const want = int(rng, 0, bytesMax);
  for (;;) {
    const next = s + pick(rng, chars);
    if (Buffer.byteLength(next) > Math.min(want, bytesMax) && s !== '') return s;
    if (Buffer.byteLength(next) > bytesMax) return s;
    s = next;
  }
}
function randomUint(rng: Rng): number {
  return pick(rng, [0, 1, int(rng, 0, 255), int(rng, 0, 2 ** 32 - 1), int(rng, 0, Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER]);
}
/** A seq as the schema allows it (0 to seqMax), biased to the edges. */
function randomSeq(rng: Rng): number {
  return pick(rng, [0, 1, int(rng, 0, 255), int(rng, 0, 2 ** 32 - 1), int(rng, 0, seqMax), seqMax]);
}
function randomData(rng: Rng, depth = 0): PacketData {
  const kind = int(rng, 0, depth > 2 ? 4 : 6);
  switch (kind) {
    case 0: return null;
    case 1: return rng() < 0.5;
    case 2: return pick(rng, [int(rng, -(2 ** 31), 2 ** 31), int(rng, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), (rng() - 0.5) * 1e9, 0.1]);
    case 3: return randomString(rng, 40, false);
    case 4: return new Uint8Array(randomBytes(rng, int(rng, 0, 40)));
    case 5: return Array.from({ length: int(rng, 0, 4) }, () => randomData(rng, depth + 1));
    default: {
      const o: { [key: string]: PacketData } = {};
      for (let i = int(rng, 0, 4); i > 0; i--) o[pick(rng, ['a', 'b', 'value', 'ünï', 'x y', '0'])] = randomData(rng, depth + 1);
      return o;
    }
  }
}
function randomFrame(rng: Rng): Frame {
  const type = pick(rng, Object.values(FrameType));
  switch (type) {
    case FrameType.HELLO: {
      const f: Frame = { t: type, version: randomUint(rng), agent: randomString(rng, 64, false), ackedSeq: randomSeq(rng) };
      if (rng() < 0.5) f.token = randomString(rng, 300, false);
      return f;
    }
    case FrameType.WELCOME:
      return { t: type, session: randomString(rng, 40, false), dispatchedSeq: randomSeq(rng), creditPackets: randomUint(rng), creditBytes: randomUint(rng) };
    case FrameType.DATA:
      return {
        t: type,
        packets: Array.from({ length: int(rng, 1, 5) }, () => ({
          seq: Math.max(1, randomSeq(rng)), target: randomString(rng, 255, true), ts: pick(rng, [randomUint(rng), rng() * 2e12, -int(rng, 0, 1e6)]), data: randomData(rng),
        })),
      };
    case FrameType.ACK:
      return { t: type, seq: randomSeq(rng), creditPackets: randomUint(rng), creditBytes: randomUint(rng) };
    case FrameType.NACK: {
      const f: Frame = { t: type, seq: Math.max(1, randomSeq(rng)), code: pick(rng, Object.values(ErrorCode)), message: randomString(rng, 200, false) };
      if (rng() < 0.5) f.retryAfterMs = randomUint(rng);
      return f;
    }
    case FrameType.PING:
    case FrameType.PONG:
      return { t: type, id: randomUint(rng) };
    case FrameType.DOWN:
      return {
        t: type,
        messages: Array.from({ length: int(rng, 1, 4) }, (_, i) => ({
          id: `m${i}-${randomUint(rng)}`, target: randomString(rng, 255, true), data: randomData(rng), ts: randomUint(rng), ...(rng() < 0.5 ? { ttlMs: randomUint(rng) } : {}),
        })),
      };
    case FrameType.DOWN_ACK:
      return {
        t: type,
        results: Array.from({ length: int(rng, 1, 4) }, (_, i) => (rng() < 0.5 ? { id: `m${i}`, ok: true as const } : { id: `m${i}`, ok: false as const, code: pick(rng, Object.values(ErrorCode)), reason: randomString(rng, 200, false) })),
      };
    case FrameType.BYE:
      return { t: type, code: pick(rng, Object.values(ErrorCode)), reason: randomString(rng, 200, false) };
  }
}

t.test('codec - random valid frames survive encode and random chunking', async (t) => {
  for (const s of seeds) {
    const rng = mulberry32(s ^ 0xf4a3e5);
    let bad = 0;
    const runs = 300;
    for (let run = 0; run < runs; run++) {
      const want = Array.from({ length: int(rng, 1, 12) }, () => randomFrame(rng));
      const bytes = Buffer.concat(want.map(encodeFrame));
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length;) {
        const n = int(rng, 0, 40);
        chunks.push(bytes.subarray(at, at + n));
        at += n;
      }
      let got: unknown;
      try {
        got = plain(decodeChunks(chunks));
      } catch (err) {
        got = String(err);
      }
      if (JSON.stringify(got) !== JSON.stringify(plain(want))) {
        bad++;
        if (bad === 1) t.strictSame(got, plain(want), `seed ${s} run ${run}`);
      }
    }
    t.equal(bad, 0, `seed ${s}: ${runs} random sequences of valid frames come back unchanged`);
  }
});

// ---------------------------------------------------------------------------------------------
// bufferedBytes, limits and refusals
// ---------------------------------------------------------------------------------------------

t.test('codec - bufferedBytes reflects a partial frame', async (t) => {
  const a = encodeFrame({ t: FrameType.PING, id: 7 });
  const b = encodeFrame({ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'bye' });
  const decoder = new FrameDecoder();
  t.equal(decoder.bufferedBytes, 0, 'a new decoder holds nothing');
  t.strictSame(decoder.push(new Uint8Array(0)), [], 'an empty push gives nothing');
  t.strictSame(decoder.push(a.subarray(0, 2)), [], 'half a header gives nothing');
  t.equal(decoder.bufferedBytes, 2, 'half a header is held');
  t.strictSame(decoder.push(a.subarray(2, a.length - 1)), [], 'all but the last byte gives nothing');
  t.equal(decoder.bufferedBytes, a.length - 1, 'the header and the partial body are held');
  t.strictSame(decoder.push(new Uint8Array(0)), [], 'an empty push in the middle of a frame gives nothing');
  t.equal(decoder.bufferedBytes, a.length - 1, 'an empty push changes nothing');
  const out = decoder.push(Buffer.concat([a.subarray(a.length - 1), b.subarray(0, 3)]));
  t.strictSame(out, [{ t: FrameType.PING, id: 7 }], 'the last byte completes the frame');
  t.equal(decoder.bufferedBytes, 3, 'only the start of the next frame is held');
  t.strictSame(decoder.push(b.subarray(3)), [{ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'bye' }]);
  t.equal(decoder.bufferedBytes, 0, 'nothing held between frames');
});

t.test('codec - an oversize length prefix is refused after the 4 header bytes', async (t) => {
  const frameBytesMax = 100;
  const decoder = new FrameDecoder({ frameBytesMax });
  const h = header(frameBytesMax + 1);
  for (let i = 0; i < frameHeaderBytes - 1; i++) {
    t.strictSame(decoder.push(h.subarray(i, i + 1)), [], `header byte ${i} alone is not enough to judge`);
  }
  const err = refuses(t, () => decoder.push(h.subarray(frameHeaderBytes - 1)), ErrorCode.FRAME_TOO_LARGE, 'the fourth header byte, no body yet');
  t.match(err?.message, /101/, 'the message names the announced size');
  t.equal(decoder.bufferedBytes, 0, 'nothing is kept after the refusal');

  refuses(t, () => new FrameDecoder().push(header(0xffffffff)), ErrorCode.FRAME_TOO_LARGE, '4 GiB announced against the default maximum');
  refuses(t, () => new FrameDecoder().push(header(frameBytesMaxDefault + 1)), ErrorCode.FRAME_TOO_LARGE, 'one byte over the default maximum');
  t.strictSame(new FrameDecoder().push(header(frameBytesMaxDefault)), [], 'exactly the default maximum is waited for');

  // The limit counts body bytes: a body of exactly frameBytesMax passes, one more is refused.
  const bye: ByeFrame = { t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'r'.repeat(200) };
  const whole = encodeFrame(bye);
  const bodyBytes = whole.length - frameHeaderBytes;
  t.strictSame(new FrameDecoder({ frameBytesMax: bodyBytes }).push(whole), [bye], 'a body of exactly frameBytesMax is accepted');
  refuses(t, () => new FrameDecoder({ frameBytesMax: bodyBytes - 1 }).push(whole), ErrorCode.FRAME_TOO_LARGE, 'a body one byte over frameBytesMax');

  // A good frame first, then an oversize header split across pushes.
  const d2 = new FrameDecoder({ frameBytesMax });
  t.strictSame(d2.push(Buffer.concat([encodeFrame({ t: FrameType.PING, id: 1 }), header(1000).subarray(0, 2)])), [{ t: FrameType.PING, id: 1 }]);
  refuses(t, () => d2.push(header(1000).subarray(2)), ErrorCode.FRAME_TOO_LARGE, 'an oversize header split 2+2 after a good frame');
});

t.test('codec - a zero length prefix is malformed', async (t) => {
  refuses(t, () => new FrameDecoder().push(header(0)), ErrorCode.FRAME_MALFORMED, 'empty body');
  const d = new FrameDecoder();
  t.strictSame(d.push(Buffer.from([0, 0])), []);
  refuses(t, () => d.push(Buffer.from([0, 0, 0xa0])), ErrorCode.FRAME_MALFORMED, 'empty body, header split');
});

/** `[[…[]…]]`: `levels` arrays, one inside the other. */
function nested(levels: number): PacketData {
  let v: PacketData = [];
  for (let i = 1; i < levels; i++) v = [v];
  return v;
}

const ping = (more: Record<string, unknown>) => ({ t: FrameType.PING, id: 1, ...more });
const okPacket = { seq: 1, target: 'a', ts: 1, data: 1 };
const data = (packet: Record<string, unknown>) => ({ t: FrameType.DATA, packets: [{ ...okPacket, ...packet }] });
const hello = { t: FrameType.HELLO, version: 1, agent: 'a', ackedSeq: 0 };
const welcome = { t: FrameType.WELCOME, session: 's', dispatchedSeq: 0, creditPackets: 1, creditBytes: 1 };
const ack = { t: FrameType.ACK, seq: 1, creditPackets: 1, creditBytes: 1 };
const nack = { t: FrameType.NACK, seq: 1, code: 'X', message: 'm' };
const bye = { t: FrameType.BYE, code: 'X', reason: 'r' };
const { packets: _unused, ...dataNoPackets } = data({});
const { data: _noData, ...packetNoData } = okPacket;

const garbage: [string, Buffer, ErrorCode][] = [
  // not CBOR at all
  ['a lone break byte', withHeader(Buffer.from([0xff])), ErrorCode.FRAME_MALFORMED],
  ['a reserved additional-info byte', withHeader(Buffer.from([0x1c])), ErrorCode.FRAME_MALFORMED],
  ['a map cut short', withHeader(Buffer.from([0xa2, 0x61, 0x74, 0x06])), ErrorCode.FRAME_MALFORMED],
  ['a string longer than the body', withHeader(Buffer.from([0x7a, 0x7f, 0xff, 0xff, 0xff, 0x41])), ErrorCode.FRAME_MALFORMED],
  ['an array header for 2^31 items', withHeader(Buffer.from([0x9a, 0x7f, 0xff, 0xff, 0xff])), ErrorCode.FRAME_MALFORMED],
  ['a valid frame followed by a stray byte inside the same body', withHeader(Buffer.concat([cbor.encode(ping({})), Buffer.from([0x01])])), ErrorCode.FRAME_MALFORMED],
  ['arrays nested 100,000 deep', withHeader(Buffer.concat([Buffer.alloc(100_000, 0x81), Buffer.from([0x01])])), ErrorCode.FRAME_MALFORMED],
  // CBOR, but not a map
  ['an integer', frameOf(3), ErrorCode.FRAME_MALFORMED],
  ['a string', frameOf('hello'), ErrorCode.FRAME_MALFORMED],
  ['null', frameOf(null), ErrorCode.FRAME_MALFORMED],
  ['an array', frameOf([FrameType.PING, 1]), ErrorCode.FRAME_MALFORMED],
  ['a byte string', frameOf(new Uint8Array([0xa1, 0x61, 0x74, 0x06])), ErrorCode.FRAME_MALFORMED],
  // a map with an unknown type
  ['t = 0', frameOf({ t: 0, id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['t = 11', frameOf({ t: 11, id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['DOWN with no messages', frameOf({ t: 9, messages: [] }), ErrorCode.FRAME_MALFORMED],
  ['DOWN message with a bad id', frameOf({ t: 9, messages: [{ id: 'a b', target: 'x', data: 1, ts: 0 }] }), ErrorCode.FRAME_MALFORMED],
  ['DOWN message without data', frameOf({ t: 9, messages: [{ id: 'a', target: 'x', ts: 0 }] }), ErrorCode.FRAME_MALFORMED],
  ['DOWN message with a negative ttlMs', frameOf({ t: 9, messages: [{ id: 'a', target: 'x', data: 1, ts: 0, ttlMs: -1 }] }), ErrorCode.FRAME_MALFORMED],
  ['DOWN_ACK result without ok', frameOf({ t: 10, results: [{ id: 'a' }] }), ErrorCode.FRAME_MALFORMED],
  ['DOWN_ACK refusal without a code', frameOf({ t: 10, results: [{ id: 'a', ok: false, reason: 'x' }] }), ErrorCode.FRAME_MALFORMED],
  ['DOWN_ACK with 1025 results', frameOf({ t: 10, results: Array.from({ length: 1025 }, () => ({ id: 'a', ok: true })) }), ErrorCode.FRAME_MALFORMED],
  ['t = 255', frameOf({ t: 255 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['t = -6', frameOf({ t: -6, id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['t = 6.5', frameOf({ t: 6.5, id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['t = "6"', frameOf({ t: '6', id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['t = "PING"', frameOf({ t: 'PING', id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['t = null', frameOf({ t: null, id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['no t', frameOf({ id: 1 }), ErrorCode.FRAME_UNKNOWN_TYPE],
  ['an empty map', frameOf({}), ErrorCode.FRAME_UNKNOWN_TYPE],
  // wrong field types
  ['HELLO version as a string', frameOf({ ...hello, version: '1' }), ErrorCode.FRAME_MALFORMED],
  ['HELLO without agent', frameOf({ ...hello, agent: undefined }), ErrorCode.FRAME_MALFORMED],
  ['HELLO agent as a number', frameOf({ ...hello, agent: 7 }), ErrorCode.FRAME_MALFORMED],
  ['HELLO agent of 256 characters', frameOf({ ...hello, agent: 'a'.repeat(256) }), ErrorCode.FRAME_MALFORMED],
  ['HELLO token as bytes', frameOf({ ...hello, token: new Uint8Array([1]) }), ErrorCode.FRAME_MALFORMED],
  ['HELLO token null', frameOf({ ...hello, token: null }), ErrorCode.FRAME_MALFORMED],
  ['HELLO ackedSeq as a float', frameOf({ ...hello, ackedSeq: 1.5 }), ErrorCode.FRAME_MALFORMED],
  ['WELCOME without session', frameOf({ ...welcome, session: undefined }), ErrorCode.FRAME_MALFORMED],
  ['WELCOME creditBytes as a string', frameOf({ ...welcome, creditBytes: '10' }), ErrorCode.FRAME_MALFORMED],
  ['ACK seq as a boolean', frameOf({ ...ack, seq: true }), ErrorCode.FRAME_MALFORMED],
  ['ACK without creditPackets', frameOf({ ...ack, creditPackets: undefined }), ErrorCode.FRAME_MALFORMED],
  ['NACK retryAfterMs as a string', frameOf({ ...nack, retryAfterMs: '5s' }), ErrorCode.FRAME_MALFORMED],
  ['NACK code of 65 characters', frameOf({ ...nack, code: 'C'.repeat(65) }), ErrorCode.FRAME_MALFORMED],
  ['NACK message of 1025 characters', frameOf({ ...nack, message: 'm'.repeat(1025) }), ErrorCode.FRAME_MALFORMED],
  ['PING id as a float', frameOf(ping({ id: 0.5 })), ErrorCode.FRAME_MALFORMED],
  ['PING id Infinity', frameOf(ping({ id: Infinity })), ErrorCode.FRAME_MALFORMED],
  ['PONG without id', frameOf({ t: FrameType.PONG }), ErrorCode.FRAME_MALFORMED],
  ['BYE reason as a map', frameOf({ ...bye, reason: { a: 1 } }), ErrorCode.FRAME_MALFORMED],
  ['DATA without packets', frameOf(dataNoPackets), ErrorCode.FRAME_MALFORMED],
  ['DATA packets as a map', frameOf({ t: FrameType.DATA, packets: { 0: okPacket } }), ErrorCode.FRAME_MALFORMED],
  ['DATA with an empty packets array', frameOf({ t: FrameType.DATA, packets: [] }), ErrorCode.FRAME_MALFORMED],
  ['DATA packet that is a number', frameOf({ t: FrameType.DATA, packets: [1] }), ErrorCode.FRAME_MALFORMED],
  ['DATA packet without data', frameOf({ t: FrameType.DATA, packets: [packetNoData] }), ErrorCode.FRAME_MALFORMED],
  ['DATA packet ts as a string', frameOf(data({ ts: '2024-01-01' })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet ts NaN', frameOf(data({ ts: NaN })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet ts -Infinity', frameOf(data({ ts: -Infinity })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet target as a number', frameOf(data({ target: 5 })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet target as bytes', frameOf(data({ target: new Uint8Array([0x61]) })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet data nested deeper than frameDataDepthMax', frameOf(data({ data: nested(frameDataDepthMax + 1) })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet seq as a string', frameOf(data({ seq: '1' })), ErrorCode.FRAME_MALFORMED],
  // seq range
  ['DATA packet seq 0', frameOf(data({ seq: 0 })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet seq -1', frameOf(data({ seq: -1 })), ErrorCode.FRAME_MALFORMED],
  ['DATA packet seq 2^53', frameOf(data({ seq: 2 ** 53 })), ErrorCode.FRAME_MALFORMED],
  ['DATA second packet with seq 0', frameOf({ t: FrameType.DATA, packets: [okPacket, { ...okPacket, seq: 0 }] }), ErrorCode.FRAME_MALFORMED],
  ['ACK seq -1', frameOf({ ...ack, seq: -1 }), ErrorCode.FRAME_MALFORMED],
  ['ACK seq -(2^40) (negative 64-bit)', frameOf({ ...ack, seq: -(2 ** 40) }), ErrorCode.FRAME_MALFORMED],
  ['ACK seq 2^53 as a 64-bit CBOR integer', withHeader(cborMap([['t', cbor.encode(FrameType.ACK)], ['seq', cborUint64(2n ** 53n)], ['creditPackets', cbor.encode(1)], ['creditBytes', cbor.encode(1)]])), ErrorCode.FRAME_MALFORMED],
  ['ACK seq 2^64-1 as a 64-bit CBOR integer', withHeader(cborMap([['t', cbor.encode(FrameType.ACK)], ['seq', cborUint64(2n ** 64n - 1n)], ['creditPackets', cbor.encode(1)], ['creditBytes', cbor.encode(1)]])), ErrorCode.FRAME_MALFORMED],
];

t.test('codec - garbage is refused with the specific code', async (t) => {
  for (const [what, bytes, code] of garbage) {
    refuses(t, () => new FrameDecoder().push(bytes), code, what);
  }
});

t.test('codec - garbage is refused the same way when fed one byte at a time', async (t) => {
  for (const [what, bytes, code] of garbage) {
    const decoder = new FrameDecoder();
    refuses(t, () => { for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1)); }, code, what);
  }
});

t.test('codec - integers in their 64-bit CBOR form are accepted where they fit', async (t) => {
  const body = cborMap([['t', cbor.encode(FrameType.ACK)], ['seq', cborUint64(BigInt(seqMax))], ['creditPackets', cborUint64(BigInt(Number.MAX_SAFE_INTEGER))], ['creditBytes', cbor.encode(1)]]);
  t.strictSame(new FrameDecoder().push(withHeader(body)), [{ t: FrameType.ACK, seq: seqMax, creditPackets: Number.MAX_SAFE_INTEGER, creditBytes: 1 }]);
});

// Issue 10, case 2: HELLO ackedSeq 2^53-1 was recorded as another agent's dispatch floor, and a
// WELCOME or ACK of 2^53-1 made an agent delete its backlog and jump its seq to 2^53. Every seq
// field is held to 0..seqMax (a packet's seq, and so a NACK's, to 1..seqMax) at decode.
t.test('codec - a seq outside 0..seqMax is refused at decode in HELLO, WELCOME, DATA, ACK, NACK and PING alike; seqMax itself passes', async (t) => {
  t.ok(seqMax < Number.MAX_SAFE_INTEGER && Number.isSafeInteger(seqMax + seqMax), 'seqMax leaves room: the sum of two seqs is exact');
  /** Each seq field: the frame with that field set to `v`. */
  const fields: [string, (v: unknown) => Record<string, unknown>, number][] = [
    ['HELLO ackedSeq', (v) => ({ ...hello, ackedSeq: v }), 0],
    ['WELCOME dispatchedSeq', (v) => ({ ...welcome, dispatchedSeq: v }), 0],
    ['WELCOME seenSeq', (v) => ({ ...welcome, seenSeq: v }), 0],
    ['WELCOME range end', (v) => ({ ...welcome, ranges: [[1, v]] }), 1],
    ['WELCOME range start', (v) => ({ ...welcome, ranges: [[v, v]] }), 1],
    ['DATA packet seq', (v) => data({ seq: v }), 1],
    ['DATA second packet seq', (v) => ({ t: FrameType.DATA, packets: [okPacket, { ...okPacket, seq: v }] }), 1],
    ['ACK seq', (v) => ({ ...ack, seq: v }), 0],
    ['ACK range end', (v) => ({ ...ack, seq: 0, ranges: [[1, v]] }), 1],
    ['ACK range start', (v) => ({ ...ack, seq: 0, ranges: [[v, v]] }), 1],
    ['NACK seq', (v) => ({ ...nack, seq: v }), 1],
    ['PING ackedSeq', (v) => ping({ ackedSeq: v }), 0],
  ];
  for (const [what, frame, min] of fields) {
    t.equal(new FrameDecoder().push(frameOf(frame(seqMax))).length, 1, `${what} seqMax is accepted`);
    t.equal(new FrameDecoder().push(frameOf(frame(min))).length, 1, `${what} ${min} is accepted`);
    for (const bad of [seqMax + 1, Number.MAX_SAFE_INTEGER, 2 ** 53, min - 1]) refuses(t, () => new FrameDecoder().push(frameOf(frame(bad))), ErrorCode.FRAME_MALFORMED, `${what} ${bad}`);
    // Other encoders write large integers in the 64-bit form (a bigint to cbor-x): held to the same range.
    refuses(t, () => new FrameDecoder().push(frameOf(frame(BigInt(Number.MAX_SAFE_INTEGER)))), ErrorCode.FRAME_MALFORMED, `${what} 2^53-1 as a 64-bit integer`);
  }
});

t.test('codec - after an error the decoder refuses further pushes', async (t) => {
  const cases: [string, Buffer][] = [
    ['oversize', header(0xffffffff)],
    ['zero length', header(0)],
    ['not CBOR', withHeader(Buffer.from([0xff]))],
    ['unknown type', frameOf({ t: 99 })],
    ['bad field', frameOf(ping({ id: -1 }))],
  ];
  const good = encodeFrame({ t: FrameType.PING, id: 1 });
  for (const [what, bytes] of cases) {
    const decoder = new FrameDecoder();
    t.throws(() => decoder.push(bytes), FerryError, `${what}: first push fails`);
    t.equal(decoder.bufferedBytes, 0, `${what}: nothing is held after the failure`);
    refuses(t, () => decoder.push(good), ErrorCode.PROTOCOL_STATE, `${what}: a good frame afterwards`);
    refuses(t, () => decoder.push(new Uint8Array(0)), ErrorCode.PROTOCOL_STATE, `${what}: an empty push afterwards`);
    refuses(t, () => decoder.push(good), ErrorCode.PROTOCOL_STATE, `${what}: still refused the second time`);
  }
});

t.test('codec - an error in a later frame of one push still fails the push', async (t) => {
  const decoder = new FrameDecoder();
  refuses(t, () => decoder.push(Buffer.concat([encodeFrame({ t: FrameType.PING, id: 1 }), frameOf({ t: 42 })])), ErrorCode.FRAME_UNKNOWN_TYPE, 'good frame then unknown type');
  refuses(t, () => decoder.push(encodeFrame({ t: FrameType.PING, id: 2 })), ErrorCode.PROTOCOL_STATE, 'then refused');
});

// ---------------------------------------------------------------------------------------------
// Fuzz: whatever arrives, push returns frames or throws a FerryError with a catalogued code.
// ---------------------------------------------------------------------------------------------
const codes = new Set<string>(Object.values(ErrorCode));

interface FuzzResult { bad: number; first?: string; frames: number; byCode: Map<string, number> }
function fuzz(rng: Rng, cases: number, make: (rng: Rng) => Buffer): FuzzResult {
  const r: FuzzResult = { bad: 0, frames: 0, byCode: new Map() };
  for (let i = 0; i < cases; i++) {
    const bytes = make(rng);
    const decoder = new FrameDecoder({ frameBytesMax: pick(rng, [64, 4096, frameBytesMaxDefault]) });
    try {
      // one push, or a few random chunks
      if (rng() < 0.5) r.frames += decoder.push(bytes).length;
      else for (let at = 0; at < bytes.length;) { const n = int(rng, 1, 16); r.frames += decoder.push(bytes.subarray(at, at + n)).length; at += n; }
    } catch (err) {
      if (err instanceof FerryError && codes.has(err.code)) {
        r.byCode.set(err.code, (r.byCode.get(err.code) ?? 0) + 1);
      } else {
        r.bad++;
        r.first ??= `case ${i}, bytes ${bytes.toString('hex')}: ${String(err)}`;
      }
    }
  }
  return r;
}
function report(t: Test, s: number, what: string, r: FuzzResult): void {
  t.comment(`seed ${s} ${what}: ${r.frames} frames decoded; refusals ${JSON.stringify(Object.fromEntries(r.byCode))}`);
  t.equal(r.bad, 0, `seed ${s} ${what}: only FerryErrors with catalogued codes${r.first ? ` (first: ${r.first})` : ''}`);
}

t.test('codec - random bytes behind a valid length prefix only ever raise catalogued FerryErrors', async (t) => {
  for (const s of seeds) {
    const r = fuzz(mulberry32(s ^ 0xbadf00d), 20_000, (rng) => {
      const n = int(rng, 1, 48);
      const body = randomBytes(rng, n);
      if (rng() < 0.5) {
        // steer half the cases past "not a map": a map header and a t key, then noise
        body[0] = int(rng, 0xa1, 0xa5);
        Buffer.from([0x61, 0x74, int(rng, 0, 9)]).copy(body, 1);
      }
      return withHeader(body);
    });
    report(t, s, 'random bodies', r);
  }
});

t.test('codec - mutated valid frames only ever raise catalogued FerryErrors', async (t) => {
  for (const s of seeds) {
    const r = fuzz(mulberry32(s ^ 0x6d757461), 20_000, (rng) => {
      const body = Buffer.from(pick(rng, encoded).subarray(frameHeaderBytes));
      let out: Buffer = body;
      for (let m = int(rng, 1, 4); m > 0; m--) {
        const at = int(rng, 0, Math.max(0, out.length - 1));
        switch (int(rng, 0, 3)) {
          case 0: out[at] = int(rng, 0, 255); break; // replace a byte
          case 1: out[at] = (out[at] ?? 0) ^ (1 << int(rng, 0, 7)); break; // flip a bit
          case 2: out = Buffer.concat([out.subarray(0, at), randomBytes(rng, int(rng, 1, 4)), out.subarray(at)]); break; // insert
          default: out = Buffer.concat([out.subarray(0, at), out.subarray(at + int(rng, 1, 4))]); // delete
        }
      }
      if (out.length === 0) out = Buffer.from([0]);
      // mostly a length that matches the body; sometimes one that does not (then the decoder waits or misreads the next)
      const length = rng() < 0.9 ? out.length : int(rng, 1, out.length + 8);
      return Buffer.concat([withHeader(out, length), rng() < 0.5 ? encodeFrame({ t: FrameType.PING, id: 1 }) : Buffer.alloc(0)]);
    });
    report(t, s, 'mutated frames', r);
  }
});

// Regression cases for defects once found in protocol/.

t.test('codec - a t that cannot be turned into text is refused as FRAME_UNKNOWN_TYPE', async (t) => {
  refuses(t, () => new FrameDecoder().push(frameOf({ t: { toString: 0 } })), ErrorCode.FRAME_UNKNOWN_TYPE, 't = {toString: 0}');
  refuses(t, () => new FrameDecoder().push(frameOf({ t: { valueOf: 1, toString: 'x' } })), ErrorCode.FRAME_UNKNOWN_TYPE, 't = {valueOf: 1, toString: "x"}');
});

t.test('codec - a packet ts written as a 64-bit CBOR integer is accepted', async (t) => {
  // Any standard CBOR encoder writes a millisecond timestamp (> 2^32) this way; cbor-x itself writes a float64.
  const packetMap = cborMap([['seq', cbor.encode(1)], ['target', cbor.encode('a')], ['ts', cborUint64(1732000000000n)], ['data', cbor.encode(1)]]);
  const body = Buffer.concat([Buffer.from([0xa2]), cbor.encode('t'), cbor.encode(FrameType.DATA), cbor.encode('packets'), Buffer.from([0x81]), packetMap]);
  let got: unknown;
  try {
    got = new FrameDecoder().push(withHeader(body));
  } catch (err) {
    got = String(err);
  }
  t.strictSame(got, [{ t: FrameType.DATA, packets: [{ seq: 1, target: 'a', ts: 1732000000000, data: 1 }] }], 'ts 1732000000000 as 0x1b uint64');
});

// Such data makes dataBytes/checkData (JSON.stringify) throw a TypeError wherever the gateway sizes it.
t.test('codec - packet data that is not a PacketData value is refused', async (t) => {
  const packetWith = (dataBytes: Buffer) => cborMap([['seq', cbor.encode(1)], ['target', cbor.encode('a')], ['ts', cbor.encode(1)], ['data', dataBytes]]);
  const dataFrame = (p: Buffer) => withHeader(Buffer.concat([Buffer.from([0xa2]), cbor.encode('t'), cbor.encode(FrameType.DATA), cbor.encode('packets'), Buffer.from([0x81]), p]));
  refuses(t, () => new FrameDecoder().push(dataFrame(packetWith(cborUint64(2n ** 64n - 1n)))), ErrorCode.FRAME_MALFORMED, 'data = 2^64-1 (a bigint)');
  refuses(t, () => new FrameDecoder().push(dataFrame(packetWith(Buffer.from([0xc1, 0x00])))), ErrorCode.FRAME_MALFORMED, 'data = tag 1 (a Date)');
  refuses(t, () => new FrameDecoder().push(dataFrame(packetWith(Buffer.from([0xf7])))), ErrorCode.FRAME_MALFORMED, 'data = undefined');
  // tag 28 marks the outer map shareable, tag 29 (0) refers back to it: data contains the whole frame
  const cyclic = Buffer.concat([Buffer.from([0xd8, 0x1c, 0xa2]), cbor.encode('t'), cbor.encode(FrameType.DATA), cbor.encode('packets'), Buffer.from([0x81]), packetWith(Buffer.from([0xd8, 0x1d, 0x00]))]);
  refuses(t, () => new FrameDecoder().push(withHeader(cyclic)), ErrorCode.FRAME_MALFORMED, 'data = a reference to the enclosing frame (cyclic)');
});

t.test('codec - a large frame fed in tiny pieces decodes in linear time', async (t) => {
  // Once quadratic: each push merged every held chunk to read a header split across chunks.
  const frame = encodeFrame({ t: FrameType.DATA, packets: [{ seq: 1, target: 'a', ts: 1, data: new Uint8Array(512 * 1024) }] });
  const d = new FrameDecoder();
  const got = d.push(frame.subarray(0, 1));
  for (let off = 1; off < frame.length; off += 16) got.push(...d.push(frame.subarray(off, Math.min(frame.length, off + 16))));
  t.equal(got.length, 1, 'one frame out of ~32k pushes');
  t.equal(((got[0] as { packets: { data: Uint8Array }[] }).packets[0]!.data).length, 512 * 1024, 'with all its bytes');
});

// Issue 9, case 7: the decoder kept every push as its own Buffer, so a large frame trickled a byte
// per read cost hundreds of bytes of memory per byte received, before any authentication.
t.test('codec - a frame trickled one byte per push keeps one buffer of at most twice the bytes held', async (t) => {
  const frame = encodeFrame({ t: FrameType.DATA, packets: [{ seq: 1, target: 'a', ts: 1, data: new Uint8Array(256 * 1024).fill(9) }] });
  const d = new FrameDecoder();
  const bound = (): number => frameHeaderBytes + Math.max(256, 2 * d.bufferedBytes);
  let over = 0;
  let worst = '';
  const got: Frame[] = [];
  for (let i = 0; i < frame.length; i++) {
    got.push(...d.push(frame.subarray(i, i + 1)));
    // (on the old decoder retainedBytes does not exist: every comparison fails)
    if (!(d.retainedBytes <= bound())) {
      over++;
      worst ||= `after ${i + 1} bytes: retains ${d.retainedBytes}, holds ${d.bufferedBytes}`;
    }
  }
  t.equal(over, 0, `retainedBytes <= 4 + max(256, 2 x bufferedBytes) after every push${worst ? ` (first over: ${worst})` : ''}`);
  t.equal(got.length, 1, 'the frame comes out whole');
  t.same((got[0] as { packets: { data: Uint8Array }[] }).packets[0]!.data, new Uint8Array(256 * 1024).fill(9));
  t.equal(d.retainedBytes, frameHeaderBytes, 'between frames only the 4 header bytes are kept');

  // A declared 1 MiB frame, trickled for its first 64 KiB (the attack: nothing ever completes).
  const d2 = new FrameDecoder();
  d2.push(header(frameBytesMaxDefault));
  for (let i = 0; i < 64 * 1024; i++) d2.push(Buffer.of(i & 0xff));
  t.equal(d2.bufferedBytes, frameHeaderBytes + 64 * 1024);
  t.ok(d2.retainedBytes <= frameHeaderBytes + 2 * 64 * 1024, `64 KiB trickled into a 1 MiB frame retains ${d2.retainedBytes} bytes, not 1 MiB and not a Buffer per byte`);
});

t.test('codec - byte strings of a frame decoded from the partial-frame buffer are not overwritten by the next frame', async (t) => {
  const a = encodeFrame({ t: FrameType.DATA, packets: [{ seq: 1, target: 'a', ts: 1, data: new Uint8Array(1000).fill(1) }] });
  const b = encodeFrame({ t: FrameType.DATA, packets: [{ seq: 2, target: 'a', ts: 1, data: new Uint8Array(1000).fill(2) }] });
  const d = new FrameDecoder();
  const got: Frame[] = [];
  for (let i = 0; i < a.length + b.length; i += 7) got.push(...d.push(Buffer.concat([a, b]).subarray(i, i + 7)));
  const datas = got.map((f) => (f as { packets: { data: Uint8Array }[] }).packets[0]!.data);
  t.same(datas, [new Uint8Array(1000).fill(1), new Uint8Array(1000).fill(2)]);
});

t.test('codec - firstFrameBytesMax holds the first frame only; later frames get frameBytesMax', async (t) => {
  const first = new FrameDecoder({ frameBytesMax: 10_000, firstFrameBytesMax: 100 });
  const err = refuses(t, () => first.push(header(101)), ErrorCode.FRAME_TOO_LARGE, 'a first frame one byte over firstFrameBytesMax, at its header');
  t.match(err?.message, /101 bytes exceeds the maximum of 100 for a first frame/);

  const d = new FrameDecoder({ frameBytesMax: 10_000, firstFrameBytesMax: 100 });
  const small = encodeFrame({ t: FrameType.PING, id: 1 });
  const big = encodeFrame({ t: FrameType.BYE, code: 'X', reason: 'r'.repeat(1000) });
  t.equal(d.push(small).length, 1, 'a small first frame passes');
  t.equal(d.push(big).length, 1, 'then a frame over firstFrameBytesMax but within frameBytesMax passes');
});

t.test('codec - the largest HELLO the schema accepts fits helloFrameBytesMax', async (t) => {
  // 255 characters of agent ID and 1,024 of token, each as many UTF-8 bytes as a character can take in a JS string.
  const hello: Frame = { t: FrameType.HELLO, version: Number.MAX_SAFE_INTEGER, agent: '\u{ffff}'.repeat(255), token: '\u{ffff}'.repeat(1024), ackedSeq: seqMax };
  const bytes = encodeFrame(hello);
  t.ok(bytes.length - frameHeaderBytes <= helloFrameBytesMax, `${bytes.length - frameHeaderBytes} body bytes <= ${helloFrameBytesMax}`);
  t.equal(new FrameDecoder({ firstFrameBytesMax: helloFrameBytesMax }).push(bytes).length, 1);
});

// Issue 9, case 10: packet rules are the session's (a NACK for that packet), not the frame's.
t.test('codec - a packet over a packet rule (target, depth up to frameDataDepthMax) still decodes', async (t) => {
  for (const [what, p] of [
    ['an empty target', { target: '' }],
    ['a target with a newline', { target: 'a\nb' }],
    ['a target of 256 bytes', { target: 'é'.repeat(128) }],
    ['data 40 levels deep', { data: nested(40) }],
    [`data ${frameDataDepthMax} levels deep`, { data: nested(frameDataDepthMax) }],
  ] as const) {
    const got = new FrameDecoder().push(frameOf(data(p)));
    t.strictSame(plain(got), plain([{ t: FrameType.DATA, packets: [{ ...okPacket, ...p }] }]), what);
  }
});

t.test('codec - a DATA frame body is at most dataFrameOverheadBytes plus each packet\'s packetWireBytes', async (t) => {
  for (const n of [1, 23, 24, 255, 256, 3000]) {
    const packets = Array.from({ length: n }, (_, i) => ({ seq: i + 1, target: `t/${i}`, ts: 1.5 * i, data: i % 2 ? { v: i / 3, s: 'x'.repeat(i % 50) } : new Uint8Array(i % 70) }));
    const body = encodeFrame({ t: FrameType.DATA, packets }).length - frameHeaderBytes;
    const sum = packets.reduce((a, p) => a + packetWireBytes(p), 0);
    t.ok(body <= dataFrameOverheadBytes + sum && body >= sum, `${n} packets: body ${body}, packets ${sum}`);
  }
});
