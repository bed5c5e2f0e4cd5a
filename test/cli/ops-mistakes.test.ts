/**
 * What a new user ran into (issue 13), through the real CLI process (dist/cli/ferry.js: run
 * `npm run build` first): each mistake stops ferry with a message naming what is wrong, a code in
 * brackets and the exit status, and leaves nothing behind.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerry, stopProcess } from '../../cli/proc.js';
import { runFerry, type Run } from '../helpers/cli-run.js';
import { freePort } from '../helpers/free-port.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-ops-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A gateway config in `dir` with `listen` lines and `routes` lines; its dataDir is DIR/gw. */
async function gatewayConfig(dir: string, listen: string[], routes?: string[]): Promise<string> {
  const file = join(dir, 'gateway.yaml');
  const r = routes ?? ['  - match: "#"', '    handler: file', `    path: ${join(dir, 'out.jsonl')}`];
  // admin on a free port: the default 7990 would be taken by whichever test runs beside this one
  const lines = listen.some((l) => l.startsWith('admin:')) ? listen : [...listen, 'admin: 127.0.0.1:0'];
  await writeFile(file, ['listen:', ...lines.map((l) => `  ${l}`), `dataDir: ${join(dir, 'gw')}`, 'routes:', ...r, ''].join('\n'));
  return file;
}

/** A server on 127.0.0.1 holding a free port; closed at the end of the test. */
async function holdPort(t: Test): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

function assertStopped(t: Test, run: Run, exit: number, code: string, what: RegExp): void {
  t.equal(run.signal, null, 'exits by itself');
  t.equal(run.code, exit, `exit status ${exit}`);
  t.match(run.stderr, what, `stderr says what is wrong: ${run.stderr.trim()}`);
  t.match(run.stderr, new RegExp(`\\[${code}\\]\\n$`), `ends with [${code}]`);
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
  t.notMatch(run.stdout, /listening|running/, 'nothing started');
}

t.test('ops - ferry agent and ferry gateway without --config: a config file is needed (exit 2)', async (t) => {
  const dir = await tempDir(t);
  for (const role of ['agent', 'gateway']) {
    const r = await runFerry([role]);
    assertStopped(t, r, 2, 'CONFIG_MISSING', new RegExp(`^ferry: ${role}: a config file is needed: ferry ${role} --config FILE \\(see docs/config.md and examples/${role}.yaml\\)`));
    t.notMatch(r.stderr, /\(flags\)|missing/, 'no field-by-field list of flags nobody gave');
  }
  const partial = await runFerry(['agent', '--id', 'pi-1', '--data-dir', join(dir, 'a')]);
  assertStopped(t, partial, 2, 'CONFIG_MISSING', /a config file is needed.*the flags given leave out gateway/);
  t.notOk(existsSync(join(dir, 'a')), 'no data dir made');
  // A wrong value given as a flag is that value's mistake, not a missing file.
  const bad = await runFerry(['agent', '--id', 'bad id', '--gateway', 'tcp://127.0.0.1:7800', '--data-dir', join(dir, 'b')]);
  assertStopped(t, bad, 1, 'CONFIG_INVALID', /\(flags\):1: id: /);
});

t.test('ops - flags alone that make a whole agent configuration still start it', async (t) => {
  const dir = await tempDir(t);
  // Nothing listens at the gateway URL: the agent runs and keeps dialling.
  const p = startFerry(['agent', '--id', 'pi-flags', '--gateway', `tcp://127.0.0.1:${await freePort()}`, '--data-dir', join(dir, 'a')], { readyPattern: /ferry agent running; local socket (\S+)/ });
  t.teardown(() => stopProcess(p));
  const [, socket] = await p.ready;
  t.equal(socket, join(dir, 'a', 'agent.sock'), 'it runs with the flags as its configuration');
});

t.test('ops - a port out of range is CONFIG_INVALID at load, naming the key; no data dir', async (t) => {
  const dir = await tempDir(t);
  const gw = await runFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 127.0.0.1:99999'])]);
  assertStopped(t, gw, 1, 'CONFIG_INVALID', /gateway\.yaml:2: listen\.tcp: port 99999 is out of range \(0 to 65535\)/);
  const api = await runFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 127.0.0.1:0', 'api: 127.0.0.1:70000'])]);
  assertStopped(t, api, 1, 'CONFIG_INVALID', /listen\.api: port 70000 is out of range/);
  t.notOk(existsSync(join(dir, 'gw')), 'the gateway made no data dir');

  const agentFile = join(dir, 'agent.yaml');
  await writeFile(agentFile, ['id: pi-1', 'gateway: [tcp://127.0.0.1:7800, http://127.0.0.1:123456]', `dataDir: ${join(dir, 'a')}`, ''].join('\n'));
  const agent = await runFerry(['agent', '--config', agentFile]);
  assertStopped(t, agent, 1, 'CONFIG_INVALID', /agent\.yaml:2: gateway\.1: port 123456 is out of range \(1 to 65535\)/);
  const zero = await runFerry(['agent', '--config', agentFile, '--gateway', 'tcp://127.0.0.1:0']);
  assertStopped(t, zero, 1, 'CONFIG_INVALID', /gateway: port 0 is out of range \(1 to 65535\)/);
  t.notOk(existsSync(join(dir, 'a')), 'the agent made no data dir');
});

t.test('ops - a listen port in use is LISTEN_FAILED naming the key and address; no data dir', async (t) => {
  const dir = await tempDir(t);
  const held = await holdPort(t);
  const tcp = await runFerry(['gateway', '--config', await gatewayConfig(dir, [`tcp: 127.0.0.1:${held}`])]);
  assertStopped(t, tcp, 1, 'LISTEN_FAILED', new RegExp(`^ferry: listen\\.tcp 127\\.0\\.0\\.1:${held}: cannot listen: the address is in use .*\\(EADDRINUSE\\)`));
  t.notOk(existsSync(join(dir, 'gw')), 'no data dir made');
  // The second listener's key is the one named, and the first one's check left its port free.
  const api = await runFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 127.0.0.1:0', `api: 127.0.0.1:${held}`])]);
  assertStopped(t, api, 1, 'LISTEN_FAILED', new RegExp(`listen\\.api 127\\.0\\.0\\.1:${held}: cannot listen: .*\\(EADDRINUSE\\)`));
  t.notOk(existsSync(join(dir, 'gw')), 'still no data dir');
  // An address that is not this host's (TEST-NET-1, RFC 5737).
  const foreign = await runFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 192.0.2.1:0'])]);
  assertStopped(t, foreign, 1, 'LISTEN_FAILED', /listen\.tcp 192\.0\.2\.1:0: cannot listen: the address is not one of this host's \(EADDRNOTAVAIL\)/);
  t.notOk(existsSync(join(dir, 'gw')), 'no data dir made');
});

t.test('ops - a file route whose path cannot be used names the route and the path', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'plain'), 'a file, not a directory\n');
  const routes = (path: string): string[] => ['  - match: "a/#"', '    handler: file', `    path: ${join(dir, 'ok.jsonl')}`, '  - match: "#"', '    handler: file', `    path: ${path}`];
  const through = join(dir, 'plain', 'sub', 'out.jsonl');
  const notDir = await runFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 127.0.0.1:0'], routes(through))]);
  assertStopped(t, notDir, 1, 'CONFIG_INVALID', new RegExp(`^ferry: routes\\[1\\]: file handler ${through}: ${join(dir, 'plain')} is not a directory \\(ENOTDIR\\)`, 'm'));

  const deep = join(dir, 'no', 'such', 'out.jsonl');
  const missing = await runFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 127.0.0.1:0'], routes(deep))]);
  assertStopped(t, missing, 1, 'CONFIG_INVALID', new RegExp(`routes\\[1\\]: file handler ${deep}: ${join(dir, 'no')} does not exist.*\\(ENOENT\\)`));
  t.notOk(existsSync(join(dir, 'no')), 'no directory made above the file\'s own');

  const own = join(dir, 'out', 'received.jsonl');
  const p = startFerry(['gateway', '--config', await gatewayConfig(dir, ['tcp: 127.0.0.1:0'], routes(own))], { readyPattern: /ferry gateway listening on/ });
  t.teardown(() => stopProcess(p));
  await p.ready;
  t.ok(existsSync(join(dir, 'out', 'received.jsonl')), 'the file\'s own missing directory is made, and the file in it');
});

t.test('ops - revoking or re-issuing for an unknown name is AGENT_UNKNOWN / APP_UNKNOWN, exit 1', async (t) => {
  const dir = await tempDir(t);
  const config = await gatewayConfig(dir, ['tcp: 127.0.0.1:0']);
  t.equal((await runFerry(['gateway', 'add-agent', 'pi-1', '--config', config])).code, 0, 'add-agent takes the ID as its argument too');
  const revoke = await runFerry(['gateway', 'revoke-agent', 'NOPE', '--config', config]);
  assertStopped(t, revoke, 1, 'AGENT_UNKNOWN', /^ferry: agent NOPE is not registered, and without tls\.ca no unregistered agent can authenticate: nothing to revoke/);
  const issue = await runFerry(['gateway', 'issue-token', '--config', config, '--agent', 'NOPE']);
  assertStopped(t, issue, 1, 'AGENT_UNKNOWN', /^ferry: agent NOPE is not registered; `ferry gateway add-agent` registers it/);
  t.notMatch(await readFile(join(dir, 'gw', 'agents.json'), 'utf8'), /NOPE/, 'nothing recorded for NOPE');
  const app = await runFerry(['gateway', 'revoke-app', 'ghost', '--config', config]);
  assertStopped(t, app, 1, 'APP_UNKNOWN', /^ferry: application ghost is not added; `ferry gateway apps` lists the applications/);
  const twice = await runFerry(['gateway', 'revoke-agent', 'pi-1', '--config', config, '--agent', 'pi-1']);
  assertStopped(t, twice, 1, 'CONFIG_INVALID', /give the agent ID once/);
  const ok = await runFerry(['gateway', 'revoke-agent', 'pi-1', '--config', config]);
  t.equal(ok.code, 0, 'a registered agent is revoked');
  t.equal(ok.stdout, 'agent pi-1 revoked\n');
});
