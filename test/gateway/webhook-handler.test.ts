import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gatewayConfigSchema } from '../../gateway/config.js';
import type { DispatchPacket, HandlerResult } from '../../gateway/handlers/handler.js';
import { parseRetryAfter } from '../../gateway/handlers/http-outcome.js';
import { createWebhookHandler, type WebhookHandler, type WebhookHandlerOptions } from '../../gateway/handlers/webhook.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { PacketData } from '../../protocol/packet.js';
import { freePort } from '../helpers/free-port.js';
import { refuses } from '../helpers/refuses.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  socket: Socket;
}

interface Hook {
  url: string;
  seen: Seen[];
  /** most requests being served at one moment */
  concurrentMax: number;
  sockets: Set<Socket>;
  closedSockets: number;
}

type Respond = (req: Seen, res: ServerResponse) => unknown;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A real HTTP server on 127.0.0.1:0 that records every request and answers with `respond`. */
async function hook(t: Test, respond: Respond = (_req, res) => res.writeHead(200).end('thanks')): Promise<Hook> {
  const h: Hook = { url: '', seen: [], concurrentMax: 0, sockets: new Set(), closedSockets: 0 };
  let concurrent = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), socket: req.socket };
      h.seen.push(seen);
      h.concurrentMax = Math.max(h.concurrentMax, ++concurrent);
      res.on('close', () => concurrent--);
      void respond(seen, res);
    });
  });
  server.on('connection', (s: Socket) => {
    h.sockets.add(s);
    s.on('close', () => h.closedSockets++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  h.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return h;
}

function webhook(t: Test, opts: WebhookHandlerOptions, now?: () => number): WebhookHandler {
  const h = createWebhookHandler(opts, now ? { now } : {});
  t.teardown(() => h.close());
  return h;
}

function pkt(seq: number, data: PacketData = { seq }, target = 'telemetry/temp', agent = 'pi-1'): DispatchPacket {
  return { agent, seq, target, ts: 1_700_000_000_000 + seq, data };
}

function retryable(t: Test, r: HandlerResult, code: string, retryAfterMs: number, what: string): void {
  t.same(r.ok ? r : { ok: r.ok, retryable: r.retryable, code: r.code, retryAfterMs: r.retryable ? r.retryAfterMs : undefined }, { ok: false, retryable: true, code, retryAfterMs }, `${what} (${r.ok ? 'ok' : r.message})`);
}

function permanent(t: Test, r: HandlerResult, status: number, what: string): void {
  t.same(r.ok ? r : { ok: r.ok, retryable: r.retryable, code: r.code }, { ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED }, what);
  if (!r.ok) t.match(r.message, String(status), `${what}: the message names the status`);
}

t.test('webhook handler - 2xx is ok; the request carries the identity headers, static headers and the JSON body', async (t) => {
  const h = await hook(t, (req, res) => res.writeHead(req.body.includes('"seq":2') ? 204 : 200).end());
  const w = webhook(t, { url: `${h.url}/in/{agent}/{target}?token=s3cret`, headers: { Authorization: 'Bearer abc', 'X-Env': 'test' } });
  t.equal(w.kind, 'webhook');
  t.equal(w.inflightMax, 1, 'inflightMax is the concurrency, 1 by default');
  const data = { t: 21.5, tags: ['a', 'ü'], nested: { none: null } };
  t.same(await w.handle(pkt(1, data)), { ok: true }, '200');
  t.same(await w.handle(pkt(2, 'seq 2')), { ok: true }, '204');
  const r = h.seen[0]!;
  t.equal(r.method, 'POST');
  t.equal(r.url, '/in/pi-1/telemetry%2Ftemp?token=s3cret', 'placeholders replaced, URL-encoded');
  t.match(r.headers, {
    'content-type': 'application/json',
    'content-length': String(r.body.length),
    'idempotency-key': 'pi-1:1',
    'ferry-agent': 'pi-1',
    'ferry-seq': '1',
    'ferry-target': 'telemetry/temp',
    'ferry-ts': '1700000000001',
    authorization: 'Bearer abc',
    'x-env': 'test',
  });
  t.same(JSON.parse(r.body.toString('utf8')), data, 'the body is the data as JSON text');
  t.equal(h.seen[1]!.body.toString('utf8'), '"seq 2"');
  t.equal(h.sockets.size, 1, 'the second request reused the kept-alive connection');
});

t.test('webhook handler - bytes go as they are (octet-stream); bytes inside a value as {base64}', async (t) => {
  const h = await hook(t);
  const w = webhook(t, { url: `${h.url}/bin` });
  const backing = new Uint8Array([9, 9, 9, 0, 1, 2, 255, 128, 9]);
  t.same(await w.handle(pkt(1, backing.subarray(3, 8))), { ok: true });
  t.same(await w.handle(pkt(2, { raw: new Uint8Array([1, 2, 3]) })), { ok: true });
  t.equal(h.seen[0]!.headers['content-type'], 'application/octet-stream');
  t.same([...h.seen[0]!.body], [0, 1, 2, 255, 128], 'exactly the bytes of the view, not its backing buffer');
  t.same(JSON.parse(h.seen[1]!.body.toString('utf8')), { raw: { base64: 'AQID' } });
});

t.test('webhook handler - a target or agent outside printable ASCII is percent-encoded in headers', async (t) => {
  const h = await hook(t);
  const w = webhook(t, { url: `${h.url}/x` });
  const target = 'capteurs/température/温度/100%';
  t.same(await w.handle(pkt(1, 1, target)), { ok: true });
  const got = h.seen[0]!.headers['ferry-target'] as string;
  t.match(got, /^[\x20-\x7e]+$/, 'the header is plain ASCII');
  t.equal(decodeURIComponent(got), target, 'decodeURIComponent restores the target');
});

t.test('webhook handler - 5xx, 408, 425 and 429 are retryable HANDLER_FAILED after the default retry-after', async (t) => {
  const h = await hook(t, (req, res) => res.writeHead(Number(req.url.slice(1))).end('backend says no'));
  for (const status of [500, 502, 503, 599, 408, 425, 429]) {
    const w = webhook(t, { url: `${h.url}/${status}`, retryAfterMs: 1500 });
    const r = await w.handle(pkt(1));
    retryable(t, r, ErrorCode.HANDLER_FAILED, 1500, `${status}`);
    if (!r.ok) t.match(r.message, new RegExp(`${status}: backend says no`), `${status}: the message has the status and the start of the body`);
  }
});

t.test('webhook handler - Retry-After in seconds or as an HTTP date sets retryAfterMs, clamped to [min, max]', async (t) => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  const h = await hook(t, (req, res) => res.writeHead(503, { 'Retry-After': decodeURIComponent(req.url.slice(1)) }).end());
  const w = webhook(t, { url: `${h.url}/{target}`, retryAfterMs: 1234, retryAfterMsMin: 500, retryAfterMsMax: 30_000 }, () => now);
  const cases: [string, number][] = [
    ['7', 7000],
    ['0', 500],
    ['99999', 30_000],
    ['Wed, 01 May 2024 12:00:20 GMT', 20_000],
    ['Wed, 01 May 2024 11:00:00 GMT', 500],
    ['soon', 1234],
  ];
  for (const [header, ms] of cases) retryable(t, await w.handle(pkt(1, 1, header)), ErrorCode.HANDLER_FAILED, ms, `Retry-After: ${header}`);
  t.equal(parseRetryAfter(undefined, now, { retryAfterMs: 1, retryAfterMsMin: 1, retryAfterMsMax: 2 }), undefined, 'no header, no value');
});

t.test('webhook handler - other 4xx and 3xx are permanent HANDLER_REJECTED; a redirect is not followed', async (t) => {
  const h = await hook(t, (req, res) => {
    const status = Number(req.url.slice(1));
    res.writeHead(status, status < 400 ? { Location: '/elsewhere' } : {}).end();
  });
  for (const status of [400, 401, 404, 410, 413, 422, 301, 302, 307]) permanent(t, await webhook(t, { url: `${h.url}/${status}` }).handle(pkt(1)), status, `${status}`);
  t.notOk(h.seen.some((r) => r.url === '/elsewhere'), 'no request went to the redirect target');
});

t.test('webhook handler - no answer within timeoutMs is a retryable HANDLER_TIMEOUT and the connection is dropped', async (t) => {
  const h = await hook(t, () => undefined); // never answers
  const w = webhook(t, { url: `${h.url}/slow`, timeoutMs: 300 });
  retryable(t, await w.handle(pkt(1)), ErrorCode.HANDLER_TIMEOUT, 1000, 'no answer');
  await sleep(100);
  t.equal(h.closedSockets, 1, 'the connection of the timed-out request was closed');
  t.equal(w.inflight, 0);
});

t.test('webhook handler - the timeout also bounds reading the answer; the status line decides', async (t) => {
  const h = await hook(t, (req, res) => {
    res.writeHead(Number(req.url.slice(1)), { 'Content-Length': '1000' });
    res.write('partial'); // and the rest never comes
  });
  t.same(await webhook(t, { url: `${h.url}/200`, timeoutMs: 300 }).handle(pkt(1)), { ok: true }, 'a 2xx whose body stalls is still delivered');
  retryable(t, await webhook(t, { url: `${h.url}/503`, timeoutMs: 300 }).handle(pkt(1)), ErrorCode.HANDLER_FAILED, 1000, 'a 503 whose body stalls');
  await sleep(100);
  t.equal(h.closedSockets, 2, 'both connections were dropped, not left half-read');
});

t.test('webhook handler - a large answer is not read past its bound', async (t) => {
  const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
  const h = await hook(t, (_req, res) => res.writeHead(200, { 'Content-Length': String(big.length) }).end(big));
  t.same(await webhook(t, { url: `${h.url}/big`, timeoutMs: 5000 }).handle(pkt(1)), { ok: true });
  await sleep(100);
  t.equal(h.closedSockets, 1, 'the connection was dropped instead of draining 4 MiB');
});

t.test('webhook handler - a refused connection is a retryable HANDLER_FAILED', async (t) => {
  const port = await freePort(); // nothing listens there
  const r = await webhook(t, { url: `http://127.0.0.1:${port}/x`, retryAfterMs: 2000 }).handle(pkt(1));
  retryable(t, r, ErrorCode.HANDLER_FAILED, 2000, 'refused');
  if (!r.ok) t.match(r.message, /ECONNREFUSED/);
});

t.test('webhook handler - at most `concurrency` requests reach the server at once, over at most that many connections', async (t) => {
  const h = await hook(t, async (_req, res) => {
    await sleep(50);
    res.writeHead(200).end();
  });
  const w = webhook(t, { url: `${h.url}/c`, concurrency: 3, timeoutMs: 10_000 });
  t.equal(w.inflightMax, 3);
  const results = await Promise.all(Array.from({ length: 15 }, (_, i) => w.handle(pkt(i + 1, i, 'c', `pi-${i % 4}`))));
  t.ok(results.every((r) => r.ok), 'all 15 delivered');
  t.equal(h.concurrentMax, 3, 'the server saw 3 requests at once, never more');
  t.ok(h.sockets.size <= 3, `connections kept alive and reused (${h.sockets.size})`);
});

t.test('webhook handler - with concurrency 1 requests reach the server one at a time in call order', async (t) => {
  const h = await hook(t, async (_req, res) => {
    await sleep(5);
    res.writeHead(200).end();
  });
  const w = webhook(t, { url: `${h.url}/o` });
  await Promise.all(Array.from({ length: 20 }, (_, i) => w.handle(pkt(i + 1))));
  t.equal(h.concurrentMax, 1);
  t.same(h.seen.map((r) => r.headers['ferry-seq']), Array.from({ length: 20 }, (_, i) => String(i + 1)));
});

t.test('webhook handler - close fails what is in flight retryably, closes the connections and refuses new work', async (t) => {
  const h = await hook(t, () => undefined);
  const w = webhook(t, { url: `${h.url}/c`, concurrency: 2, timeoutMs: 10_000 });
  const pending = [w.handle(pkt(1)), w.handle(pkt(2)), w.handle(pkt(3))];
  while (h.seen.length < 2) await sleep(5);
  await w.close();
  for (const r of await Promise.all(pending)) retryable(t, r, ErrorCode.HANDLER_FAILED, 1000, 'in flight or waiting at close');
  retryable(t, await w.handle(pkt(4)), ErrorCode.HANDLER_FAILED, 1000, 'after close');
  await sleep(100);
  t.equal(h.closedSockets, h.sockets.size, 'every connection is closed');
});

t.test('webhook handler - invalid options are refused when the handler is made', async (t) => {
  refuses(t, () => createWebhookHandler({ url: 'ftp://example.com/x' }), ErrorCode.CONFIG_INVALID, 'ftp URL');
  refuses(t, () => createWebhookHandler({ url: 'not a url' }), ErrorCode.CONFIG_INVALID, 'not a URL');
  refuses(t, () => createWebhookHandler({ url: 'http://u:p@example.com/' }), ErrorCode.CONFIG_INVALID, 'credentials in the URL');
  refuses(t, () => createWebhookHandler({ url: 'http://example.com/', headers: { 'Idempotency-Key': 'x' } }), ErrorCode.CONFIG_INVALID, 'a reserved header');
  refuses(t, () => createWebhookHandler({ url: 'http://example.com/', headers: { 'Ferry-Seq': '1' } }), ErrorCode.CONFIG_INVALID, 'a Ferry- header');
  refuses(t, () => createWebhookHandler({ url: 'http://example.com/', headers: { 'X-A': 'a\r\nb' } }), ErrorCode.CONFIG_INVALID, 'a header value with CRLF');
  refuses(t, () => createWebhookHandler({ url: 'http://example.com/', concurrency: 0 }), ErrorCode.CONFIG_INVALID, 'concurrency 0');
  refuses(t, () => createWebhookHandler({ url: 'http://example.com/', retryAfterMsMin: 5000, retryAfterMsMax: 10 }), ErrorCode.CONFIG_INVALID, 'min above max');
});

t.test('webhook handler - the route schema fills defaults and refuses what the handler cannot use', async (t) => {
  const base = { listen: { tcp: '127.0.0.1:0' }, dataDir: '/tmp/x' };
  const parsed = gatewayConfigSchema.parse({ ...base, routes: [{ match: '#', handler: 'webhook', url: 'https://example.com/{agent}' }] });
  t.match(parsed.routes[0], { handler: 'webhook', timeoutMs: 5000, concurrency: 1, headers: {}, retryAfterMs: 1000, retryAfterMsMin: 1000, retryAfterMsMax: 60_000 });
  for (const bad of [{ url: 'mqtt://x' }, { url: 'http://x', concurrency: 1000 }, { url: 'http://x', headers: { 'bad name': 'v' } }, { url: 'http://x', retryAfterMsMin: 10, retryAfterMsMax: 5 }, { url: 'http://x', extra: 1 }]) {
    t.notOk(gatewayConfigSchema.safeParse({ ...base, routes: [{ match: '#', handler: 'webhook', ...bad }] }).success, `refused: ${JSON.stringify(bad)}`);
  }
});
