/**
 * The application API on `listen.api` admits sockets at accept, like every other listener: at most
 * `socketsPerAddressMax` per remote address and `connectionsMax` in all, and on HTTPS a silent
 * socket is closed after `requestTimeoutMs` (node's handshakeTimeout would be 120 s). Found by the
 * security review (issue 10 case 6 on a new surface): one address held 600 of 600 silent sockets.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenApi, type ApiLimits } from '../../gateway/downlink/api.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { createLog } from '../../common/log.js';
import { realClock } from '../../common/clock.js';
import { loadTlsFiles } from '../../protocol/tls-files.js';
import { makeCerts } from '../helpers/certs.js';
import { MemoryDownlink } from '../helpers/memory-downlink.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** the gateway's defaults for the request limits (gateway/config.ts limits.api); the socket limits are left to their defaults unless given */
const requestLimits: ApiLimits = { bodyBytesMax: 256 * 1024, requestTimeoutMs: 10_000, requestsInFlightMax: 1000, messageBytesMax: 64 * 1024, dataDepthMax: 32 };

async function api(t: Test, limits: Partial<ApiLimits> = {}, tlsDir?: string): Promise<{ port: number; lines: string[]; refused: () => Record<string, number> }> {
  const lines: string[] = [];
  const log = createLog({ write: (l) => lines.push(l) });
  const summary = new LogSummary({ log, clock: realClock, intervalMs: 60_000 });
  let tlsFiles;
  if (tlsDir !== undefined) {
    const certs = makeCerts(tlsDir);
    tlsFiles = loadTlsFiles({ cert: certs.main.gateway.cert, key: certs.main.gateway.key });
  }
  const server = await listenApi({
    listen: '127.0.0.1:0', queues: new MemoryDownlink(), log, summary,
    apps: { byToken: () => undefined },
    agentKnown: () => true,
    ...(tlsFiles ? { tlsFiles } : {}),
    limits: { ...requestLimits, ...limits },
  });
  t.teardown(async () => {
    await server.close(100);
    summary.close();
  });
  return { port: server.port, lines, refused: () => server.stats().refused };
}

/** Opens `n` silent sockets from `localAddress`; resolves once each connected or closed. */
async function hold(t: Test, port: number, n: number, localAddress = '127.0.0.1'): Promise<Socket[]> {
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress });
    sockets.push(s);
    s.on('error', () => undefined);
    s.once('connect', () => resolve());
    s.once('close', () => resolve());
  })));
  return sockets;
}

const open = (sockets: Socket[]): number => sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;

/** A GET with no token from `localAddress`: its status (401 when the API answered). */
function get(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/agents/pi-a/messages', localAddress, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('api - one address without a token cannot hold unbounded silent sockets on listen.api', async (t) => {
  const a = await api(t);
  const n = 600;
  const sockets = await hold(t, a.port, n);
  // Long enough for a refusal at accept to arrive; well within node's headersTimeout.
  await sleep(1500);
  const stillOpen = open(sockets);
  t.ok(stillOpen <= 256, `one address holds ${stillOpen} of ${n} silent sockets on the API (expected at most 256)`);
  t.equal(stillOpen, 64, 'exactly limits.api.socketsPerAddressMax (default 64) are kept');
  t.equal(a.refused().CONNECTIONS_PER_ADDRESS, n - 64, 'each socket past it counted as CONNECTIONS_PER_ADDRESS');
  t.equal(await get(a.port, '127.0.0.2'), 401, 'another address is still answered');
  const refusalLines = a.lines.filter((l) => l.includes('api: socket closed at accept'));
  t.equal(refusalLines.length, 1, `${n - 64} refusals cost one log line (then a summary): ${refusalLines.join('')}`);
});

t.test('api - connectionsMax bounds the sockets of all addresses together', async (t) => {
  const a = await api(t, { connectionsMax: 10, socketsPerAddressMax: 6 });
  const first = await hold(t, a.port, 8, '127.0.0.1');
  const second = await hold(t, a.port, 8, '127.0.0.3');
  await sleep(500);
  t.equal(open(first), 6, 'the first address keeps its share');
  t.equal(open(second), 4, 'the second gets what is left of connectionsMax');
  t.same(a.refused(), { CONNECTIONS_PER_ADDRESS: 2, GATEWAY_BUSY: 4 }, 'refusals by the limit they were past');
  for (const s of first) s.destroy();
  await sleep(200);
  t.equal(await get(a.port, '127.0.0.4'), 401, 'sockets that closed give their room back');
});

t.test('api - on HTTPS a socket that never starts its handshake is closed after requestTimeoutMs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-api-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = await api(t, { requestTimeoutMs: 500 }, dir);
  const [s] = await hold(t, a.port, 1);
  const closedAfterMs = await new Promise<number>((resolve) => {
    const start = Date.now();
    s!.once('close', () => resolve(Date.now() - start));
    setTimeout(() => resolve(-1), 5000);
  });
  t.ok(closedAfterMs >= 0, `the silent TLS socket was closed (after ${closedAfterMs} ms; node's default handshakeTimeout is 120 s)`);
});
