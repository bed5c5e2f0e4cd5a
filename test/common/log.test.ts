/**
 * common/log.ts: the Log interface over pino. JSON lines with `level` by name, `time`, `msg` and
 * fields; errors as { message, code }; children add fields; levels below the minimum dropped;
 * pretty lines through pino-pretty, which a JSON logger never loads.
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { createLog } from '../../common/log.js';

const prettyLoaded = (): boolean => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/pino-pretty/'));

t.test('log - JSON lines: level by name, time, msg, base and child fields, errors without stacks', async (t) => {
  const raw: string[] = [];
  const log = createLog({ write: (l) => raw.push(l), now: () => 0, base: { role: 'gateway' }, format: 'auto', isTty: false });
  log.debug('hidden');
  log.child({ route: 1 }).warn('failed', { err: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), n: 10n });
  t.equal(raw.length, 1, 'debug is below the default level');
  t.ok(raw[0]!.endsWith('\n'), 'one line each');
  t.same(JSON.parse(raw[0]!), { level: 'warn', time: '1970-01-01T00:00:00.000Z', role: 'gateway', route: 1, err: { message: 'refused', code: 'ECONNREFUSED' }, n: '10', msg: 'failed' });
  t.notOk(prettyLoaded(), 'pino-pretty was not loaded for JSON');
});

t.test('log - pretty: a readable line with the message, not JSON', async (t) => {
  const raw: string[] = [];
  createLog({ write: (l) => raw.push(l), format: 'pretty' }).info('gateway: listening', { tcp: '127.0.0.1:7800' });
  t.equal(raw.length, 1);
  t.throws(() => JSON.parse(raw[0]!), 'not JSON');
  t.match(raw[0], /INFO.*gateway: listening.*127\.0\.0\.1:7800/);
  t.ok(prettyLoaded(), 'loaded when used');
});

t.test('log - auto is pretty on a terminal, json is JSON even there', async (t) => {
  const raw: string[] = [];
  createLog({ write: (l) => raw.push(l), isTty: true }).info('a');
  createLog({ write: (l) => raw.push(l), isTty: true, format: 'json' }).info('b');
  t.throws(() => JSON.parse(raw[0]!));
  t.equal((JSON.parse(raw[1]!) as { msg: string }).msg, 'b');
});
