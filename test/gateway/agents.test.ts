import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentRegistry, agentsFileName, hashToken } from '../../gateway/agents.js';
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
  await t.rejects(r.issueToken('ghost'), { code: ErrorCode.CONFIG_INVALID, message: /ghost is not registered/ });
});

t.test('agents - revoke forgets the token; add registers the agent again', async (t) => {
  let now = 1000;
  const r = await open(t, t.testdir(), { now: () => now });
  const token = await r.add('pi-1');
  now = 2000;
  t.equal(await r.revoke('pi-1'), true);
  t.same(r.get('pi-1'), { id: 'pi-1', revoked: true, addedAt: 1000, revokedAt: 2000 });
  t.notOk(r.verifyToken('pi-1', token));
  t.equal(await r.revoke('pi-1'), false, 'revoking twice is harmless');
  await t.rejects(r.issueToken('pi-1'), { code: ErrorCode.CONFIG_INVALID, message: /revoked/ });
  await t.rejects(r.revoke('ghost'), { code: ErrorCode.CONFIG_INVALID, message: /ghost is not registered, so it cannot be revoked/ });
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

t.test('agents - a running registry picks up changes made by another and reports revocations', async (t) => {
  const dir = t.testdir();
  const revoked: string[] = [];
  const gateway = await open(t, dir, { watchIntervalMs: 20, onRevoked: (id) => revoked.push(id) });
  const cli = await open(t, dir);
  const token = await cli.add('pi-1');
  await until('the gateway to see the new agent', () => gateway.verifyToken('pi-1', token));
  await cli.add('pi-2');
  await cli.revoke('pi-1');
  await until('the revocation', () => revoked.length > 0);
  t.same(revoked, ['pi-1'], 'onRevoked once, for the revoked agent only');
  t.equal(gateway.get('pi-1')?.revoked, true);
  t.notOk(gateway.verifyToken('pi-1', token));
  t.equal(gateway.get('pi-2')?.revoked, false);
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
