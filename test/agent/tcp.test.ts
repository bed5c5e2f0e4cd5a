/** The agent's dialer (agent/link/tcp.ts) against real sockets on 127.0.0.1: tcp:// and tls://, and how it fails. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tcpDialer, type DialerTls } from '../../agent/link/tcp.js';
import { encodeFrame } from '../../protocol/codec.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { makeCerts } from '../helpers/certs.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const certs = makeCerts(t.testdir());
const trustMain: DialerTls = { ca: readFileSync(certs.main.ca) };

/** Listens on 127.0.0.1:0; every connection is sent one PONG frame. */
async function serve(t: Test, server: Server, event = 'connection'): Promise<number> {
  server.on(event, (s: import('node:net').Socket) => {
    s.on('error', () => undefined);
    s.write(encodeFrame({ t: FrameType.PONG, id: 1 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

const tlsServer = (): Server => createTlsServer({ cert: readFileSync(certs.main.gateway.cert), key: readFileSync(certs.main.gateway.key) });

async function firstFrame(url: string, tls?: DialerTls): Promise<Frame | null> {
  const tr = await tcpDialer(url, { connectTimeoutMs: 3000, ...(tls ? { tls } : {}) })();
  const f = await new Promise<Frame | null>((resolve) => {
    tr.onFrame(resolve);
    void tr.closed.then(() => resolve(null));
  });
  tr.close();
  return f;
}

async function failure(url: string, tls?: DialerTls, connectTimeoutMs = 3000): Promise<unknown> {
  return tcpDialer(url, { connectTimeoutMs, ...(tls ? { tls } : {}) })().then((tr) => {
    tr.close();
    return null;
  }, (e: unknown) => e);
}

t.test('tcp dialer - tcp:// carries frames', async (t) => {
  const port = await serve(t, createServer());
  t.same(await firstFrame(`tcp://127.0.0.1:${port}`), { t: FrameType.PONG, id: 1 });
});

t.test('tcp dialer - tls:// verifies the gateway against tls.ca, by IP address and by name', async (t) => {
  const port = await serve(t, tlsServer(), 'secureConnection');
  t.same(await firstFrame(`tls://127.0.0.1:${port}`, trustMain), { t: FrameType.PONG, id: 1 }, 'IP SAN 127.0.0.1');
  t.same(await firstFrame(`tls://localhost:${port}`, trustMain), { t: FrameType.PONG, id: 1 }, 'DNS SAN localhost');
  t.same(await firstFrame(`tls://127.0.0.1:${port}`, { ...trustMain, servername: 'localhost' }), { t: FrameType.PONG, id: 1 }, 'servername localhost');
});

t.test('tcp dialer - TLS_FAILED, with the cause, for a gateway certificate that does not check out', async (t) => {
  const port = await serve(t, tlsServer(), 'secureConnection');
  const cases: [string, DialerTls | undefined, RegExp][] = [
    ['signed by a CA the agent does not trust', { ca: readFileSync(certs.other.ca) }, /self-signed certificate in certificate chain|unable to verify/],
    ['no tls.ca: the system CAs do not know the test CA', undefined, /certificate/],
    ['a name the certificate does not carry', { ...trustMain, servername: 'gateway.example.com' }, /altnames|does not match/i],
  ];
  for (const [what, tls, cause] of cases) {
    const err = await failure(`tls://127.0.0.1:${port}`, tls);
    t.ok(err instanceof FerryError && err.code === ErrorCode.TLS_FAILED, `${what}: TLS_FAILED`);
    t.match((err as Error).message, cause, `${what}: ${(err as Error).message}`);
  }
});

t.test('tcp dialer - tls:// to a plaintext port fails with TLS_FAILED', async (t) => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const err = await failure(`tls://127.0.0.1:${(server.address() as AddressInfo).port}`, trustMain);
  t.ok(err instanceof FerryError && err.code === ErrorCode.TLS_FAILED, `TLS_FAILED: ${(err as Error).message}`);
});

t.test('tcp dialer - a refused connection is not a TLS failure', async (t) => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const err = await failure(`tls://127.0.0.1:${port}`, trustMain);
  t.equal((err as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  t.notOk(err instanceof FerryError);
});

t.test('tcp dialer - a handshake that never completes is bounded by connectTimeoutMs', async (t) => {
  const silent = createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    silent.close();
  });
  const err = await failure(`tls://127.0.0.1:${(silent.address() as AddressInfo).port}`, trustMain, 200);
  t.match((err as Error).message, /timed out after 200 ms \(during the TLS handshake\)/);
  silent.unref();
});

t.test('tcp dialer - other URL schemes are refused', async (t) => {
  t.throws(() => tcpDialer('http://127.0.0.1:1'), { code: ErrorCode.CONFIG_INVALID });
});
