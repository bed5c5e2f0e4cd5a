/**
 * agent/link/proxy.ts through a real tinyproxy (test/helpers/tinyproxy.ts): long-poll-like POSTs
 * with binary bodies reach a local node:http(s) server via the proxy named by HTTP_PROXY or
 * HTTPS_PROXY (CONNECT for https, with the gateway's certificate checked inside the tunnel), one
 * tunnel carries several requests, and NO_PROXY sends a request past the proxy.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Agent, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type RequestOptions } from 'node:https';
import { proxyFor, type ProxyEnv } from '../../agent/link/proxy.js';
import { makeCerts } from '../helpers/certs.js';
import { startTinyproxy } from '../helpers/tinyproxy.js';

/** An echo server: answers each request with its body, and `METHOD URL` in an x-seen header. */
function echo(req: IncomingMessage, res: import('node:http').ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('x-seen', `${req.method} ${req.url}`);
    res.end(Buffer.concat(chunks));
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return (server.address() as { port: number }).port;
}

/** POSTs `data` to `url` with `agent` (or node's default) and resolves with what came back. */
function post(url: string, data: Buffer, agent: Agent | undefined, extra: RequestOptions = {}): Promise<{ status: number; seen: string; body: Buffer }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: 'POST', headers: { 'content-type': 'application/cbor', 'content-length': data.length }, ...(agent ? { agent } : { agent: false }), ...extra }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, seen: String(res.headers['x-seen']), body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.once('error', reject);
    req.end(data);
  });
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

t.test('agent proxy - https through HTTPS_PROXY: CONNECT, certificate checked, one tunnel for several requests', async (t) => {
  const certs = makeCerts(t.testdir({}));
  const gateway = createHttpsServer({ cert: readFileSync(certs.main.gateway.cert), key: readFileSync(certs.main.gateway.key) }, echo);
  const port = await listen(gateway);
  t.teardown(() => gateway.close());
  const proxy = await startTinyproxy({ connectPorts: [port] });
  t.teardown(() => proxy.stop());

  const url = `https://127.0.0.1:${port}/lp/session`;
  const env: ProxyEnv = { https_proxy: proxy.url, HTTP_PROXY: 'http://127.0.0.1:1' };
  const choice = proxyFor(url, env);
  if (choice.kind !== 'proxy') throw new Error('expected a proxy');
  t.teardown(() => choice.agent.destroy());
  const ca = readFileSync(certs.main.ca);
  for (let i = 0; i < 3; i++) {
    const data = randomBytes(1000 + i * 5000);
    const got = await post(url, data, choice.agent, { ca });
    t.equal(got.status, 200);
    t.equal(got.seen, 'POST /lp/session');
    t.ok(got.body.equals(data), `request ${i}: ${data.length} bytes went through and back unchanged`);
  }
  const log = proxy.log();
  t.equal(count(log, `CONNECT 127.0.0.1:${port} HTTP/1.1`), 1, 'one CONNECT carried all three requests (keep-alive)');

  // The gateway certificate is checked inside the tunnel: another CA's certificate fails.
  const strict = proxyFor(url, env);
  if (strict.kind !== 'proxy') throw new Error('expected a proxy');
  t.teardown(() => strict.agent.destroy());
  await t.rejects(post(url, Buffer.from('x'), strict.agent, { ca: readFileSync(certs.other.ca) }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'a gateway certificate from an unknown CA is refused through the proxy');
  t.equal(count(proxy.log(), `CONNECT 127.0.0.1:${port} HTTP/1.1`), 2, 'that attempt did go through the proxy');
});

t.test('agent proxy - http through HTTP_PROXY: absolute-URI requests back to back, logged by the proxy (tinyproxy closes each connection: no keep-alive)', async (t) => {
  const gateway = createHttpServer(echo);
  const port = await listen(gateway);
  t.teardown(() => gateway.close());
  const proxy = await startTinyproxy({ connectPorts: [port] });
  t.teardown(() => proxy.stop());

  const url = `http://127.0.0.1:${port}/lp/session?n=1`;
  const choice = proxyFor(url, { HTTP_PROXY: proxy.url, HTTPS_PROXY: 'http://127.0.0.1:1' });
  if (choice.kind !== 'proxy') throw new Error('expected a proxy');
  t.teardown(() => choice.agent.destroy());
  for (let i = 0; i < 3; i++) {
    const data = randomBytes(3000);
    const got = await post(url, data, choice.agent);
    t.equal(got.seen, 'POST /lp/session?n=1', 'the server saw the origin-form path');
    t.ok(got.body.equals(data), `request ${i}: the body went through and back unchanged`);
  }
  t.equal(count(proxy.log(), `POST ${url} HTTP/1.1`), 3, 'the proxy logged the three POSTs with the absolute URI');
});

t.test('agent proxy - NO_PROXY sends the request past the proxy', async (t) => {
  const gateway = createHttpServer(echo);
  const port = await listen(gateway);
  t.teardown(() => gateway.close());
  const proxy = await startTinyproxy({ connectPorts: [port] });
  t.teardown(() => proxy.stop());

  const url = `http://127.0.0.1:${port}/lp`;
  const choice = proxyFor(url, { HTTP_PROXY: proxy.url, NO_PROXY: `example.com, 127.0.0.1:${port}` });
  t.same(choice, { kind: 'direct' });
  const got = await post(url, Buffer.from('direct'), undefined);
  t.equal(got.body.toString(), 'direct');
  t.notMatch(proxy.log(), /Request \(file descriptor/, 'the proxy saw no request');
});
