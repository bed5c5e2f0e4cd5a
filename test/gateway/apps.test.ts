import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { appMayReach, AppRegistry, appsFileName, appsLockName } from '../../gateway/apps.js';
import { hashToken } from '../../gateway/registry-file.js';
import { osLock } from '../../common/os-lock.js';
import { createLog, silentLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function open(t: Test, dir: string, opts: Parameters<typeof AppRegistry.open>[1] = {}): Promise<AppRegistry> {
  const r = await AppRegistry.open(dir, { log: silentLog, watchIntervalMs: 0, ...opts });
  t.teardown(() => r.close());
  return r;
}

const until = async (what: string, check: () => boolean, msMax = 5000): Promise<void> => {
  const end = Date.now() + msMax;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

t.test('apps - a missing file: no application, no token works', async (t) => {
  const r = await open(t, t.testdir());
  t.same(r.list(), []);
  t.equal(r.byToken('anything'), undefined);
  t.equal(r.byToken(''), undefined);
});

t.test('apps - add returns a 32-byte token; the file holds only its hash; byToken finds the app', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir, { now: () => 1_700_000_000_000 });
  const token = await r.add('dashboard');
  t.match(token, /^[A-Za-z0-9_-]{43}$/);
  const text = await readFile(join(dir, appsFileName), 'utf8');
  t.notOk(text.includes(token), 'the token itself is not on disk');
  t.ok(text.includes(hashToken(token)));
  t.same(r.byToken(token), { name: 'dashboard', tokenHash: hashToken(token), revoked: false, addedAt: 1_700_000_000_000 });
  t.equal(r.byToken(`${token.slice(0, -1)}x`), undefined, 'a token differing in one character finds nothing');
  const limited = await r.add('ops', ['pi-2', 'pi-1', 'pi-2']);
  const ops = r.byToken(limited)!;
  t.same(ops.agents, ['pi-1', 'pi-2'], 'agents stored sorted, once each');
  t.ok(appMayReach(ops, 'pi-1'));
  t.notOk(appMayReach(ops, 'pi-3'), 'an agent not named is out of reach');
  t.ok(appMayReach(r.byToken(token)!, 'anything'), 'no agents list: every agent');
  const again = await open(t, dir);
  t.equal(again.byToken(limited)?.name, 'ops', 'a second registry on the same file sees it');
});

t.test('apps - add refuses an active name, bad names and bad agent IDs without touching the file', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir);
  await t.rejects(r.add('bad name'), { code: ErrorCode.CONFIG_INVALID, message: /application name must be/ });
  await t.rejects(r.add('x', ['pi-1', 'a/b']), { code: ErrorCode.CONFIG_INVALID, message: /'a\/b' is not an agent ID/ });
  await t.rejects(r.add('x', []), { code: ErrorCode.CONFIG_INVALID, message: /at least one agent/ });
  await t.rejects(readFile(join(dir, appsFileName)), { code: 'ENOENT' }, 'nothing written');
  const token = await r.add('dashboard');
  await t.rejects(r.add('dashboard'), { code: ErrorCode.CONFIG_INVALID, message: /already added/ });
  t.equal(r.byToken(token)?.name, 'dashboard', 'the refused add left the token alone');
});

t.test('apps - revoke forgets the token; add makes a new one', async (t) => {
  let now = 1000;
  const r = await open(t, t.testdir(), { now: () => now });
  const token = await r.add('dashboard', ['pi-1']);
  now = 2000;
  t.equal(await r.revoke('dashboard'), 'revoked');
  t.equal(r.byToken(token), undefined);
  t.same(r.get('dashboard'), { name: 'dashboard', revoked: true, agents: ['pi-1'], addedAt: 1000, revokedAt: 2000 });
  t.equal(await r.revoke('dashboard'), 'already');
  await t.rejects(r.revoke('ghost'), { code: ErrorCode.APP_UNKNOWN, message: /ghost is not added/ });
  const fresh = await r.add('dashboard');
  t.equal(r.byToken(fresh)?.agents, undefined, 'added again, now for every agent');
  t.equal(r.byToken(token), undefined, 'the old token stays dead');
});

t.test('apps - a running registry sees an app added and revoked by another, without a restart', async (t) => {
  const dir = t.testdir();
  const lines: string[] = [];
  const gateway = await open(t, dir, { watchIntervalMs: 20, log: createLog({ write: (l) => lines.push(l) }) });
  const cli = await open(t, dir);
  const token = await cli.add('dashboard');
  await until('the gateway to see the new app', () => gateway.byToken(token) !== undefined);
  await cli.revoke('dashboard');
  await until('the revocation', () => gateway.byToken(token) === undefined);
  t.ok(lines.some((l) => /apps: registry reloaded/.test(l) && l.includes('dashboard')));
  t.notOk(lines.some((l) => l.includes(token)), 'the token is never logged');
});

t.test('apps - a damaged file: CONFIG_INVALID at open; a running registry keeps what it had', async (t) => {
  const dir = t.testdir();
  const path = join(dir, appsFileName);
  const running = await open(t, dir);
  const token = await running.add('dashboard');
  await writeFile(path, '{"version": 1, "apps": [');
  const err = await AppRegistry.open(dir, { watchIntervalMs: 0 }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof FerryError && err.code === ErrorCode.CONFIG_INVALID);
  t.match((err as Error).message, /apps\.json: not valid JSON.*ferry gateway add-app/);
  await running.reload();
  t.equal(running.byToken(token)?.name, 'dashboard', 'kept');
  await t.rejects(running.add('other'), { code: ErrorCode.CONFIG_INVALID }, 'no change overwrites a damaged file');
  for (const [text, what] of [
    ['{"version": 1, "apps": [{"name": "a", "revoked": false, "addedAt": 1, "agents": ["x y"]}]}', /apps\[0\]\.agents/],
    ['{"version": 1, "apps": [{"name": "a b", "revoked": false, "addedAt": 1}]}', /apps\[0\]\.name/],
    ['{"version": 1, "apps": [{"name": "a", "revoked": false, "addedAt": 1}, {"name": "a", "revoked": true, "addedAt": 1}]}', /listed twice/],
  ] as const) {
    await writeFile(path, text);
    await t.rejects(AppRegistry.open(dir, { watchIntervalMs: 0 }), { code: ErrorCode.CONFIG_INVALID, message: what });
  }
});

t.test('apps - a change waits for the lock another holds; a killed writer\'s temporary file is removed', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir, { lockWaitMsMax: 200 });
  await r.add('first');
  const held = await osLock(join(dir, appsLockName));
  await t.rejects(r.add('second'), { code: ErrorCode.DATA_DIR_LOCKED, message: /application registry .* is being changed by another command/ });
  await held.release();
  await writeFile(join(dir, `${appsFileName}.4242.abcdef.tmp`), 'half a write');
  await r.add('second');
  t.same((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'the leftover is gone');
  t.same(r.list().map((a) => a.name), ['first', 'second']);
});
