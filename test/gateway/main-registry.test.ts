/**
 * The gateway as composed by gateway/main.ts, in-process over a real socket, while its agent
 * registry changes under it (issue 10 cases 5 and 8): a damaged agents.json leaves the running
 * gateway on its last good copy; a new token ends the session opened with the old one.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLog } from '../../common/log.js';
import { AgentRegistry, agentsFileName } from '../../gateway/agents.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { runGateway } from '../../gateway/main.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { sayHello } from '../helpers/hello.js';

const codeOf = (f: Frame | null | undefined): string => (!f ? 'closed' : f.t === FrameType.BYE ? f.code : f.t === FrameType.WELCOME ? 'WELCOME' : `frame ${f.t}`);

const until = async (what: string, check: () => Promise<boolean>, msMax = 10_000): Promise<void> => {
  const end = Date.now() + msMax;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

t.test('gateway registry - a damaged agents.json: the running gateway keeps its last good copy, then takes the repaired one', async (t) => {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const lines: string[] = [];
  const cli = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => cli.close());
  const token = await cli.add('pi-1');
  const gw = await runGateway(gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' }, auth: { required: true }, dataDir, routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  }), { log: createLog({ write: (l) => lines.push(l) }) });
  t.teardown(() => gw.stop());
  const url = `tcp://127.0.0.1:${gw.port}`;
  t.equal(codeOf((await sayHello(t, url, { agent: 'pi-1', token })).first), 'WELCOME');

  const path = join(dataDir, agentsFileName);
  const good = await readFile(path, 'utf8');
  await writeFile(path, `${good}${good}`);
  await until('the gateway to notice the damage', async () => lines.some((l) => l.includes('agents: registry not reloaded; keeping the previous one')));
  t.equal(codeOf((await sayHello(t, url, { agent: 'pi-1', token })).first), 'WELCOME', 'the registered agent still gets in');
  t.equal(codeOf((await sayHello(t, url, { agent: 'pi-1', token: 'wrong' })).first), ErrorCode.AUTH_FAILED, 'and a wrong token is still refused');
  await t.rejects(cli.revoke('pi-1'), { code: ErrorCode.CONFIG_INVALID }, 'no change is written over the damaged file');

  await writeFile(path, good);
  t.equal(await cli.revoke('pi-1'), 'revoked', 'once repaired, changes work again');
  await until('the revocation to reach the gateway', async () => codeOf((await sayHello(t, url, { agent: 'pi-1', token })).first) === ErrorCode.AUTH_REVOKED);
});

t.test('gateway registry - issue-token ends only the session opened with the old token', async (t) => {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const cli = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => cli.close());
  const old = await cli.add('pi-1');
  const other = await cli.add('pi-2');
  const gw = await runGateway(gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' }, auth: { required: true }, dataDir, routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  }), { log: createLog({ write: () => undefined }) });
  t.teardown(() => gw.stop());
  const url = `tcp://127.0.0.1:${gw.port}`;
  const live = await sayHello(t, url, { agent: 'pi-1', token: old });
  const bystander = await sayHello(t, url, { agent: 'pi-2', token: other });
  t.same([codeOf(live.first), codeOf(bystander.first)], ['WELCOME', 'WELCOME']);

  const fresh = await cli.issueToken('pi-1');
  const ended = await Promise.race([live.tr.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 5000))]);
  t.equal(ended, 'closed', 'the session opened with the old token ended without a restart');
  t.equal(codeOf(live.frames.find((f) => f.t === FrameType.BYE)), ErrorCode.AUTH_FAILED);
  t.equal(codeOf((await sayHello(t, url, { agent: 'pi-1', token: old })).first), ErrorCode.AUTH_FAILED, 'the old token is refused');
  t.equal(codeOf((await sayHello(t, url, { agent: 'pi-1', token: fresh })).first), 'WELCOME', 'the new one works');
  t.notOk(bystander.frames.some((f) => f.t === FrameType.BYE), "another agent's session is untouched");
  t.equal(gw.stats().sessions, 2);
});
