import t from 'tap';
import { Encoder } from 'cbor-x';
import { BodyKind, decodeBody, encodeBody, type Body } from '../../protocol/longpoll/body.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { seqMax } from '../../protocol/frames.js';
import { ackRangesMax, bodyBytesFor, bodyLimitsDefault, channelLimitsDefault, type BodyLimits } from '../../protocol/longpoll/limits.js';
import { refuses } from '../helpers/refuses.js';
import { prng, testSeed } from '../helpers/seed.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
const limits: BodyLimits = { bodyBytesMax: 4096, bundleMessagesMax: 4, messageBytesMax: 100 };

const response: Body = {
  kind: BodyKind.RESPONSE, session: 'Ab-9_x', bundle: 7, answers: 12, seen: 11, ack: 3, ranges: [[5, 6], [9, 9]],
  messages: [{ n: 4, bytes: Uint8Array.of(1, 2) }, { n: 8, bytes: Uint8Array.of(3) }], end: { code: 'SHUTDOWN', reason: 'stopping' },
};
const request: Body = { kind: BodyKind.REQUEST, bundle: 1, seen: 0, ack: 0, ranges: [], messages: [{ n: 1, bytes: Uint8Array.of(9) }] };

/** The wire map of a valid response, to break one field at a time. */
function wire(): Record<string, unknown> {
  return { v: 1, k: 2, s: 'Ab-9_x', b: 7, re: 12, seen: 11, ack: 3, ranges: [[5, 6], [9, 9]], m: [[4, Uint8Array.of(1, 2)], [8, Uint8Array.of(3)]] };
}

t.test('longpoll body - a request and a response survive encoding, every field kept', async (t) => {
  const r = decodeBody(encodeBody(response), BodyKind.RESPONSE, limits);
  t.same({ ...r, messages: r.messages.map((m) => ({ n: m.n, bytes: [...m.bytes] })) }, { ...response, messages: [{ n: 4, bytes: [1, 2] }, { n: 8, bytes: [3] }] });
  const q = decodeBody(encodeBody(request), BodyKind.REQUEST, limits);
  t.equal(q.session, undefined, 'an opening request has no session');
  t.equal(q.bundle, 1);
  t.same([...q.messages[0]!.bytes], [9]);
});

t.test('longpoll body - the default limits admit a full bundle of the default channel', async (t) => {
  const msg = new Uint8Array(channelLimitsDefault.messageBytesMax).fill(7);
  const n = Math.floor(channelLimitsDefault.bundleBytesMax / msg.length);
  const body: Body = { ...response, ranges: Array.from({ length: ackRangesMax }, (_, i) => [10 + 2 * i, 10 + 2 * i] as [number, number]), ack: 8, messages: Array.from({ length: n }, (_, i) => ({ n: 1000 + i, bytes: msg })) };
  const bytes = encodeBody(body);
  t.ok(bytes.length <= bodyBytesFor(channelLimitsDefault), `${bytes.length} bytes fit ${bodyLimitsDefault.bodyBytesMax}`);
  t.equal(decodeBody(bytes, BodyKind.RESPONSE, bodyLimitsDefault).messages.length, n);
});

t.test('longpoll body - every field wrong is refused with its code', async (t) => {
  const cases: [string, (w: Record<string, unknown>) => void, ErrorCode][] = [
    ['version 2', (w) => { w.v = 2; }, ErrorCode.LONGPOLL_VERSION],
    ['no version', (w) => { delete w.v; }, ErrorCode.LONGPOLL_VERSION],
    ['a request where a response is due', (w) => { w.k = 1; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['kind 3', (w) => { w.k = 3; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['no session in a response', (w) => { delete w.s; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['empty session', (w) => { w.s = ''; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['session with a slash', (w) => { w.s = 'a/b'; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['session of 65 characters', (w) => { w.s = 'a'.repeat(65); }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['session a number', (w) => { w.s = 5; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['bundle 0', (w) => { w.b = 0; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['bundle -1', (w) => { w.b = -1; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['bundle 1.5', (w) => { w.b = 1.5; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['bundle above seqMax', (w) => { w.b = seqMax + 1; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['bundle a huge bigint', (w) => { w.b = 2n ** 60n; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['bundle a string', (w) => { w.b = '7'; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['no re in a response', (w) => { delete w.re; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['re 0', (w) => { w.re = 0; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['no seen', (w) => { delete w.seen; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['seen negative', (w) => { w.seen = -1; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['no ack', (w) => { delete w.ack; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['ack null', (w) => { w.ack = null; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['ranges not an array', (w) => { w.ranges = 5; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['ranges empty', (w) => { w.ranges = []; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a range touching ack', (w) => { w.ranges = [[4, 6]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a range at or below ack', (w) => { w.ranges = [[2, 6]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a range backwards', (w) => { w.ranges = [[6, 5]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['ranges touching', (w) => { w.ranges = [[5, 6], [7, 8]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['ranges descending', (w) => { w.ranges = [[9, 9], [5, 6]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a range of three', (w) => { w.ranges = [[5, 6, 7]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['too many ranges', (w) => { w.ranges = Array.from({ length: ackRangesMax + 1 }, (_, i) => [5 + 2 * i, 5 + 2 * i]); }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['no m', (w) => { delete w.m; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['m a map', (w) => { w.m = {}; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a message not a pair', (w) => { w.m = [[1]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a message number 0', (w) => { w.m = [[0, Uint8Array.of(1)]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['message numbers repeated', (w) => { w.m = [[4, Uint8Array.of(1)], [4, Uint8Array.of(1)]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['message numbers descending', (w) => { w.m = [[5, Uint8Array.of(1)], [4, Uint8Array.of(1)]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a message that is text', (w) => { w.m = [[4, 'hello']]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['an empty message', (w) => { w.m = [[4, new Uint8Array(0)]]; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['a message over messageBytesMax', (w) => { w.m = [[4, new Uint8Array(101)]]; }, ErrorCode.LONGPOLL_BODY_TOO_LARGE],
    ['more messages than bundleMessagesMax', (w) => { w.m = [1, 2, 3, 4, 5].map((n) => [n, Uint8Array.of(1)]); }, ErrorCode.LONGPOLL_BODY_TOO_LARGE],
    ['end not a map', (w) => { w.end = 'bye'; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['end code lower case', (w) => { w.end = { code: 'bye', reason: '' }; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['end code of 65 characters', (w) => { w.end = { code: 'A'.repeat(65), reason: '' }; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['end reason of 257 characters', (w) => { w.end = { code: 'SHUTDOWN', reason: 'x'.repeat(257) }; }, ErrorCode.LONGPOLL_BODY_INVALID],
    ['end reason missing', (w) => { w.end = { code: 'SHUTDOWN' }; }, ErrorCode.LONGPOLL_BODY_INVALID],
  ];
  t.ok(decodeBody(cbor.encode(wire()), BodyKind.RESPONSE, limits), 'the unbroken map decodes');
  for (const [what, breakIt, code] of cases) {
    const w = wire();
    breakIt(w);
    refuses(t, () => decodeBody(cbor.encode(w), BodyKind.RESPONSE, limits), code, what);
  }
  const q = { v: 1, k: 1, b: 1, seen: 0, ack: 0, m: [], re: 3 };
  refuses(t, () => decodeBody(cbor.encode(q), BodyKind.REQUEST, limits), ErrorCode.LONGPOLL_BODY_INVALID, 'a request with re');
  for (const v of [[], 'x', 7, null, Uint8Array.of(1)]) refuses(t, () => decodeBody(cbor.encode(v), BodyKind.RESPONSE, limits), ErrorCode.LONGPOLL_BODY_INVALID, `a body that is ${JSON.stringify(v)}`);
});

t.test('longpoll body - oversize is refused before decoding; empty, truncated and trailing bytes are refused', async (t) => {
  const big = Buffer.alloc(limits.bodyBytesMax + 1, 0xff); // not CBOR either: the length is checked first
  refuses(t, () => decodeBody(big, BodyKind.RESPONSE, limits), ErrorCode.LONGPOLL_BODY_TOO_LARGE, 'a body one byte over bodyBytesMax');
  refuses(t, () => decodeBody(new Uint8Array(0), BodyKind.RESPONSE, limits), ErrorCode.LONGPOLL_BODY_INVALID, 'an empty body');
  const whole = encodeBody(response);
  for (let cut = 1; cut < whole.length; cut++) {
    let err: unknown;
    try { decodeBody(whole.subarray(0, cut), BodyKind.RESPONSE, limits); } catch (e) { err = e; }
    if (!(err instanceof FerryError) || err.code !== ErrorCode.LONGPOLL_BODY_INVALID) t.fail(`cut at ${cut} of ${whole.length}: ${String(err)}`);
  }
  t.pass(`every cut of the ${whole.length}-byte body is LONGPOLL_BODY_INVALID`);
  refuses(t, () => decodeBody(Buffer.concat([whole, Buffer.of(0)]), BodyKind.RESPONSE, limits), ErrorCode.LONGPOLL_BODY_INVALID, 'a body with a trailing byte');
});

t.test('longpoll body - random garbage and random byte changes only ever give a checked body or a FerryError', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const whole = encodeBody(response);
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    let b: Buffer;
    if (i % 2 === 0) b = Buffer.from(Array.from({ length: 1 + Math.floor(rng() * 80) }, () => Math.floor(rng() * 256)));
    else {
      b = Buffer.from(whole);
      for (let k = 0; k < 1 + Math.floor(rng() * 3); k++) b[Math.floor(rng() * b.length)] = Math.floor(rng() * 256);
    }
    try {
      const body = decodeBody(b, BodyKind.RESPONSE, limits);
      // Whatever decodes has passed every check: ascending messages within the limits.
      let last = 0;
      for (const m of body.messages) {
        if (m.n <= last || m.bytes.length > limits.messageBytesMax) t.fail(`seed ${seed}, case ${i}: an unchecked body decoded`);
        last = m.n;
      }
    } catch (err) {
      if (!(err instanceof FerryError)) t.fail(`seed ${seed}, case ${i}: ${String(err)} is not a FerryError`);
      refused++;
    }
  }
  t.ok(refused > 1500, `${refused} of 3000 refused with a FerryError, none crashed`);
});
