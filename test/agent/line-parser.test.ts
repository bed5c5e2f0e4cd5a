import t from 'tap';
import { lineBytesMax, parseLine } from '../../agent/sources/line-parser.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { prng, testSeed } from '../helpers/seed.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function rejects(t: Test, line: string, format: 'kv' | 'json'): void {
  t.throws(() => parseLine(line, format), { name: 'FerryError', code: ErrorCode.SERIAL_LINE_INVALID }, `${format} rejects ${JSON.stringify(line.slice(0, 40))}`);
}

t.test('line-parser - kv: pairs separated by spaces, commas or both', async (t) => {
  t.same(parseLine('t=21.5 h=40', 'kv'), { t: 21.5, h: 40 });
  t.same(parseLine('t=21.5,h=40', 'kv'), { t: 21.5, h: 40 });
  t.same(parseLine('t=-1.25, h=40\tp=1e3', 'kv'), { t: -1.25, h: 40, p: 1000 });
  t.same(parseLine('  t=0  \r\n', 'kv'), { t: 0 }, 'surrounding whitespace and CRLF are trimmed');
  t.same(parseLine('temp.c=3', 'kv'), { 'temp.c': 3 });
});

t.test('line-parser - kv: bad lines throw SERIAL_LINE_INVALID', async (t) => {
  for (const line of ['', '   ', 't', 't=', '=5', 't=abc', 't=1 h', 't=1 h=', 't=NaN', 't=Infinity', 't=1;h=2', `t=${'1'.repeat(lineBytesMax)}`]) {
    rejects(t, line, 'kv');
  }
});

t.test('line-parser - json: numeric fields of an object are kept, others dropped', async (t) => {
  t.same(parseLine('{"t":21.5,"h":40}', 'json'), { t: 21.5, h: 40 });
  t.same(parseLine(' {"t":1,"name":"x","ok":true,"n":null,"o":{"a":1},"l":[1]} ', 'json'), { t: 1 });
});

t.test('line-parser - json: bad lines throw SERIAL_LINE_INVALID', async (t) => {
  for (const line of ['', '{', 'not json', '[1,2]', '5', '"t"', 'null', '{}', '{"name":"x"}', '{"t":"21"}', `{"t":${'1'.repeat(lineBytesMax)}}`]) {
    rejects(t, line, 'json');
  }
});

t.test('line-parser - the error is a FerryError whose message says what was wrong', async (t) => {
  try {
    parseLine('t=abc', 'kv');
    t.fail('expected a throw');
  } catch (err) {
    t.ok(err instanceof FerryError);
    t.match((err as FerryError).message, /not a number: t=abc/);
  }
});

t.test('line-parser - a line of exactly lineBytesMax characters is accepted', async (t) => {
  const line = `t=${'0'.repeat(lineBytesMax - 3)}1`;
  t.equal(line.length, lineBytesMax);
  t.same(parseLine(line, 'kv'), { t: 1 });
});

t.test('line-parser - random readings survive formatting as kv and as json', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rand = prng(seed);
  const seps = [' ', ',', ', ', '\t', '  '];
  for (let i = 0; i < 300; i++) {
    const reading: Record<string, number> = {};
    const n = 1 + Math.floor(rand() * 6);
    for (let k = 0; k < n; k++) {
      const key = `k${Math.floor(rand() * 1000)}`;
      reading[key] = rand() < 0.3 ? Math.floor(rand() * 2000) - 1000 : (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 4);
    }
    const kv = Object.entries(reading).map(([k, v]) => `${k}=${v}`).reduce((acc, pair) => `${acc}${seps[Math.floor(rand() * seps.length)]}${pair}`);
    t.same(parseLine(kv, 'kv'), reading, kv);
    t.same(parseLine(JSON.stringify(reading), 'json'), reading);
  }
});
