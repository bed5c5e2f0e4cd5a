/**
 * The gateway as composed by gateway/main.ts, in-process over real sockets: TLS listener, agent
 * registry, authentication on HELLO and revocation of a live session, with raw ferry frames.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DialerTls } from '../../agent/link/tcp.js';
import { createLog } from '../../common/log.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { runGateway, type RunningGateway } from '../../gateway/main.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { makeCerts } from '../helpers/certs.js';
import { sayHello } from '../helpers/hello.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const certs = makeCerts(t.testdir());
const trustMain: DialerTls = { ca: readFileSync(certs.main.ca) };
const clientOf = (cn: string, authority = certs.main): DialerTls => {
  const c = authority.client(cn);
  return { ...trustMain, cert: readFileSync(c.cert), key: readFileSync(c.key) };
};

async function gateway(t: Test, auth: Record<string, unknown>, lines: string[] = [], limits: Record<string, unknown> = {}): Promise<{ gw: RunningGateway; dataDir: string; lines: string[] }> {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const config = gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', tls: '127.0.0.1:0', admin: '127.0.0.1:0' },
    tls: { cert: certs.main.gateway.cert, key: certs.main.gateway.key, ca: certs.main.ca },
    auth, dataDir, limits,
    routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  });
  const gw = await runGateway(config, { log: createLog({ write: (l) => lines.push(l) }) });
  t.teardown(() => gw.stop());
  return { gw, dataDir, lines };
}

const hello = sayHello;

const codeOf = (f: Frame | null): string => (f === null ? 'closed' : f.t === FrameType.BYE ? f.code : f.t === FrameType.WELCOME ? 'WELCOME' : `frame ${f.t}`);

t.test('gateway security - auth required: token, client certificate, mismatch, plaintext on the TLS port', async (t) => {
  const { gw, dataDir, lines } = await gateway(t, { required: true });
  const cli = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => cli.close());
  const token = await cli.add('pi-1');
  await waitFor(async () => (await hello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'pi-1', token })).first?.t === FrameType.WELCOME);
  const tls = `tls://127.0.0.1:${gw.ports.tls}`;
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-1', token }, trustMain)).first), 'WELCOME', 'registered agent with its token over TLS');
  t.equal(codeOf((await hello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'pi-1', token })).first), 'WELCOME', 'and over plaintext TCP');
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-1', token: 'not-the-token' }, trustMain)).first), ErrorCode.AUTH_FAILED, 'wrong token');
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-2' }, trustMain)).first), ErrorCode.AUTH_FAILED, 'unregistered, no token');
  const token2 = await cli.add('pi-2');
  // Once the gateway has seen pi-2 registered, the refusals below are about the token alone.
  await waitFor(async () => (await hello(t, tls, { agent: 'pi-2', token: token2 }, trustMain)).first?.t === FrameType.WELCOME);
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-2', token }, trustMain)).first), ErrorCode.AUTH_FAILED, "another agent's ID with my token");
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-1', token: token2 }, trustMain)).first), ErrorCode.AUTH_FAILED, "my ID with another agent's token");
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-cert' }, clientOf('pi-cert'))).first), 'WELCOME', 'a verified client certificate for the agent, no token');
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-1', token }, clientOf('pi-cert'))).first), ErrorCode.AUTH_AGENT_MISMATCH, "another agent's certificate");
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-cert' }, clientOf('pi-cert', certs.other))).first), ErrorCode.AUTH_FAILED, 'a certificate from another CA counts for nothing');
  t.equal(codeOf((await hello(t, `tcp://127.0.0.1:${gw.ports.tls}`, { agent: 'pi-1', token })).first), ErrorCode.TLS_REQUIRED, 'plaintext on the TLS port');
  t.equal(gw.stats().refused[ErrorCode.TLS_REQUIRED], 1, 'the gateway counts the refusal in its stats');
  t.ok(lines.some((l) => l.includes('session: authentication failed')), 'failures are logged');
  t.notOk(lines.some((l) => l.includes(token)), 'the token never reaches the log');
  t.notOk(lines.some((l) => l.includes('AUTHENTICATION IS OFF')), 'no warning when auth is required');
});

t.test('gateway security - revoking with the registry (as the CLI does) ends the live session with AUTH_REVOKED', async (t) => {
  const { gw, dataDir } = await gateway(t, { required: true });
  const cli = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => cli.close());
  const token = await cli.add('pi-1');
  await cli.add('pi-2');
  const tls = `tls://127.0.0.1:${gw.ports.tls}`;
  let live = await hello(t, tls, { agent: 'pi-1', token }, trustMain);
  for (let i = 0; live.first?.t !== FrameType.WELCOME && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100)); // the gateway polls agents.json every 500 ms
    live = await hello(t, tls, { agent: 'pi-1', token }, trustMain);
  }
  t.equal(codeOf(live.first), 'WELCOME');
  const bystander = await hello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'pi-cert' }, undefined);
  t.equal(codeOf(bystander.first), ErrorCode.AUTH_FAILED, 'no certificate over plaintext: refused (sanity)');
  await cli.revoke('pi-1');
  const ended = await Promise.race([live.tr.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 5000))]);
  t.equal(ended, 'closed', 'the live session ended without a restart');
  const bye = live.frames.find((f) => f.t === FrameType.BYE);
  t.equal(bye?.t === FrameType.BYE ? bye.code : undefined, ErrorCode.AUTH_REVOKED);
  t.equal(codeOf((await hello(t, tls, { agent: 'pi-1', token }, trustMain)).first), ErrorCode.AUTH_REVOKED, 'and it cannot come back');
  t.equal(gw.stats().sessions, 0);
});

t.test('gateway security - auth not required: any agent ID, one warning at start, a revoked agent still refused', async (t) => {
  const lines: string[] = [];
  const { gw, dataDir } = await gateway(t, { required: false }, lines);
  t.equal(lines.filter((l) => l.includes('AUTHENTICATION IS OFF')).length, 1, 'warned once');
  t.equal(codeOf((await hello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'anyone' })).first), 'WELCOME');
  const cli = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => cli.close());
  await cli.add('pi-bad');
  await cli.revoke('pi-bad');
  await waitFor(async () => codeOf((await hello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'pi-bad' })).first) === ErrorCode.AUTH_REVOKED);
  t.pass('revoked agent refused');
});

t.test('gateway security - past agentsMax a new agent gets BYE AGENTS_MAX with a retry-after; a reconnecting agent still gets in', async (t) => {
  const { gw } = await gateway(t, { required: false }, [], { agentsMax: 1 });
  const url = `tcp://127.0.0.1:${gw.ports.tcp}`;
  const first = await hello(t, url, { agent: 'pi-1' });
  t.equal(codeOf(first.first), 'WELCOME');
  const second = await hello(t, url, { agent: 'pi-2' });
  t.equal(codeOf(second.first), ErrorCode.AGENTS_MAX, 'a second agent is refused');
  t.ok(second.first?.t === FrameType.BYE && (second.first.retryAfterMs ?? 0) > 0, 'with a retry-after');
  t.equal(codeOf((await hello(t, url, { agent: 'pi-1' })).first), 'WELCOME', 'the same agent reconnecting replaces its own session');
  t.equal(gw.stats().sessions, 1);
});

t.test('gateway security - bad TLS files stop the start with CONFIG_INVALID naming the file', async (t) => {
  const dir = t.testdir();
  const notPem = join(dir, 'not-pem.txt');
  writeFileSync(notPem, 'hello\n');
  const base = { listen: { tls: '127.0.0.1:0', admin: '127.0.0.1:0' as const }, dataDir: join(dir, 'gw'), routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }] };
  const cases: [string, Record<string, string>, RegExp][] = [
    ['a missing certificate file', { cert: join(dir, 'nope.pem'), key: certs.main.gateway.key }, /^tls\.cert: .*nope\.pem: cannot read file \(ENOENT\)/],
    ['a key file given as the certificate', { cert: certs.main.gateway.key, key: certs.main.gateway.key }, /^tls\.cert: .*gateway\.key: no PEM certificate/],
    ['a key that belongs to another certificate', { cert: certs.main.gateway.cert, key: certs.other.gateway.key }, /^tls\.key: .*other-ca\/gateway\.key: does not belong to the certificate/],
    ['a CA file that is not PEM', { cert: certs.main.gateway.cert, key: certs.main.gateway.key, ca: notPem }, /^tls\.ca: .*not-pem\.txt: no PEM certificate/],
  ];
  for (const [what, tls, message] of cases) {
    const err = await runGateway(gatewayConfigSchema.parse({ ...base, tls }), { log: createLog({ write: () => undefined }) }).then(async (gw) => {
      await gw.stop();
      return null;
    }, (e: unknown) => e);
    t.ok(err instanceof FerryError && err.code === ErrorCode.CONFIG_INVALID, `${what}: CONFIG_INVALID`);
    t.match((err as Error)?.message, message, `${what}: ${(err as Error)?.message}`);
  }
});

t.test('gateway security - config: listen needs tcp or tls; listen.tls needs tls; clientCert require needs tls.ca', async (t) => {
  const base = { dataDir: '/tmp/x', routes: [{ match: '#', handler: 'file', path: '/tmp/x/out' }] };
  const issues = (v: unknown): string[] => {
    const r = gatewayConfigSchema.safeParse(v);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  t.match(issues({ ...base, listen: {} }), [/^listen: give at least one of listen.tcp, listen.tls, listen.http and listen.https/]);
  t.same(issues({ ...base, listen: { http: '127.0.0.1:7880' } }), [], 'listen.http alone is enough');
  t.match(issues({ ...base, listen: { https: '0.0.0.0:7443' } }), [/^tls: listen.https needs tls.cert and tls.key/]);
  t.match(issues({ ...base, listen: { tls: '0.0.0.0:7801' } }), [/^tls: listen.tls needs tls.cert and tls.key/]);
  t.match(issues({ ...base, listen: { tls: '0.0.0.0:7801' }, tls: { cert: 'c', key: 'k' }, auth: { clientCert: 'require' } }), [/^auth.clientCert: 'require' needs listen.tls or listen.https, and tls.ca/]);
  t.same(issues({ ...base, listen: { tls: '0.0.0.0:7801' }, tls: { cert: 'c', key: 'k', ca: 'a' }, auth: { required: true, clientCert: 'require' } }), []);
  const c = gatewayConfigSchema.parse({ ...base, listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' } });
  t.same(c.auth, { required: true, allowUnauthenticatedRemote: false, clientCert: 'accept' });
  t.equal(c.limits.connectionsPerAddressMax, 64);
  t.equal(c.limits.sessionsPerSecondMax, 500);
});

async function waitFor(check: () => Promise<boolean>, msMax = 5000): Promise<void> {
  const end = Date.now() + msMax;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
