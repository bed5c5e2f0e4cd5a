/**
 * The API server in this process over real sockets, with an in-memory queue whose writes can be
 * held or made to fail: the limits (in flight, body size as it streams, slow bodies, header size),
 * a failed write (503, nothing claimed), and a flood of refusals costing bounded log lines. The
 * API of a real gateway process is test/gateway/downlink-api.test.ts.
 */
import t from 'tap';
import { connect } from 'node:net';
import { listenApi, type ApiServer } from '../../gateway/downlink/api.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { createLog } from '../../common/log.js';
import { realClock } from '../../common/clock.js';
import type { AppEntry } from '../../gateway/apps.js';
import { ErrorCode } from '../../protocol/errors.js';
import { MemoryDownlink } from '../helpers/memory-downlink.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const apps: Record<string, AppEntry> = {
  'tok-all': { name: 'all', revoked: false, addedAt: 0 },
  'tok-a': { name: 'only-a', revoked: false, addedAt: 0, agents: ['pi-a'] },
};

async function start(t: Test, opts: { inFlightMax?: number; bodyBytesMax?: number; requestTimeoutMs?: number } = {}): Promise<{ api: ApiServer; queues: MemoryDownlink; lines: string[] }> {
  const lines: string[] = [];
  const log = createLog({ write: (l) => lines.push(l) });
  const summary = new LogSummary({ log, clock: realClock, intervalMs: 60_000 });
  const queues = new MemoryDownlink();
  const api = await listenApi({
    listen: '127.0.0.1:0', queues, log, summary,
    apps: { byToken: (tok) => apps[tok] },
    agentKnown: (a) => a !== 'ghost',
    limits: { bodyBytesMax: opts.bodyBytesMax ?? 4096, requestTimeoutMs: opts.requestTimeoutMs ?? 10_000, requestsInFlightMax: opts.inFlightMax ?? 100, messageBytesMax: 1024, dataDepthMax: 8 },
  });
  t.teardown(async () => {
    await api.close(100);
    summary.close();
  });
  return { api, queues, lines };
}

const post = (api: ApiServer, agent: string, body: unknown, token = 'tok-all'): Promise<Response> =>
  fetch(`${api.url}/v1/agents/${agent}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Sends raw bytes and resolves with everything the server sent back before it closed (or `msMax`). */
function raw(port: number, text: string | Buffer, msMax = 5000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => undefined);
    const timer = setTimeout(() => s.destroy(), msMax);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.write(text);
  });
}

t.test('api server - 201 only after the enqueue resolved; a failed write is 503 STORE_IO and nothing is claimed', async (t) => {
  const { api, queues, lines } = await start(t);
  let open!: () => void;
  queues.gate = new Promise((r) => (open = r));
  let answered = false;
  const pending = post(api, 'pi-a', { target: 'cfg', data: 1 }).then((r) => {
    answered = true;
    return r;
  });
  // The request is in the queue's hands; no answer may come before the write does.
  while (api.stats().inFlight === 0) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(answered, false, 'no answer while the write is held');
  open();
  const ok = await pending;
  t.equal(ok.status, 201);
  const { id, state } = (await ok.json()) as { id: string; state: string };
  t.equal(state, 'queued');
  t.equal(ok.headers.get('location'), `/v1/agents/pi-a/messages/${id}`);
  t.equal(queues.get('pi-a', id)?.from, 'all', 'the application is recorded as the sender');

  queues.gate = undefined;
  queues.failWith = new Error('ENOSPC: no space left on device');
  const failed = await post(api, 'pi-a', { target: 'cfg', data: 2 });
  t.equal(failed.status, 503);
  const body = (await failed.json()) as { code: string; message: string };
  t.equal(body.code, ErrorCode.STORE_IO);
  t.match(body.message, /not queued.*ENOSPC/);
  t.notOk('id' in body, 'no ID given out');
  t.equal(queues.list('pi-a').length, 1, 'only the first message is queued');
  t.ok(lines.some((l) => /api: the message could not be queued/.test(l)));
});

t.test('api server - requests past requestsInFlightMax get 503 GATEWAY_BUSY with Retry-After', async (t) => {
  const { api, queues } = await start(t, { inFlightMax: 2 });
  let open!: () => void;
  queues.gate = new Promise((r) => (open = r));
  const held = [post(api, 'pi-a', { target: 'a', data: 1 }), post(api, 'pi-a', { target: 'b', data: 2 })];
  for (;;) {
    if (api.stats().inFlight === 2) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const busy = await post(api, 'pi-a', { target: 'c', data: 3 });
  t.equal(busy.status, 503);
  t.equal(busy.headers.get('retry-after'), '1');
  t.match(await busy.json(), { code: ErrorCode.GATEWAY_BUSY });
  open();
  t.same((await Promise.all(held)).map((r) => r.status), [201, 201], 'the held ones complete');
  t.equal((await post(api, 'pi-a', { target: 'd', data: 4 })).status, 201, 'room again');
  t.same(queues.list('pi-a').map((m) => m.target), ['a', 'b', 'd']);
});

t.test('api server - a body over the limit is cut as it streams (no Content-Length) with 413', async (t) => {
  const { api, queues } = await start(t, { bodyBytesMax: 1000 });
  const chunked = await raw(api.port, [
    'POST /v1/agents/pi-a/messages HTTP/1.1', 'host: x', 'authorization: Bearer tok-all', 'content-type: application/json', 'transfer-encoding: chunked', '', '',
  ].join('\r\n') + `7d0\r\n${'x'.repeat(2000)}\r\n`);
  t.match(chunked, /^HTTP\/1\.1 413 /);
  t.match(chunked, /"code":"API_BODY_TOO_LARGE"/);
  const declared = await raw(api.port, ['POST /v1/agents/pi-a/messages HTTP/1.1', 'host: x', 'authorization: Bearer tok-all', 'content-type: application/json', 'content-length: 5000', '', ''].join('\r\n'));
  t.match(declared, /^HTTP\/1\.1 413 /, 'refused by Content-Length before any byte of the body');
  t.equal(queues.list('pi-a').length, 0);
});

t.test('api server - a body that stalls gets 408 API_REQUEST_TIMEOUT and the connection is closed', async (t) => {
  const { api } = await start(t, { requestTimeoutMs: 300 });
  const got = await raw(api.port, ['POST /v1/agents/pi-a/messages HTTP/1.1', 'host: x', 'authorization: Bearer tok-all', 'content-type: application/json', 'content-length: 50', '', '{"target":'].join('\r\n'));
  t.match(got, /^HTTP\/1\.1 408 /);
  t.match(got, /"code":"API_REQUEST_TIMEOUT"/);
  t.match(got, /connection: close/i);
});

t.test('api server - oversize headers get 431 and an unreadable request 400, both JSON', async (t) => {
  const { api } = await start(t);
  const big = await raw(api.port, `GET /v1/agents/pi-a/messages HTTP/1.1\r\nhost: x\r\nx-pad: ${'p'.repeat(20_000)}\r\n\r\n`);
  t.match(big, /^HTTP\/1\.1 431 /);
  t.match(big, /"code":"API_BODY_INVALID"/);
  const junk = await raw(api.port, 'NOT HTTP AT ALL\r\n\r\n');
  t.match(junk, /^HTTP\/1\.1 400 /);
});

t.test('api server - a flood of bad tokens costs a bounded number of log lines and never logs the token', async (t) => {
  const { api, lines } = await start(t);
  const secret = 'not-a-token-but-secret-looking-0123456789';
  const answers = await Promise.all(Array.from({ length: 200 }, () => post(api, 'pi-a', { target: 'x', data: 1 }, secret)));
  t.ok(answers.every((r) => r.status === 401));
  const bodies = await Promise.all(answers.map((r) => r.text()));
  t.notOk(bodies.some((b) => b.includes(secret)), 'the token is not echoed');
  const refusals = lines.filter((l) => /api: request refused/.test(l));
  t.ok(refusals.length <= 2, `${refusals.length} log lines for 200 refusals`);
  t.notOk(lines.some((l) => l.includes(secret)), 'the token is not logged');
  t.equal(api.stats().refused[ErrorCode.API_AUTH_FAILED], 200, 'each one counted');
});

t.test('api server - close lets a request whose write is in progress finish', async (t) => {
  const { api, queues } = await start(t);
  let open!: () => void;
  queues.gate = new Promise((r) => (open = r));
  const pending = post(api, 'pi-a', { target: 'x', data: 1 });
  while (api.stats().inFlight === 0) await new Promise((r) => setTimeout(r, 10));
  const closing = api.close(5000);
  setTimeout(open, 100);
  const r = await pending;
  t.equal(r.status, 201, 'answered before the server closed');
  await closing;
  t.equal(queues.list('pi-a').length, 1);
});
