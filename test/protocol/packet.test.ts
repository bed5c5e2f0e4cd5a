import t from 'tap';
import { ErrorCode } from '../../protocol/errors.js';
import { bytesAsBase64, checkData, checkTarget, dataBytes, dataBytesMaxDefault, dataToJson, targetBytesMax, type PacketData } from '../../protocol/packet.js';
import { refuses } from '../helpers/refuses.js';

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

t.test('packet - checkTarget returns a valid target unchanged', async (t) => {
  for (const target of ['a', 'mqtt/temperature', 'files/raw.bin', 'with space', 'tilde~', 'capteur/température', '北京/🌡️', 'x'.repeat(targetBytesMax)]) {
    t.equal(checkTarget(target), target, JSON.stringify(target.length > 40 ? `${target.slice(0, 40)}…` : target));
  }
});

t.test('packet - checkTarget refuses an empty or non-string target', async (t) => {
  t.equal(targetBytesMax, 255);
  refuses(t, () => checkTarget(''), ErrorCode.TARGET_INVALID, 'empty string');
  for (const v of [undefined, null, 0, 1, true, ['a'], { target: 'a' }, new Uint8Array([0x61])]) {
    refuses(t, () => checkTarget(v), ErrorCode.TARGET_INVALID, `${Object.prototype.toString.call(v)} ${String(v)}`);
  }
});

t.test('packet - checkTarget counts UTF-8 bytes, not characters', async (t) => {
  // [target, UTF-8 bytes]: each pair straddles the 255-byte limit with a different character width
  const cases: [string, string][] = [
    ['a'.repeat(255), 'a'.repeat(256)], // 1-byte characters
    ['é'.repeat(127) + 'a', 'é'.repeat(128)], // 2 bytes: 128 characters are already too many
    ['€'.repeat(85), '€'.repeat(85) + 'a'], // 3 bytes
    ['🌡'.repeat(63) + 'abc', '🌡'.repeat(64)], // 4 bytes, 2 UTF-16 units each
  ];
  for (const [fits, over] of cases) {
    t.equal(utf8Bytes(fits), 255, 'fixture: exactly 255 bytes');
    t.equal(utf8Bytes(over), 256, 'fixture: exactly 256 bytes');
    t.equal(checkTarget(fits), fits, `255 bytes in ${fits.length} UTF-16 units is accepted`);
    refuses(t, () => checkTarget(over), ErrorCode.TARGET_INVALID, `256 bytes in only ${over.length} UTF-16 units`);
  }
  // a string shorter than 255 characters can still be too long
  const short = '北'.repeat(100);
  t.ok(short.length < targetBytesMax && utf8Bytes(short) > targetBytesMax, 'fixture: 100 characters, 300 bytes');
  refuses(t, () => checkTarget(short), ErrorCode.TARGET_INVALID, '100 three-byte characters');
});

t.test('packet - checkTarget refuses control characters', async (t) => {
  const controls = ['\u0000', '\u0001', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f'];
  for (const c of controls) {
    const code = c.charCodeAt(0).toString(16).padStart(4, '0');
    refuses(t, () => checkTarget(c), ErrorCode.TARGET_INVALID, `U+${code} alone`);
    refuses(t, () => checkTarget(`sensor${c}temp`), ErrorCode.TARGET_INVALID, `U+${code} in the middle`);
    refuses(t, () => checkTarget(`sensor/temp${c}`), ErrorCode.TARGET_INVALID, `U+${code} at the end`);
  }
  // the printable neighbours of the refused ranges are fine
  t.equal(checkTarget(' '), ' ', 'U+0020 space');
  t.equal(checkTarget('~'), '~', 'U+007E tilde');
  t.equal(checkTarget('\u00a0'), '\u00a0', 'U+00A0 no-break space');
});

t.test('packet - dataBytes counts bytes as they are', async (t) => {
  t.equal(dataBytes(new Uint8Array(0)), 0, 'empty');
  t.equal(dataBytes(new Uint8Array([1, 2, 3])), 3);
  t.equal(dataBytes(Buffer.from('héllo')), 6, 'a Buffer counts its bytes');
  const backing = new Uint8Array(100);
  t.equal(dataBytes(backing.subarray(10, 17)), 7, 'a view counts its own length, not its backing buffer');
  t.equal(dataBytes(new Uint8Array(dataBytesMaxDefault)), dataBytesMaxDefault);
});

t.test('packet - dataBytes counts a value as its UTF-8 JSON text', async (t) => {
  const cases: [PacketData, number][] = [
    [null, 4], // null
    [true, 4], // true
    [false, 5],
    [0, 1],
    [-12.5, 5],
    [1e21, 5], // 1e+21
    ['', 2], // ""
    ['abc', 5],
    ['é', 4], // "é": 2 quotes + 2 bytes
    ['北', 5],
    ['🌡', 6],
    ['"', 4], // "\""
    ['\n', 4], // "\n"
    ['\u0001', 8], // "\u0001"
    [[], 2],
    [[1, 'a', null], 12], // [1,"a",null]
    [{}, 2],
    [{ a: 1 }, 7], // {"a":1}
    [{ celsius: 21.5, tags: ['x'] }, 29], // {"celsius":21.5,"tags":["x"]}
    [{ nested: { ü: [true] } }, 24], // {"nested":{"ü":[true]}}
  ];
  for (const [value, bytes] of cases) {
    const text = JSON.stringify(value);
    t.equal(utf8Bytes(text), bytes, `fixture: ${text} is ${bytes} bytes`);
    t.equal(dataBytes(value), bytes, `${text}`);
  }
});

t.test('packet - checkData passes data up to the limit and refuses one byte more', async (t) => {
  const bytes = new Uint8Array(10);
  t.equal(checkData(bytes, 10), bytes, 'bytes at the limit come back as the same object');
  refuses(t, () => checkData(bytes, 9), ErrorCode.DATA_TOO_LARGE, 'bytes one over the limit');
  const empty = new Uint8Array(0);
  t.equal(checkData(empty, 0), empty, 'empty bytes fit a limit of 0');

  const value = { text: 'é'.repeat(10) }; // {"text":"éééééééééé"} = 11 + 20 = 31 bytes
  t.equal(dataBytes(value), 31, 'fixture');
  t.equal(checkData(value, 31), value, 'a value at the limit comes back as the same object');
  refuses(t, () => checkData(value, 30), ErrorCode.DATA_TOO_LARGE, 'a value one over the limit (counted in bytes, not characters)');
  refuses(t, () => checkData('x', 0), ErrorCode.DATA_TOO_LARGE, 'any value over a limit of 0');

  t.equal(dataBytesMaxDefault, 64 * 1024);
  const atDefault = new Uint8Array(dataBytesMaxDefault);
  t.equal(checkData(atDefault, dataBytesMaxDefault), atDefault, '64 KiB of bytes fit the default');
  refuses(t, () => checkData(new Uint8Array(dataBytesMaxDefault + 1), dataBytesMaxDefault), ErrorCode.DATA_TOO_LARGE, '64 KiB + 1 bytes');
  const longString = 'a'.repeat(dataBytesMaxDefault - 2); // JSON adds two quotes
  t.equal(checkData(longString, dataBytesMaxDefault), longString, 'a string whose JSON text is exactly 64 KiB');
  refuses(t, () => checkData(longString + 'a', dataBytesMaxDefault), ErrorCode.DATA_TOO_LARGE, 'one character more');
});

t.test('packet - bytes at any depth become { base64 } in JSON, also a Buffer, and values stay as they are', async (t) => {
  const data = { a: new Uint8Array([1, 2]), b: [Buffer.from('hi'), 3], c: 'x' } as unknown as PacketData;
  const expected = { a: { base64: 'AQI=' }, b: [{ base64: 'aGk=' }, 3], c: 'x' };
  t.same(dataToJson(data), expected, 'dataToJson');
  t.same(JSON.parse(JSON.stringify({ data }, bytesAsBase64)).data, expected, 'the replacer');
  t.same(JSON.parse(JSON.stringify(new Uint8Array([255]), bytesAsBase64)), { base64: '/w==' }, 'top-level bytes');
});
