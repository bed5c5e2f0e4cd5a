/**
 * Issue 10, case 2 (gateway half): secure by default. A real gateway (gateway/main.ts in-process,
 * real sockets on 127.0.0.1) started from a configuration without an `auth` key is attacked as the
 * security review did it: one unauthenticated HELLO for another agent, with ackedSeq 2^53-1. Then
 * the configuration rules for turning authentication off.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { agentConfigSchema } from '../../agent/config.js';
import { runAgent } from '../../agent/main.js';
import { tcpDialer } from '../../agent/link/tcp.js';
import { createLog, silentLog } from '../../common/log.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { authWarnings, isLoopbackHost } from '../../gateway/auth-posture.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import { runGateway } from '../../gateway/main.js';
import { loadYamlFile } from '../../hw/yaml-file.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, protocolVersion, seqMax, type Frame } from '../../protocol/frames.js';
import { sayHello } from '../helpers/hello.js';
import { pollUntil } from '../helpers/wait.js';

const codeOf = (f: Frame | null | undefined): string => (f == null ? 'closed' : f.t === FrameType.BYE ? f.code : f.t === FrameType.WELCOME ? 'WELCOME' : `frame ${f.t}`);

t.test('gateway secure default - an unauthenticated HELLO for dev-3 with ackedSeq 2^53-1 is refused; the real dev-3 then delivers everything', async (t) => {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const out = join(dir, 'out.jsonl');
  const lines: string[] = [];
  // No `auth` key: the defaults decide.
  const config = gatewayConfigSchema.parse({ listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' }, dataDir, routes: [{ match: '#', handler: 'file', path: out }] });
  const gw = await runGateway(config, { log: createLog({ write: (l) => lines.push(l) }) });
  let gwStopped = false;
  t.teardown(() => (gwStopped ? undefined : gw.stop()));
  const url = `tcp://127.0.0.1:${gw.ports.tcp}`;

  // The attacker: HELLO as dev-3 with the highest seq there is, and a DATA right behind it. 2^53-1
  // (the original attack) is now refused at decode (FRAME_MALFORMED); seqMax is the highest a
  // HELLO may carry, so it reaches authentication.
  const attack = async (ackedSeq: number): Promise<Frame[]> => {
    const attacker = await tcpDialer(url, { connectTimeoutMs: 3000 })();
    t.teardown(() => attacker.close());
    const got: Frame[] = [];
    attacker.onFrame((f) => got.push(f));
    attacker.send({ t: FrameType.HELLO, version: protocolVersion, agent: 'dev-3', ackedSeq });
    attacker.send({ t: FrameType.DATA, packets: [{ seq: ackedSeq, target: 'x/y', ts: 1, data: { forged: true } }] });
    await Promise.race([attacker.closed, new Promise((r) => setTimeout(r, 3000))]);
    return got;
  };
  const decodeRefused = await attack(Number.MAX_SAFE_INTEGER);
  t.equal(codeOf(decodeRefused[0]), ErrorCode.FRAME_MALFORMED, 'ackedSeq 2^53-1 is refused at decode');
  const got = await attack(seqMax);
  t.equal(codeOf(got[0]), ErrorCode.AUTH_FAILED, 'refused with AUTH_FAILED (on the old default it was welcomed)');
  t.notOk([...decodeRefused, ...got].some((f) => f.t === FrameType.WELCOME || f.t === FrameType.ACK), 'no WELCOME, nothing acked');
  t.match(lines.join(''), /AUTH_FAILED/, 'the refusal is logged');
  t.notOk(lines.some((l) => l.includes('AUTHENTICATION IS OFF')), 'no auth-off warning: auth is on');
  const logFile = join(dataDir, 'dispatched.log');
  t.notOk(existsSync(logFile) && readFileSync(logFile).includes('dev-3'), 'the dispatch log holds nothing for dev-3');
  t.notOk(existsSync(out) && readFileSync(out, 'utf8').includes('dev-3'), 'nothing was dispatched for dev-3');

  // The real dev-3, registered (as `ferry gateway add-agent` does), with its token.
  const registry = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  const token = await registry.add('dev-3');
  registry.close();
  // The gateway polls agents.json: wait until it takes the token, so the agent below is not refused first.
  for (let i = 0; ; i++) {
    const h = await sayHello(t, url, { agent: 'dev-3', token });
    h.tr.close();
    if (codeOf(h.first) === 'WELCOME') {
      t.equal(h.first?.t === FrameType.WELCOME ? h.first.dispatchedSeq : -1, 0, 'WELCOME names no dispatched seq: the attack left no floor');
      break;
    }
    if (i > 100) throw new Error(`the gateway never accepted dev-3's token: ${codeOf(h.first)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // A Unix socket path must be short (108 bytes): not in tap's long fixture directory.
  const socketDir = mkdtempSync(join(tmpdir(), 'ferry-sd-'));
  t.teardown(() => rmSync(socketDir, { recursive: true, force: true }));
  const socket = join(socketDir, 'agent.sock');
  const agent = await runAgent(agentConfigSchema.parse({
    id: 'dev-3', token, gateway: url, dataDir: join(dir, 'agent'), socket,
    link: { reconnectDelayMsMin: 50, reconnectDelayMsMax: 500 },
  }), { log: silentLog });
  t.teardown(() => agent.stop());
  const packets = 10;
  for (let i = 0; i < packets; i++) {
    const r = await localRequest(socket, { op: 'send', target: 'sensors/t', data: { i } }, 3000);
    t.ok(r.ok, `packet ${i} stored`);
  }
  await pollUntil(() => agent.stats().ackedSeq === packets && agent.stats().backlog === 0, 20_000, 'dev-3 to deliver everything');
  const delivered = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { agent: string; seq: number });
  t.same(delivered.filter((l) => l.agent === 'dev-3').map((l) => l.seq), Array.from({ length: packets }, (_, i) => i + 1), 'dev-3: seq 1..10, once each');
  await agent.stop();
  await gw.stop();
  gwStopped = true;
  const log = await DispatchLog.open(dataDir, silentLog);
  t.equal(log.floor('dev-3'), packets, 'the durable floor is what dev-3 really delivered');
  await log.close();
});

t.test('gateway secure default - the defaults: auth required, no unauthenticated remote', async (t) => {
  const c = gatewayConfigSchema.parse({ listen: { tcp: '0.0.0.0:7800' }, dataDir: '/tmp/x', routes: [{ match: '#', handler: 'file', path: '/tmp/x/out' }] });
  t.same(c.auth, { required: true, allowUnauthenticatedRemote: false, clientCert: 'accept' });
  t.same(authWarnings(c), [], 'no warning when auth is on, whatever the listener');
});

t.test('gateway secure default - auth.required false on a non-loopback listener is CONFIG_INVALID naming the field, unless allowUnauthenticatedRemote', async (t) => {
  const dir = t.testdir();
  const routes = ['routes:', '  - match: "#"', '    handler: file', `    path: ${join(dir, 'out.jsonl')}`];
  const load = (listen: string[], auth: string[]): unknown => {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, [...listen, `dataDir: ${join(dir, 'gw')}`, ...auth, ...routes, ''].join('\n'));
    try {
      return loadYamlFile(file, gatewayConfigSchema);
    } catch (err) {
      return err;
    }
  };
  const off = ['auth:', '  required: false'];
  const refused: [string, string[]][] = [
    ['listen.tcp on 0.0.0.0', ['listen:', '  tcp: 0.0.0.0:7800']],
    ['listen.tcp on a LAN address', ['listen:', '  tcp: 192.168.1.20:7800']],
    ['listen.tcp on a host name', ['listen:', '  tcp: gateway.example.net:7800']],
    ['listen.tls on 0.0.0.0 beside a loopback listen.tcp', ['listen:', '  tcp: 127.0.0.1:7800', '  tls: 0.0.0.0:7801', 'tls:', '  cert: c.pem', '  key: k.pem']],
    ['listen.http on 0.0.0.0 beside a loopback listen.tcp', ['listen:', '  tcp: 127.0.0.1:7800', '  http: 0.0.0.0:7880']],
    ['listen.https on a LAN address alone', ['listen:', '  https: 192.168.1.20:7443', 'tls:', '  cert: c.pem', '  key: k.pem']],
  ];
  for (const [what, listen] of refused) {
    const err = load(listen, off);
    t.ok(err instanceof FerryError && err.code === ErrorCode.CONFIG_INVALID, `${what}: CONFIG_INVALID`);
    t.match((err as Error).message, /auth\.required: false on a listener other hosts can reach \(listen\.(tcp|tls|http|https) [^)]+\) would let any client act as any agent/, `${what}: names the field and why`);
    t.match((err as Error).message, /auth\.allowUnauthenticatedRemote: true/, `${what}: and the key that allows it`);
    const allowed = load(listen, [...off, '  allowUnauthenticatedRemote: true']);
    t.notOk(allowed instanceof Error, `${what}: allowed with auth.allowUnauthenticatedRemote: true`);
    const warnings = authWarnings(allowed as Parameters<typeof authWarnings>[0]);
    t.equal(warnings.length, 1, `${what}: one warning`);
    t.match(warnings[0]?.msg, /AUTHENTICATION IS OFF on a listener other hosts can reach.*any client that reaches it can act as any agent/, `${what}: the warning says what it means`);
    t.notOk(load(listen, []) instanceof Error, `${what}: with auth on (the default) it loads`);
  }
  for (const host of ['127.0.0.1', '127.3.2.1', 'localhost']) {
    const c = load(['listen:', `  tcp: ${host}:7800`], off);
    t.notOk(c instanceof Error, `auth off on ${host}: allowed`);
    t.match(authWarnings(c as Parameters<typeof authWarnings>[0])[0]?.msg, /AUTHENTICATION IS OFF \(auth.required false\): any client on this host can act as any agent/);
  }
});

t.test('gateway secure default - loopback is 127.0.0.0/8, ::1 and localhost; nothing else', async (t) => {
  for (const h of ['127.0.0.1', '127.255.0.9', 'localhost', 'LocalHost', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) t.ok(isLoopbackHost(h), `${h}: loopback`);
  for (const h of ['0.0.0.0', '::', '[::]', '192.168.1.20', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', 'gateway.example.net', 'localhost.evil.net', '127.0.0.1.nip.io']) t.notOk(isLoopbackHost(h), `${h}: not loopback`);
});

t.test('gateway secure default - a gateway started with auth off on loopback says so loudly, once', async (t) => {
  const dir = t.testdir();
  const lines: string[] = [];
  const gw = await runGateway(gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' }, dataDir: join(dir, 'gw'), auth: { required: false },
    routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  }), { log: createLog({ write: (l) => lines.push(l) }) });
  await gw.stop();
  const warned = lines.filter((l) => l.includes('AUTHENTICATION IS OFF')).map((l) => JSON.parse(l) as { level: string; msg: string });
  t.equal(warned.length, 1, 'one line');
  t.equal(warned[0]?.level, 'warn');
  t.match(warned[0]?.msg, /any client on this host can act as any agent/);
});
