/** The gateway's listeners over real sockets on 127.0.0.1: TLS, the plaintext refusal, client certificates, admission. */
import t from 'tap';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { tcpDialer, type DialerTls } from '../../agent/link/tcp.js';
import { createLog } from '../../common/log.js';
import { listen, type ListenOptions, type Listener } from '../../gateway/listener.js';
import { FrameDecoder, frameHeaderBytes } from '../../protocol/codec.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { helloFrameBytesMax } from '../../protocol/limits.js';
import { FrameType, type ByeFrame, type Frame } from '../../protocol/frames.js';
import { loadTlsFiles } from '../../protocol/tls-files.js';
import type { Transport } from '../../protocol/transport.js';
import { makeCerts } from '../helpers/certs.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const certs = makeCerts(t.testdir());
const gatewayFiles = loadTlsFiles({ cert: certs.main.gateway.cert, key: certs.main.gateway.key });
const gatewayFilesWithCa = loadTlsFiles({ cert: certs.main.gateway.cert, key: certs.main.gateway.key, ca: certs.main.ca });
const trustMain: DialerTls = { ca: readFileSync(certs.main.ca) };

interface Rig {
  listener: Listener;
  transports: Transport[];
  logLines: string[];
  /** the next transport handed to onTransport */
  next(): Promise<Transport>;
}

async function start(t: Test, opts: Partial<ListenOptions> = {}): Promise<Rig> {
  const transports: Transport[] = [];
  const logLines: string[] = [];
  let waiting: ((tr: Transport) => void) | null = null;
  const listener = await listen({
    tcp: '127.0.0.1:0', tls: '127.0.0.1:0', tlsFiles: gatewayFiles,
    log: createLog({ write: (l) => logLines.push(l) }),
    ...opts,
    limits: { connectionsMax: 100, connectionsPerAddressMax: 100, sessionsPerSecondMax: 1000, frameBytesMax: 1 << 20, handshakeTimeoutMs: 2000, ...opts.limits },
  }, (tr) => {
    transports.push(tr);
    // The session's stand-in: answers a PING so a client can see the tunnel works end to end.
    tr.onFrame((f) => { if (f.t === FrameType.PING) tr.send({ t: FrameType.PONG, id: f.id }); });
    waiting?.(tr);
    waiting = null;
  });
  t.teardown(async () => {
    for (const tr of transports) tr.close();
    await listener.close();
  });
  return {
    listener, transports, logLines,
    next: () => new Promise((resolve) => (waiting = resolve)),
  };
}

async function dial(t: Test, url: string, tls?: DialerTls): Promise<Transport> {
  const tr = await tcpDialer(url, { connectTimeoutMs: 3000, ...(tls ? { tls } : {}) })();
  t.teardown(() => tr.close());
  return tr;
}

/** The first frame the transport receives, or null if it closes first. */
function firstFrame(tr: Transport): Promise<Frame | null> {
  return new Promise((resolve) => {
    tr.onFrame(resolve);
    void tr.closed.then(() => resolve(null));
  });
}

async function ping(tr: Transport): Promise<Frame | null> {
  const f = firstFrame(tr);
  tr.send({ t: FrameType.PING, id: 7 });
  return f;
}

const byeOf = (f: Frame | null): ByeFrame | null => (f?.t === FrameType.BYE ? f : null);

/** Dials a TLS URL that the gateway is expected to refuse at accept; resolves with the dial error's code. */
async function dialRefusedBeforeHandshake(url: string): Promise<string> {
  const err = await tcpDialer(url, { connectTimeoutMs: 3000, tls: trustMain })().then((tr) => {
    tr.close();
    return null;
  }, (e: unknown) => e);
  return err instanceof FerryError ? err.code : `no error: ${String(err)}`;
}

t.test('listener - a TLS client that trusts the CA gets a working tunnel; peer says tls, no certificate', async (t) => {
  const rig = await start(t);
  const handed = rig.next();
  const tr = await dial(t, `tls://127.0.0.1:${rig.listener.ports.tls}`, trustMain);
  t.same(await ping(tr), { t: FrameType.PONG, id: 7 }, 'PING answered over TLS');
  t.same((await handed).peer, { address: '127.0.0.1', tls: true });
});

t.test('listener - the plaintext port still works, peer says tls false', async (t) => {
  const rig = await start(t);
  const handed = rig.next();
  const tr = await dial(t, `tcp://127.0.0.1:${rig.listener.ports.tcp}`);
  t.same(await ping(tr), { t: FrameType.PONG, id: 7 });
  t.same((await handed).peer, { address: '127.0.0.1', tls: false });
});

t.test('listener - a plaintext client on the TLS port gets a plaintext BYE TLS_REQUIRED and is closed', async (t) => {
  const rig = await start(t);
  const tr = await dial(t, `tcp://127.0.0.1:${rig.listener.ports.tls}`);
  const bye = byeOf(await ping(tr));
  t.equal(bye?.code, ErrorCode.TLS_REQUIRED);
  t.match(bye?.reason, /tls:\/\//, 'the reason says what to use');
  await tr.closed;
  t.equal(rig.transports.length, 0, 'nothing was handed to a session');
  t.ok(rig.logLines.some((l) => l.includes('"code":"TLS_REQUIRED"')), 'logged with TLS_REQUIRED');
});

t.test('listener - an agent trusting another CA fails with TLS_FAILED; the gateway logs TLS_FAILED', async (t) => {
  const rig = await start(t);
  const err = await tcpDialer(`tls://127.0.0.1:${rig.listener.ports.tls}`, { tls: { ca: readFileSync(certs.other.ca) } })().then(() => null, (e: unknown) => e);
  t.ok(err instanceof FerryError && err.code === ErrorCode.TLS_FAILED, `TLS_FAILED: ${(err as Error)?.message}`);
  t.match((err as Error).message, /TLS handshake with 127\.0\.0\.1:\d+ failed: .*certificate/, 'the message carries the cause');
  await waitFor(() => rig.logLines.some((l) => l.includes('"code":"TLS_FAILED"')));
  t.pass('gateway logged TLS_FAILED');
  t.equal(rig.transports.length, 0);
});

t.test('listener - with tls.ca, a verified client certificate CN reaches peer.certSubject', async (t) => {
  const rig = await start(t, { tlsFiles: gatewayFilesWithCa });
  const client = certs.main.client('pi-7');
  const handed = rig.next();
  const tr = await dial(t, `tls://127.0.0.1:${rig.listener.ports.tls}`, { ...trustMain, cert: readFileSync(client.cert), key: readFileSync(client.key) });
  t.same(await ping(tr), { t: FrameType.PONG, id: 7 });
  t.same((await handed).peer, { address: '127.0.0.1', tls: true, certSubject: 'pi-7' });
});

t.test('listener - a client certificate from another CA connects but carries no certSubject', async (t) => {
  const rig = await start(t, { tlsFiles: gatewayFilesWithCa });
  const stranger = certs.other.client('pi-7');
  const handed = rig.next();
  const tr = await dial(t, `tls://127.0.0.1:${rig.listener.ports.tls}`, { ...trustMain, cert: readFileSync(stranger.cert), key: readFileSync(stranger.key) });
  t.same(await ping(tr), { t: FrameType.PONG, id: 7 });
  t.same((await handed).peer, { address: '127.0.0.1', tls: true }, 'unverified: the session sees no certificate');
});

t.test('listener - without tls.ca, a client certificate is not asked for and not used', async (t) => {
  const rig = await start(t);
  const client = certs.main.client('pi-7');
  const handed = rig.next();
  const tr = await dial(t, `tls://127.0.0.1:${rig.listener.ports.tls}`, { ...trustMain, cert: readFileSync(client.cert), key: readFileSync(client.key) });
  t.same(await ping(tr), { t: FrameType.PONG, id: 7 });
  t.same((await handed).peer, { address: '127.0.0.1', tls: true });
});

for (const port of ['tcp', 'tls'] as const) {
  const refusal = port === 'tls' ? 'is closed before the handshake' : 'gets BYE';
  t.test(`listener - ${port}: the connection past connectionsPerAddressMax ${refusal} CONNECTIONS_PER_ADDRESS; a closed one frees its place`, async (t) => {
    const rig = await start(t, { limits: { connectionsPerAddressMax: 2 } as ListenOptions['limits'] });
    const url = `${port}://127.0.0.1:${rig.listener.ports[port]}`;
    const tls = port === 'tls' ? trustMain : undefined;
    const a = await dial(t, url, tls);
    const b = await dial(t, url, tls);
    t.same(await ping(a), { t: FrameType.PONG, id: 7 });
    t.same(await ping(b), { t: FrameType.PONG, id: 7 });
    if (port === 'tls') {
      t.equal(await dialRefusedBeforeHandshake(url), ErrorCode.TLS_FAILED, 'closed before any handshake: the client sees a failed handshake');
    } else {
      const c = await dial(t, url, tls);
      const bye = byeOf(await ping(c));
      t.equal(bye?.code, ErrorCode.CONNECTIONS_PER_ADDRESS);
      t.match(bye?.reason, /127\.0\.0\.1 already holds 2 connections/);
      t.equal(bye?.retryAfterMs, undefined);
      await c.closed;
    }
    t.ok(rig.logLines.some((l) => l.includes('"code":"CONNECTIONS_PER_ADDRESS"')), 'logged with its code');
    a.close();
    await waitFor(() => rig.listener.stats().connections === 1);
    const d = await dial(t, url, tls);
    t.same(await ping(d), { t: FrameType.PONG, id: 7 }, 'admitted again');
    t.equal(rig.listener.stats().refused[ErrorCode.CONNECTIONS_PER_ADDRESS], 1);
  });

  t.test(`listener - ${port}: a storm beyond sessionsPerSecondMax ${port === 'tls' ? 'is closed before the handshake' : 'gets BYE GATEWAY_BUSY with a jittered retryAfterMs'}`, async (t) => {
    let now = 0;
    const rig = await start(t, { now: () => now, rng: () => 0.25, limits: { sessionsPerSecondMax: 3, sessionsPerAddressPerSecondMax: 3 } as ListenOptions['limits'] });
    const url = `${port}://127.0.0.1:${rig.listener.ports[port]}`;
    const tls = port === 'tls' ? trustMain : undefined;
    for (let i = 0; i < 3; i++) t.same(await ping(await dial(t, url, tls)), { t: FrameType.PONG, id: 7 }, `connection ${i + 1} admitted`);
    if (port === 'tls') {
      t.equal(await dialRefusedBeforeHandshake(url), ErrorCode.TLS_FAILED);
    } else {
      const busy = byeOf(await ping(await dial(t, url, tls)));
      t.equal(busy?.code, ErrorCode.GATEWAY_BUSY);
      t.equal(busy?.retryAfterMs, 2000, 'rng 0.25 → 1000 + 0.25 × 4000');
    }
    t.equal(rig.listener.stats().refused[ErrorCode.GATEWAY_BUSY], 1);
    now += 1000;
    t.same(await ping(await dial(t, url, tls)), { t: FrameType.PONG, id: 7 }, 'admitted again a second later');
  });
}

t.test('listener - past connectionsMax a new socket is closed at once, without a frame', async (t) => {
  const rig = await start(t, { limits: { connectionsMax: 1 } as ListenOptions['limits'] });
  const a = await dial(t, `tcp://127.0.0.1:${rig.listener.ports.tcp}`);
  t.same(await ping(a), { t: FrameType.PONG, id: 7 });
  const b = await dial(t, `tcp://127.0.0.1:${rig.listener.ports.tcp}`);
  t.equal(await ping(b), null, 'closed, no BYE');
  t.equal(rig.listener.stats().refused.connectionsMax, 1);
});

t.test('listener - a TLS-port client that sends nothing is closed after the handshake time-out', async (t) => {
  const rig = await start(t, { limits: { handshakeTimeoutMs: 200 } as ListenOptions['limits'] });
  const socket = connect({ host: '127.0.0.1', port: rig.listener.ports.tls! });
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  t.pass('closed by the gateway');
});

t.test('listener - close() stops accepting and ends connections not handed on', async (t) => {
  const transports: Transport[] = [];
  const listener = await listen({
    tls: '127.0.0.1:0', tlsFiles: gatewayFiles, log: createLog({ write: () => undefined }),
    limits: { connectionsMax: 10, connectionsPerAddressMax: 10, sessionsPerSecondMax: 10, frameBytesMax: 1 << 20, handshakeTimeoutMs: 60_000 },
  }, (tr) => transports.push(tr));
  const idle = connect({ host: '127.0.0.1', port: listener.ports.tls! });
  t.teardown(() => idle.destroy());
  await new Promise((r) => idle.once('connect', r));
  await waitFor(() => listener.stats().connections === 1);
  const closedIdle = new Promise<void>((resolve) => idle.once('close', () => resolve()));
  await listener.close();
  await closedIdle;
  t.equal(transports.length, 0);
});

t.test('listener - listen.tls without a certificate is refused', async (t) => {
  await t.rejects(listen({
    tls: '127.0.0.1:0', log: createLog({ write: () => undefined }),
    limits: { connectionsMax: 10, connectionsPerAddressMax: 10, sessionsPerSecondMax: 10, frameBytesMax: 1 << 20, handshakeTimeoutMs: 1000 },
  }, () => undefined), /needs tlsFiles/);
});

async function waitFor(check: () => boolean, msMax = 5000): Promise<void> {
  const end = Date.now() + msMax;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with what `socket` received once it closed; rejects after `msMax` if it stays open. */
function receivedUntilClose(socket: import('node:net').Socket, msMax = 5000): Promise<Buffer> {
  const got: Buffer[] = [];
  socket.on('data', (b: Buffer) => got.push(b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${msMax} ms`)), msMax);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
  });
}

// Issue 9, case 7: before HELLO a connection is unauthenticated, and a HELLO is small; a large
// announced frame trickled a byte per read once made the gateway hold every read as a Buffer.
for (const [port, tls] of [['tcp', false], ['tls', true]] as const) {
  t.test(`listener - ${port}: a first frame announced over helloFrameBytesMax, trickled a byte per read, gets BYE FRAME_TOO_LARGE at its 4th byte`, async (t) => {
    const rig = await start(t);
    const handed = rig.next();
    const socket = tls
      ? tlsConnect({ host: '127.0.0.1', port: rig.listener.ports.tls!, ca: trustMain.ca!, servername: 'localhost' })
      : connect({ host: '127.0.0.1', port: rig.listener.ports.tcp! });
    socket.on('error', () => undefined);
    t.teardown(() => socket.destroy());
    await new Promise((r) => socket.once(tls ? 'secureConnect' : 'connect', r));
    const tr = await handed;
    const closed = receivedUntilClose(socket);
    const h = Buffer.alloc(frameHeaderBytes);
    h.writeUInt32BE(helloFrameBytesMax + 1, 0);
    let sent = 0;
    for (const byte of h) {
      socket.write(Buffer.of(byte));
      sent++;
      await new Promise((r) => setTimeout(r, 10)); // one read each (pacing, not a timing assertion)
    }
    const bytes = await closed;
    t.equal(sent, frameHeaderBytes, 'refused on the header alone: no body byte was needed');
    t.same(new FrameDecoder().push(bytes).map((f) => (f.t === FrameType.BYE ? f.code : f.t)), [ErrorCode.FRAME_TOO_LARGE], 'a BYE says why');
    t.equal(((await tr.closed) as FerryError | undefined)?.code, ErrorCode.FRAME_TOO_LARGE, 'the transport closed with FRAME_TOO_LARGE');
  });
}

t.test('listener - after a first frame within helloFrameBytesMax, frames up to frameBytesMax are read', async (t) => {
  const rig = await start(t);
  const tr = await dial(t, `tcp://127.0.0.1:${rig.listener.ports.tcp}`);
  t.same(await ping(tr), { t: FrameType.PONG, id: 7 }, 'a small first frame');
  const answered = firstFrame(tr);
  tr.send({ t: FrameType.DATA, packets: [{ seq: 1, target: 'a', ts: 0, data: new Uint8Array(64 * 1024) }] });
  tr.send({ t: FrameType.PING, id: 8 });
  t.same(await answered, { t: FrameType.PONG, id: 8 }, 'a 64 KiB frame later is read, and the connection goes on');
});
