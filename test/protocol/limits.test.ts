/** protocol/limits.ts: the one packet rule the agent (at submission) and the gateway (per decoded packet) both apply. */
import t from 'tap';
import { ErrorCode } from '../../protocol/errors.js';
import { checkPacket, dataDepthMaxDefault, dataShape, packetLimitsDefault, type PacketLimits } from '../../protocol/limits.js';
import type { PacketData } from '../../protocol/packet.js';
import { refuses } from '../helpers/refuses.js';

/** `levels` arrays, one inside the other, around `leaf` (nothing: the innermost array is empty). */
function nested(levels: number, leaf?: PacketData): PacketData {
  let v: PacketData = leaf === undefined ? [] : [leaf];
  for (let i = 1; i < levels; i++) v = [v];
  return v;
}
const limits: PacketLimits = { dataBytesMax: 100, dataDepthMax: 4 };

t.test('limits - dataShape counts the arrays and maps on the longest path', async (t) => {
  t.equal(dataShape(1, 99).depth, 0, 'a scalar is 0 levels');
  t.equal(dataShape(new Uint8Array(3), 99).depth, 0, 'bytes are 0 levels');
  t.equal(dataShape([], 99).depth, 1, '[] is 1');
  t.equal(dataShape({ a: 1 }, 99).depth, 1, '{"a": 1} is 1');
  t.equal(dataShape([[1]], 99).depth, 2, '[[1]] is 2');
  t.equal(dataShape({ a: [1, { b: [] }], c: 2 }, 99).depth, 4, 'the deepest branch counts');
  t.equal(dataShape(nested(40), 99).depth, 40);
  t.equal(dataShape(nested(10_000), 32).depth, 33, 'stops one past depthStop, however deep the data is');
});

t.test('limits - dataShape names the first value that is neither bytes nor JSON', async (t) => {
  t.equal(dataShape({ a: [1, 'x', null, true, new Uint8Array(1)] }, 99).invalid, undefined);
  t.equal(dataShape([1, NaN], 99).invalid, 'a non-finite number');
  t.equal(dataShape({ a: 1n }, 99).invalid, 'a bigint');
  t.equal(dataShape([new Date(0)], 99).invalid, 'a Date');
  t.equal(dataShape([undefined], 99).invalid, 'a undefined');
  t.equal(dataShape(new Map(), 99).invalid, 'a Map');
});

t.test('limits - checkPacket: nesting up to dataDepthMax passes, one level more is DATA_TOO_DEEP', async (t) => {
  t.doesNotThrow(() => checkPacket({ target: 'a', data: nested(4) }, limits), '4 levels, empty innermost');
  t.doesNotThrow(() => checkPacket({ target: 'a', data: nested(4, 1) }, limits), '4 levels around a scalar');
  const err = refuses(t, () => checkPacket({ target: 'a', data: nested(5) }, limits), ErrorCode.DATA_TOO_DEEP, '5 levels');
  t.match(err?.message, /maximum of 4 levels/);
  refuses(t, () => checkPacket({ target: 'a', data: { x: nested(4) } }, limits), ErrorCode.DATA_TOO_DEEP, 'a map counts as a level');
  // The reproduction: 40 levels against the defaults the agent and the gateway share.
  t.equal(dataDepthMaxDefault, 32);
  refuses(t, () => checkPacket({ target: 'a/b', data: JSON.parse('['.repeat(40) + ']'.repeat(40)) }, packetLimitsDefault), ErrorCode.DATA_TOO_DEEP, 'ferry send of 40 nested arrays');
  t.doesNotThrow(() => checkPacket({ target: 'a/b', data: JSON.parse('['.repeat(32) + ']'.repeat(32)) }, packetLimitsDefault), '32 nested arrays pass');
  refuses(t, () => checkPacket({ target: 'a', data: nested(100_000) }, limits), ErrorCode.DATA_TOO_DEEP, 'very deep data is refused without walking all of it');
});

t.test('limits - checkPacket: data over dataBytesMax is DATA_TOO_LARGE; at it passes', async (t) => {
  t.doesNotThrow(() => checkPacket({ target: 'a', data: new Uint8Array(100) }, limits));
  refuses(t, () => checkPacket({ target: 'a', data: new Uint8Array(101) }, limits), ErrorCode.DATA_TOO_LARGE, 'bytes');
  t.doesNotThrow(() => checkPacket({ target: 'a', data: 'x'.repeat(98) }, limits), 'a string of 100 bytes of JSON text');
  refuses(t, () => checkPacket({ target: 'a', data: 'x'.repeat(99) }, limits), ErrorCode.DATA_TOO_LARGE, 'JSON text of 101 bytes');
});

t.test('limits - checkPacket: a bad target is TARGET_INVALID, a __proto__ key or a non-JSON value DATA_INVALID', async (t) => {
  refuses(t, () => checkPacket({ target: '', data: 1 }, limits), ErrorCode.TARGET_INVALID, 'empty');
  refuses(t, () => checkPacket({ target: 'é'.repeat(128), data: 1 }, limits), ErrorCode.TARGET_INVALID, '256 UTF-8 bytes');
  refuses(t, () => checkPacket({ target: 'a\nb', data: 1 }, limits), ErrorCode.TARGET_INVALID, 'a control character');
  refuses(t, () => checkPacket({ target: 7, data: 1 }, limits), ErrorCode.TARGET_INVALID, 'not a string');
  refuses(t, () => checkPacket({ target: 'a', data: JSON.parse('{"a": {"__proto__": 1}}') }, limits), ErrorCode.DATA_INVALID, '__proto__');
  refuses(t, () => checkPacket({ target: 'a', data: [Infinity] }, limits), ErrorCode.DATA_INVALID, 'Infinity');
  refuses(t, () => checkPacket({ target: 'a', data: undefined }, limits), ErrorCode.DATA_INVALID, 'undefined');
});
