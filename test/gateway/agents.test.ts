import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentRegistry, agentsFileName, agentsLockName, hashToken } from '../../gateway/agents.js';
import { osLock } from '../../common/os-lock.js';
import { createLog, silentLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function open(t: Test, dir: string, opts: Parameters<typeof AgentRegistry.open>[1] = {}): Promise<AgentRegistry> {
  const r = await AgentRegistry.open(dir, { log: silentLog, watchIntervalMs: 0, ...opts });
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

t.test('agents - a missing file is an empty registry', async (t) => {
  const r = await open(t, t.testdir());
  t.same(r.list(), []);
  t.equal(r.get('pi-1'), undefined);
  t.equal(r.verifyToken('pi-1', 'anything'), false);
});

t.test('agents - add returns a 32-byte token; the file holds only its sha256 hash', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir, { now: () => 1_700_000_000_000 });
  const token = await r.add('pi-1');
  t.match(token, /^[A-Za-z0-9_-]{43}$/, 'base64url of 32 bytes');
  t.equal(Buffer.from(token, 'base64url').length, 32);
  const text = await readFile(join(dir, agentsFileName), 'utf8');
  t.notOk(text.includes(token), 'the token itself is not on disk');
  t.ok(text.includes(hashToken(token)), 'its hash is');
  t.match(hashToken(token), /^sha256:[0-9a-f]{64}$/);
  t.same(r.get('pi-1'), { id: 'pi-1', tokenHash: hashToken(token), revoked: false, addedAt: 1_700_000_000_000 });
  t.ok(r.verifyToken('pi-1', token));
  t.notOk(r.verifyToken('pi-1', `${token.slice(0, -1)}x`), 'a token differing in one character fails');
  t.notOk(r.verifyToken('pi-1', ''), 'an empty token fails');
  t.notOk(r.verifyToken('pi-2', token), "another agent's token fails");
  const again = await open(t, dir);
  t.ok(again.verifyToken('pi-1', token), 'a second registry on the same file sees it');
});

t.test('agents - add of an active agent is refused; tokens differ per agent', async (t) => {
  const r = await open(t, t.testdir());
  const a = await r.add('pi-1');
  const b = await r.add('pi-2');
  t.not(a, b);
  await t.rejects(r.add('pi-1'), { code: ErrorCode.CONFIG_INVALID, message: /already registered/ });
  t.ok(r.verifyToken('pi-1', a), 'the refused add left the token alone');
});

t.test('agents - issueToken replaces the old token', async (t) => {
  const r = await open(t, t.testdir());
  const first = await r.add('pi-1');
  const second = await r.issueToken('pi-1');
  t.not(first, second);
  t.notOk(r.verifyToken('pi-1', first), 'the old token no longer works');
  t.ok(r.verifyToken('pi-1', second));
  await t.rejects(r.issueToken('ghost'), { code: ErrorCode.AGENT_UNKNOWN, message: /ghost is not registered/ });
});

t.test('agents - revoke forgets the token; add registers the agent again', async (t) => {
  let now = 1000;
  const r = await open(t, t.testdir(), { now: () => now });
  const token = await r.add('pi-1');
  now = 2000;
  t.equal(await r.revoke('pi-1'), 'revoked');
  t.same(r.get('pi-1'), { id: 'pi-1', revoked: true, addedAt: 1000, revokedAt: 2000 });
  t.notOk(r.verifyToken('pi-1', token));
  t.equal(await r.revoke('pi-1'), 'already', 'revoking twice is harmless');
  await t.rejects(r.issueToken('pi-1'), { code: ErrorCode.CONFIG_INVALID, message: /revoked/ });
  await t.rejects(r.revoke('ghost', { unregistered: 'refuse' }), { code: ErrorCode.AGENT_UNKNOWN }, 'refused when no certificate could authenticate it');
  t.equal(r.get('ghost'), undefined, 'and nothing is recorded');
  t.equal(await r.revoke('ghost'), 'unregistered', 'an unregistered ID gets a revoked entry');
  t.same(r.get('ghost'), { id: 'ghost', revoked: true, addedAt: 2000, revokedAt: 2000 });
  now = 3000;
  const fresh = await r.add('pi-1');
  t.same(r.get('pi-1'), { id: 'pi-1', tokenHash: hashToken(fresh), revoked: false, addedAt: 3000 });
});

t.test('agents - an invalid agent ID is refused before the file is touched', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir);
  await t.rejects(r.add('bad id/with space'), { code: ErrorCode.CONFIG_INVALID });
  await t.rejects(readFile(join(dir, agentsFileName)), { code: 'ENOENT' });
});

t.test('agents - a running registry picks up changes made by another and reports each changed agent', async (t) => {
  const dir = t.testdir();
  const changed: string[] = [];
  const gateway = await open(t, dir, { watchIntervalMs: 20, onChanged: (id) => changed.push(id) });
  const cli = await open(t, dir);
  const token = await cli.add('pi-1');
  await until('the gateway to see the new agent', () => gateway.verifyToken('pi-1', token));
  await cli.add('pi-2');
  await until('pi-2', () => gateway.get('pi-2') !== undefined);
  changed.length = 0;
  await cli.revoke('pi-1');
  await until('the revocation', () => changed.length > 0);
  t.same(changed, ['pi-1'], 'onChanged once, for the revoked agent only');
  t.equal(gateway.get('pi-1')?.revoked, true);
  t.notOk(gateway.verifyToken('pi-1', token));
  t.equal(gateway.get('pi-2')?.revoked, false);

  changed.length = 0;
  const newToken = await cli.issueToken('pi-2');
  await until('the new token', () => gateway.verifyToken('pi-2', newToken));
  t.same(changed, ['pi-2'], 'a new token is a change too (the gateway ends a session opened with the old one)');

  changed.length = 0;
  t.equal(await cli.revoke('pi-cert'), 'unregistered', 'an unregistered ID (a certificate-only agent) can be revoked');
  await until('the certificate agent revoked', () => gateway.get('pi-cert')?.revoked === true);
  t.same(changed, ['pi-cert']);
  t.equal(await cli.revoke('pi-cert'), 'already');
});

t.test('agents - a corrupt file: CONFIG_INVALID naming the file at open; a running registry keeps what it had', async (t) => {
  const dir = t.testdir();
  const path = join(dir, agentsFileName);
  const lines: string[] = [];
  const running = await open(t, dir, { log: createLog({ write: (l) => lines.push(l) }) });
  const token = await running.add('pi-1');
  await writeFile(path, '{"version": 1, "agents": [ {"id": "pi-1"');
  const err = await AgentRegistry.open(dir, { watchIntervalMs: 0 }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof FerryError && err.code === ErrorCode.CONFIG_INVALID, 'CONFIG_INVALID');
  t.ok((err as Error).message.startsWith(`${path}: not valid JSON`), `names the file: ${(err as Error).message}`);
  t.match((err as Error).message, /move it aside and register the agents again with `ferry gateway add-agent`/, 'and says how to recover');
  await running.reload();
  t.ok(running.verifyToken('pi-1', token), 'the running registry still knows pi-1');
  t.ok(lines.some((l) => /registry not reloaded/.test(l)), 'and logged why it did not reload');
  await t.rejects(running.add('pi-2'), { code: ErrorCode.CONFIG_INVALID }, 'a change refuses to overwrite a damaged file');

  for (const [text, what] of [
    ['[]', /expected \{"version": 1/],
    ['{"version": 1, "agents": [{"id": "a", "revoked": "no", "addedAt": 1}]}', /agents\[0\]\.revoked/],
    ['{"version": 1, "agents": [{"id": "a", "revoked": false, "addedAt": 1, "tokenHash": "md5:00"}]}', /agents\[0\]\.tokenHash/],
    ['{"version": 1, "agents": [{"id": "a", "revoked": false, "addedAt": 1}, {"id": "a", "revoked": false, "addedAt": 2}]}', /listed twice/],
  ] as const) {
    await writeFile(path, text);
    await t.rejects(AgentRegistry.open(dir, { watchIntervalMs: 0 }), { code: ErrorCode.CONFIG_INVALID, message: what }, `refused: ${text.slice(0, 40)}`);
  }
});

t.test('agents - changes from two registries at once take turns under the lock: none is lost', async (t) => {
  const dir = t.testdir();
  const a = await open(t, dir);
  const b = await open(t, dir);
  const victims = ['v-0', 'v-1', 'v-2', 'v-3'];
  const tokens = await Promise.all(victims.map((v) => a.add(v)));
  const added = ['n-0', 'n-1', 'n-2', 'n-3', 'n-4', 'n-5'];
  const [outcomes, newTokens] = await Promise.all([
    Promise.all(victims.map((v, i) => (i % 2 === 0 ? a : b).revoke(v))),
    Promise.all(added.map((n, i) => (i % 2 === 0 ? b : a).add(n))),
  ]);
  t.same(outcomes, victims.map(() => 'revoked'));
  const after = await open(t, dir);
  for (const [i, v] of victims.entries()) t.ok(after.get(v)?.revoked === true && !after.verifyToken(v, tokens[i]!), `${v} stayed revoked`);
  for (const [i, n] of added.entries()) t.ok(after.verifyToken(n, newTokens[i]!), `${n} registered with the token it printed`);
  t.same((await readdir(dir)).sort(), [agentsFileName], 'no temporary file or lock file is left behind');
});

t.test('agents - a change waits for the lock and, past lockWaitMsMax, fails with DATA_DIR_LOCKED naming the registry', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir, { lockWaitMsMax: 300 });
  const held = await osLock(join(dir, agentsLockName));
  const waiting = r.add('pi-1');
  await new Promise((ok) => setTimeout(ok, 100));
  await held.release();
  t.match(await waiting, /^[A-Za-z0-9_-]{43}$/, 'a change waiting for the lock goes ahead once it is free');

  const held2 = await osLock(join(dir, agentsLockName));
  t.teardown(() => held2.release());
  const err = await r.revoke('pi-1').then(() => null, (e: unknown) => e);
  t.ok(err instanceof FerryError && err.code === ErrorCode.DATA_DIR_LOCKED, 'DATA_DIR_LOCKED');
  t.match((err as Error).message, `the agent registry ${join(dir, agentsFileName)} is being changed by another command, still after 300 ms`);
  t.equal((await open(t, dir)).get('pi-1')?.revoked, false, 'nothing was written without the lock');
});

t.test('agents - a temporary file left by a command that died mid-change is removed by the next change', async (t) => {
  const dir = t.testdir();
  const r = await open(t, dir);
  await writeFile(join(dir, `${agentsFileName}.12345.00ff00ff00ff.tmp`), '{"version": 1, "agen');
  await writeFile(join(dir, `${agentsFileName}.tmp`), '{"version": 1, "agen');
  await writeFile(join(dir, 'agents.json.notes'), 'not ours');
  await r.add('pi-1');
  t.same((await readdir(dir)).sort(), [agentsFileName, 'agents.json.notes']);
});
