/**
 * agent/link/http-post.ts against real node:http(s) servers on 127.0.0.1: what it sends (path,
 * method, headers, body), what it returns (status, body, retry-after from a JSON refusal or the
 * Retry-After header), its limits (response bytes, time-out, abort), keep-alive, the gateway's
 * certificate checked for https://, and the way through a real tinyproxy by HTTP_PROXY (absolute
 * URI) and HTTPS_PROXY (CONNECT), shown by the proxy's own log.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { httpPost, retryAfterHeaderMs, type HttpPost } from '../../agent/link/http-post.js';
import { ErrorCode } from '../../protocol/errors.js';
import { makeCerts } from '../helpers/certs.js';
import { startTinyproxy } from '../helpers/tinyproxy.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A server that records each request and hands it to `handle` (default: echo the body with 200). */
async function serve(t: Test, opts: { tls?: { cert: Buffer; key: Buffer } } = {}) {
  const seen: Seen[] = [];
  let handle: Handler = (_req, body, res) => res.end(body);
  const sockets = new Set<import('node:net').Socket>();
  let connections = 0;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handle(req, body, res);
    });
  };
  const server: Server = opts.tls ? createHttpsServer(opts.tls, onRequest) : createHttpServer(onRequest);
  server.on(opts.tls ? 'secureConnection' : 'connection', (s: import('node:net').Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port, seen,
    get connections() { return connections; },
    get open() { return sockets.size; },
    set handle(h: Handler) { handle = h; },
  };
}

const never = (): AbortSignal => new AbortController().signal;
const closeAfter = (t: Test, p: HttpPost): HttpPost => {
  t.teardown(() => p.close());
  return p;
};

t.test('http post - POST /v1/longpoll with the CBOR body and ferry-agent; 200 returns the body; connections kept alive', async (t) => {
  const s = await serve(t);
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7' }));
  t.equal(post.proxyUrl, undefined, 'no proxy in an empty environment');
  for (let i = 0; i < 3; i++) {
    const body = randomBytes(1000 + i);
    const r = await post(body, never());
    t.equal(r.status, 200);
    t.ok(Buffer.from(r.body).equals(body), 'the body came back whole');
    t.equal(r.retryAfterMs, undefined);
  }
  t.same(s.seen.map((x) => [x.method, x.url]), [['POST', '/v1/longpoll'], ['POST', '/v1/longpoll'], ['POST', '/v1/longpoll']]);
  t.equal(s.seen[0]!.headers['content-type'], 'application/cbor');
  t.equal(s.seen[0]!.headers['ferry-agent'], 'pi-7');
  t.equal(s.connections, 1, 'one connection for the three requests (keep-alive)');
});

t.test('http post - two requests held by the server do not block a third', async (t) => {
  const s = await serve(t);
  const held: ServerResponse[] = [];
  s.handle = (_req, body, res) => {
    if (body[0] === 1) held.push(res);
    else res.end(body);
  };
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7' }));
  const a = post(Buffer.from([1]), never());
  const b = post(Buffer.from([1]), never());
  const c = await post(Buffer.from([2]), never());
  t.equal(c.status, 200, 'a third request went while two were held');
  t.equal(held.length, 2);
  for (const r of held) r.end('x');
  t.same((await Promise.all([a, b])).map((r) => r.status), [200, 200]);
});

t.test('http post - refusals: status, body, retry-after from the JSON body or the Retry-After header', async (t) => {
  const s = await serve(t);
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7' }));
  const refusal = { code: ErrorCode.GATEWAY_BUSY, message: 'busy', retryAfterMs: 1500 };
  s.handle = (_req, _body, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' });
    res.end(JSON.stringify(refusal));
  };
  const busy = await post(Buffer.from([1]), never());
  t.equal(busy.status, 503);
  t.same(JSON.parse(Buffer.from(busy.body).toString()), refusal, 'the refusal body is returned as it came');
  t.equal(busy.retryAfterMs, 1500, 'the JSON body\'s ms win over the header\'s seconds');
  s.handle = (_req, _body, res) => {
    res.writeHead(429, { 'retry-after': '3' });
    res.end('slow down');
  };
  const slow = await post(Buffer.from([1]), never());
  t.equal(slow.status, 429);
  t.equal(slow.retryAfterMs, 3000, 'Retry-After in seconds');
  s.handle = (_req, _body, res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: ErrorCode.LONGPOLL_SESSION_UNKNOWN, message: 'gone' }));
  };
  const gone = await post(Buffer.from([1]), never());
  t.equal(gone.status, 404);
  t.equal(gone.retryAfterMs, undefined);
  t.equal(retryAfterHeaderMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10_000, 'an HTTP date');
  t.equal(retryAfterHeaderMs('soon', 0), undefined);
  t.equal(retryAfterHeaderMs('99999999', 0), 3_600_000, 'bounded to an hour');
});

t.test('http post - a response over responseBytesMax is refused (announced or streamed), the request destroyed', async (t) => {
  const s = await serve(t);
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7', responseBytesMax: 4096 }));
  s.handle = (_req, _body, res) => res.end(Buffer.alloc(4097));
  await t.rejects(post(Buffer.from([1]), never()), { code: ErrorCode.LONGPOLL_BODY_TOO_LARGE }, 'Content-Length over the limit');
  s.handle = (_req, _body, res) => {
    res.writeHead(200); // chunked: no length announced
    res.write(Buffer.alloc(3000));
    setTimeout(() => res.end(Buffer.alloc(3000)), 20);
  };
  await t.rejects(post(Buffer.from([1]), never()), { code: ErrorCode.LONGPOLL_BODY_TOO_LARGE }, 'streamed past the limit');
  s.handle = (_req, _body, res) => res.end(Buffer.alloc(4096));
  t.equal((await post(Buffer.from([1]), never())).body.length, 4096, 'exactly the limit is fine');
});

t.test('http post - no whole answer within timeoutMs rejects; an abort rejects and closes the connection', async (t) => {
  const s = await serve(t);
  s.handle = () => {}; // never answers
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7', timeoutMs: 200 }));
  await t.rejects(post(Buffer.from([1]), never()), /within 200 ms/);
  const slowPost = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7', timeoutMs: 60_000 }));
  const ac = new AbortController();
  const p = slowPost(Buffer.from([1]), ac.signal);
  while (s.seen.length < 2) await new Promise((r) => setTimeout(r, 5));
  ac.abort();
  await t.rejects(p, { name: 'AbortError' });
  for (let i = 0; i < 200 && s.open > 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(s.open, 0, 'the server saw the connections closed');
  await t.rejects(slowPost(Buffer.from([1]), ac.signal), { name: 'AbortError' }, 'an aborted signal rejects at once');
});

t.test('http post - a network error rejects', async (t) => {
  const s = await serve(t);
  const port = s.port;
  s.handle = (req) => req.socket.destroy();
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${port}`, { agentId: 'pi-7' }));
  await t.rejects(post(Buffer.from([1]), never()), /socket hang up|ECONNRESET/);
  t.throws(() => httpPost('tls://127.0.0.1:1', { agentId: 'x' }), { code: ErrorCode.CONFIG_INVALID });
});

t.test('http post - https: the gateway certificate is checked against tls.ca and the name', async (t) => {
  const certs = makeCerts(t.testdir({}));
  const s = await serve(t, { tls: { cert: readFileSync(certs.main.gateway.cert), key: readFileSync(certs.main.gateway.key) } });
  const ok = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7', tls: { ca: readFileSync(certs.main.ca) } }));
  t.equal((await ok(Buffer.from([1, 2]), never())).status, 200, 'trusted CA, IP in the certificate');
  const named = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7', tls: { ca: readFileSync(certs.main.ca), servername: 'localhost' } }));
  t.equal((await named(Buffer.from([1]), never())).status, 200, 'servername localhost is in the certificate');
  const systemCas = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7' }));
  await t.rejects(systemCas(Buffer.from([1]), never()), /certificate/i, 'a test CA is not among the system CAs');
  const otherCa = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7', tls: { ca: readFileSync(certs.other.ca) } }));
  await t.rejects(otherCa(Buffer.from([1]), never()), /certificate/i, 'another CA');
  const wrongName = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7', tls: { ca: readFileSync(certs.main.ca), servername: 'gw.example' } }));
  await t.rejects(wrongName(Buffer.from([1]), never()), /gw\.example|altnames|Hostname/i, 'a name the certificate does not carry');
  t.equal(s.seen.length, 2, 'only the two trusted requests got through');
});

t.test('http post - http:// through HTTP_PROXY (tinyproxy): the request goes by the proxy; NO_PROXY goes around it', async (t) => {
  const s = await serve(t);
  const proxy = await startTinyproxy({ connectPorts: [s.port] });
  t.teardown(() => proxy.stop());
  const post = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7', env: { HTTP_PROXY: proxy.url } }));
  t.equal(post.proxyUrl?.href, `${proxy.url}/`);
  const body = randomBytes(3000);
  for (let i = 0; i < 2; i++) {
    const r = await post(body, never());
    t.equal(r.status, 200);
    t.ok(Buffer.from(r.body).equals(body), 'the body came back whole through the proxy');
  }
  const target = `http://127.0.0.1:${s.port}/v1/longpoll`;
  t.equal(proxy.log().split(`POST ${target}`).length - 1, 2, 'the proxy log shows both requests');
  t.equal(s.seen[0]!.headers['ferry-agent'], 'pi-7', 'the header passed the proxy');
  const around = closeAfter(t, httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7', env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } }));
  t.equal(around.proxyUrl, undefined);
  await around(body, never());
  t.equal(s.seen.length, 3);
  t.equal(proxy.log().split(`POST ${target}`).length - 1, 2, 'not through the proxy');
});

t.test('http post - https:// through HTTPS_PROXY (tinyproxy CONNECT), the gateway certificate checked inside the tunnel', async (t) => {
  const certs = makeCerts(t.testdir({}));
  const s = await serve(t, { tls: { cert: readFileSync(certs.main.gateway.cert), key: readFileSync(certs.main.gateway.key) } });
  const proxy = await startTinyproxy({ connectPorts: [s.port] });
  t.teardown(() => proxy.stop());
  const env = { HTTPS_PROXY: proxy.url, HTTP_PROXY: 'http://127.0.0.1:1' };
  const post = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7', env, tls: { ca: readFileSync(certs.main.ca) } }));
  for (let i = 0; i < 3; i++) {
    const body = randomBytes(500);
    const r = await post(body, never());
    t.equal(r.status, 200);
    t.ok(Buffer.from(r.body).equals(body));
  }
  const connects = proxy.log().split(`CONNECT 127.0.0.1:${s.port}`).length - 1;
  t.ok(connects >= 1 && connects <= 3, `the proxy log shows the CONNECT tunnel (${connects})`);
  t.equal(s.seen.length, 3);
  const untrusted = closeAfter(t, httpPost(`https://127.0.0.1:${s.port}`, { agentId: 'pi-7', env, tls: { ca: readFileSync(certs.other.ca) } }));
  await t.rejects(untrusted(Buffer.from([1]), never()), /certificate/i, 'the certificate is still checked through the tunnel');
  t.equal(s.seen.length, 3);
});

t.test('http post - close waits for the requests in flight (a session\'s last one carries end), then drops the connections', async (t) => {
  const s = await serve(t);
  const held: ServerResponse[] = [];
  s.handle = (_req, _body, res) => held.push(res);
  const post = httpPost(`http://127.0.0.1:${s.port}`, { agentId: 'pi-7' });
  const p = post(Buffer.from([1]), never());
  while (held.length < 1) await new Promise((r) => setTimeout(r, 5));
  post.close();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(s.open, 1, 'the connection in use is kept');
  held[0]!.end('done');
  t.equal(Buffer.from((await p).body).toString(), 'done', 'the request in flight finished');
  for (let i = 0; i < 200 && s.open > 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(s.open, 0, 'then the kept-alive connection was closed');
});
