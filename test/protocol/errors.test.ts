import t from 'tap';
import { readFileSync } from 'node:fs';
import { ErrorCode, FerryError, isFerryError } from '../../protocol/errors.js';

const docsPath = new URL('../../docs/errors.md', import.meta.url);
const codes = Object.values(ErrorCode);

/** The rows of the code table in docs/errors.md: lines `| `CODE` | where | meaning | what to do |`. */
function documentedRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of readFileSync(docsPath, 'utf8').split('\n')) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    const code = m[1]!;
    if (rows.has(code)) throw new Error(`docs/errors.md documents ${code} twice`);
    rows.set(code, m[2]!.split('|').map((cell) => cell.trim()));
  }
  return rows;
}

t.test('errors - every code equals its key', async (t) => {
  for (const [key, value] of Object.entries(ErrorCode)) t.equal(value, key, key);
});

t.test('errors - codes are unique', async (t) => {
  t.equal(new Set(codes).size, codes.length, `${codes.length} distinct codes`);
  t.ok(codes.length > 0);
});

t.test('errors - codes are SCREAMING_SNAKE_CASE and fit a NACK/BYE code field', async (t) => {
  for (const code of codes) {
    t.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/, code);
    t.ok(code.length <= 64, `${code} fits the 64-character code field of NACK and BYE`);
  }
});

t.test('errors - every code is documented in docs/errors.md', async (t) => {
  const rows = documentedRows();
  for (const code of codes) {
    const row = rows.get(code);
    if (!row) {
      t.fail(`${code} has no row in docs/errors.md`);
      continue;
    }
    t.equal(row.length, 3, `${code}: the row has where / meaning / what to do`);
    t.ok(row.every((cell) => cell.length > 0), `${code}: no empty cell`);
  }
});

t.test('errors - docs/errors.md documents no code that does not exist', async (t) => {
  const known = new Set<string>(codes);
  for (const code of documentedRows().keys()) t.ok(known.has(code), `${code} is in ErrorCode`);
});

t.test('errors - FerryError carries its code, message and cause', async (t) => {
  const cause = new Error('disk on fire');
  const err = new FerryError(ErrorCode.STORE_CORRUPT, 'record 7 is torn', { cause });
  t.ok(err instanceof Error);
  t.equal(err.name, 'FerryError');
  t.equal(err.code, ErrorCode.STORE_CORRUPT);
  t.equal(err.message, 'record 7 is torn');
  t.equal(err.cause, cause);
  t.ok(err.stack?.includes('record 7 is torn'));
  t.equal(new FerryError(ErrorCode.SHUTDOWN, 'x').cause, undefined, 'no cause unless given');
});

t.test('errors - isFerryError checks the class and optionally the code', async (t) => {
  const err = new FerryError(ErrorCode.PEER_TIMEOUT, 'silent for 30 s');
  t.ok(isFerryError(err));
  t.ok(isFerryError(err, ErrorCode.PEER_TIMEOUT));
  t.notOk(isFerryError(err, ErrorCode.SHUTDOWN));
  t.notOk(isFerryError(new Error('plain')));
  t.notOk(isFerryError({ name: 'FerryError', code: ErrorCode.PEER_TIMEOUT, message: 'look-alike' }), 'a look-alike object is not one');
  t.notOk(isFerryError(undefined));
});
