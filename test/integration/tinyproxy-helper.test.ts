/**
 * test/helpers/tinyproxy.ts: a real tinyproxy passes a plain HTTP GET (absolute URI) and an HTTPS
 * request inside a CONNECT tunnel to local node:http(s) servers, logs both, refuses CONNECT to a
 * port it was not given, and is gone (process and temp dir) after stop(). Requests are made with
 * node:http and node:tls by hand, so this tests the helper and not agent/link/proxy.ts.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { makeCerts } from '../helpers/certs.js';
import { startTinyproxy } from '../helpers/tinyproxy.js';

function body(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return (server.address() as { port: number }).port;
}

/** Sends `CONNECT host:port` to the proxy; resolves with the status and, on 200, the tunnel socket. */
function connectVia(proxyPort: number, authority: string): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: authority, headers: { host: authority }, agent: false });
    req.once('connect', (res, socket) => resolve({ status: res.statusCode ?? 0, socket }));
    // tinyproxy answers a refused CONNECT with an error page: node reports it as a response.
    req.once('response', (res) => { res.resume(); resolve({ status: res.statusCode ?? 0, socket: res.socket }); });
    req.once('error', reject);
    req.end();
  });
}

t.test('tinyproxy helper - GET and CONNECT pass through, are logged, and stop() removes everything', async (t) => {
  const dir = t.testdir({});
  const certs = makeCerts(dir);
  const plain = createHttpServer((req, res) => res.end(`plain ${req.method} ${req.url}`));
  const secure = createHttpsServer({ cert: readFileSync(certs.main.gateway.cert), key: readFileSync(certs.main.gateway.key) },
    (req, res) => res.end(`secure ${req.method} ${req.url}`));
  const plainPort = await listen(plain);
  const securePort = await listen(secure);
  t.teardown(() => { plain.close(); secure.close(); });
  plain.keepAliveTimeout = secure.keepAliveTimeout = 100;

  const proxy = await startTinyproxy({ connectPorts: [securePort] });
  t.teardown(() => proxy.stop());
  t.match(proxy.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(readFileSync(join(proxy.dir, 'tinyproxy.pid'), 'utf8').trim(), String(proxy.pid), 'the PidFile names the process we spawned');

  // Plain HTTP: the request line carries the absolute URI.
  const target = `http://127.0.0.1:${plainPort}/hello?x=1`;
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    httpRequest({ host: '127.0.0.1', port: proxy.port, path: target, headers: { host: `127.0.0.1:${plainPort}` }, agent: false }, resolve).once('error', reject).end());
  t.equal(res.statusCode, 200);
  t.equal(await body(res), 'plain GET /hello?x=1', 'the GET reached the server through the proxy');

  // HTTPS: a CONNECT tunnel, then TLS with the gateway certificate inside it.
  const tunnel = await connectVia(proxy.port, `127.0.0.1:${securePort}`);
  t.equal(tunnel.status, 200, 'CONNECT to an allowed port is established');
  const sres = await new Promise<IncomingMessage>((resolve, reject) => httpsRequest({
    host: '127.0.0.1', port: securePort, path: '/secret', // no agent: createConnection is then used
    createConnection: () => tlsConnect({ socket: tunnel.socket, ca: readFileSync(certs.main.ca), servername: 'localhost' }),
  }, resolve).once('error', reject).end());
  t.equal(await body(sres), 'secure GET /secret', 'the HTTPS request went through the tunnel, certificate verified');

  // A port not in ConnectPort is refused by the proxy itself.
  const refused = await connectVia(proxy.port, `127.0.0.1:${plainPort}`);
  refused.socket.destroy();
  t.equal(refused.status, 403, 'CONNECT to a port not listed is refused (403)');

  const log = proxy.log();
  t.match(log, `Request (file descriptor`, 'the log has request lines');
  t.match(log, `GET ${target} HTTP/1.1`, 'the log shows the GET');
  t.match(log, `CONNECT 127.0.0.1:${securePort} HTTP/1.1`, 'the log shows the CONNECT');
  t.match(log, `Refused CONNECT method on port ${plainPort}`, 'the log shows the refused CONNECT');

  tunnel.socket.destroy();
  await proxy.stop();
  t.throws(() => process.kill(proxy.pid, 0), { code: 'ESRCH' }, 'the process is gone');
  t.notOk(existsSync(proxy.dir), 'the temp dir is removed');
  await proxy.stop();
  t.pass('stop() twice is fine');
});

t.test('tinyproxy helper - an empty connectPorts is refused (tinyproxy would allow every port)', async (t) => {
  await t.rejects(startTinyproxy({ connectPorts: [] }), /connectPorts is empty/);
});
