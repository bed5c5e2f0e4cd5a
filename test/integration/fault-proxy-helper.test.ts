/**
 * The seeded TCP fault proxy (test/helpers/fault-proxy.ts) against a plain echo server on
 * loopback. Prints its seed; replay with SEED=<n>.
 */
import t, { type Test } from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import { chooseFault, startFaultProxy, type Fault, type FaultProxy, type ProxiedConnection } from '../helpers/fault-proxy.js';
import { prng, testSeed } from '../helpers/seed.js';

const seed = testSeed((msg) => t.comment(`fault proxy ${msg}`));

/** An echo server that remembers each accepted socket and whether it saw an end or a close. */
async function startEcho(t: Test): Promise<{ port: number; peers: { socket: Socket; ended: boolean; closed: boolean }[] }> {
  const peers: { socket: Socket; ended: boolean; closed: boolean }[] = [];
  const server = createServer((socket) => {
    const peer = { socket, ended: false, closed: false };
    peers.push(peer);
    socket.on('error', () => {});
    socket.on('end', () => void (peer.ended = true));
    socket.on('close', () => void (peer.closed = true));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => {
    for (const p of peers) p.socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('echo server has no TCP address');
  return { port: address.port, peers };
}

interface Client { socket: Socket; received: () => Buffer; closed: boolean; ended: boolean }

async function dial(port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  const c: Client = { socket, received: () => Buffer.concat(chunks), closed: false, ended: false };
  socket.on('data', (b: Buffer) => chunks.push(b));
  socket.on('error', () => {});
  socket.on('end', () => void (c.ended = true));
  socket.on('close', () => void (c.closed = true));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return c;
}

async function until(what: string, check: () => boolean, msMax = 15_000): Promise<void> {
  const deadline = Date.now() + msMax;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${msMax} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function payload(rng: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng() * 256);
  return b;
}

/** Writes `bytes` in random chunks of 1..chunkMax bytes. */
function writeChunked(socket: Socket, bytes: Buffer, rng: () => number, chunkMax = 9000): void {
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(rng() * chunkMax);
    socket.write(bytes.subarray(at, at + n));
    at += n;
  }
}

function isPrefix(got: Buffer, of: Buffer): boolean {
  return got.length <= of.length && got.equals(of.subarray(0, got.length));
}

async function rig(t: Test, rngSeed: number, extra: Partial<Parameters<typeof startFaultProxy>[0]> = {}): Promise<{ proxy: FaultProxy; echo: Awaited<ReturnType<typeof startEcho>> }> {
  const echo = await startEcho(t);
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port }, rng: prng(rngSeed), ...extra });
  t.teardown(() => proxy.close());
  return { proxy, echo };
}

t.test('fault proxy - clean mode passes bytes intact and in order both ways', async (t) => {
  const rng = prng(seed ^ 0xc1ea);
  const { proxy, echo } = await rig(t, seed);
  proxy.setMode('clean');
  const c = await dial(proxy.port);
  const conn = await proxy.nextConnection();
  t.same(conn.fault, { kind: 'clean' }, 'the connection got the clean fault');
  const sent = payload(rng, 300_000);
  writeChunked(c.socket, sent, rng);
  await until('the whole echo', () => c.received().length >= sent.length);
  t.ok(c.received().equals(sent), `${sent.length} bytes came back unchanged`);
  t.strictSame(conn.forwarded, { up: sent.length, down: sent.length }, 'every byte forwarded once each way');
  c.socket.end();
  await conn.closed;
  await until('both ends to close', () => c.closed && echo.peers[0]?.closed === true);
  t.pass('an end passes through and both sides close');
  t.match(proxy.stats, { connections: 1, open: 0, chosen: { clean: 1 }, applied: { cut: 0, stall: 0, blackhole: 0 }, dropped: 0 });
});

t.test('fault proxy - a target that refuses the connection closes the client', async (t) => {
  const closedServer = createServer();
  await new Promise<void>((resolve) => closedServer.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const { port } = closedServer.address() as { port: number };
  await new Promise<void>((resolve) => closedServer.close(() => resolve()));
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, rng: prng(seed) });
  t.teardown(() => proxy.close());
  const c = await dial(proxy.port);
  await until('the client to be closed', () => c.closed);
  t.equal(proxy.stats.targetErrors, 1, 'counted as a target error');
});

t.test('fault proxy - a cut closes both sides, mid-stream at its exact byte onset', async (t) => {
  const rng = prng(seed ^ 0xc07);
  const { proxy, echo } = await rig(t, seed);
  for (const reset of [false, true]) {
    const onsetBytes = 1 + Math.floor(rng() * 5000);
    proxy.planNext({ kind: 'cut', onset: { bytes: onsetBytes, direction: 'up' }, reset });
    const c = await dial(proxy.port);
    const conn = await proxy.nextConnection();
    const sent = payload(rng, 20_000);
    writeChunked(c.socket, sent, rng, 3000);
    await until('the client to close', () => c.closed);
    await conn.closed;
    const peer = echo.peers.at(-1);
    await until('the echo side to close', () => peer?.closed === true);
    t.equal(conn.forwarded.up, onsetBytes, `${reset ? 'reset' : 'close'}: exactly ${onsetBytes} bytes went up before the cut`);
    t.ok(isPrefix(c.received(), sent) && c.received().length <= onsetBytes, `${reset ? 'reset' : 'close'}: the client got a prefix of its bytes (${c.received().length})`);
    t.equal(conn.phase, 'active');
  }
  proxy.planNext({ kind: 'cut', onset: { ms: 30 }, reset: false });
  const idle = await dial(proxy.port);
  await until('an idle connection to be cut by time', () => idle.closed);
  t.equal(proxy.stats.applied.cut, 3, 'three cuts applied');
  await until('every link to close', () => proxy.stats.open === 0);
  t.pass('nothing left open');
});

t.test('fault proxy - a stall delays but delivers intact and in order', async (t) => {
  const rng = prng(seed ^ 0x57a1);
  const { proxy } = await rig(t, seed);
  const stalls: Extract<Fault, { kind: 'stall' }>[] = [
    { kind: 'stall', onset: { bytes: 5000, direction: 'up' }, directions: ['up', 'down'], ms: 300 },
    { kind: 'stall', onset: { bytes: 3000, direction: 'down' }, directions: ['down'], ms: 200 },
    { kind: 'stall', onset: { ms: 0 }, directions: ['up'], ms: 200 },
  ];
  for (const fault of stalls) {
    proxy.planNext(fault);
    const c = await dial(proxy.port);
    const conn = await proxy.nextConnection();
    let atEnd = -1;
    proxy.events.once('fault', (_conn, phase) => {
      proxy.events.once('fault', (_c, p) => void (p === 'end' && (atEnd = c.received().length)));
      t.equal(phase, 'start', 'the stall starts');
    });
    if ('ms' in fault.onset) await until('the stall to start', () => conn.phase === 'active');
    const sent = payload(rng, 100_000);
    writeChunked(c.socket, sent, rng);
    await until('the whole echo', () => c.received().length >= sent.length);
    t.ok(c.received().equals(sent), `${JSON.stringify(fault.onset)} ${fault.directions.join('+')}: all ${sent.length} bytes came back unchanged`);
    const heldBack = 'bytes' in fault.onset ? fault.onset.bytes : 0;
    t.ok(atEnd >= 0 && atEnd <= heldBack, `when the stall ended the client had only ${atEnd} bytes (at most ${heldBack})`);
    t.equal(conn.phase, 'over');
    c.socket.destroy();
  }
  t.equal(proxy.stats.applied.stall, 3);
});

t.test('fault proxy - a blackhole drops everything after its onset and keeps both sockets open', async (t) => {
  const rng = prng(seed ^ 0xb1ac);
  const { proxy, echo } = await rig(t, seed);
  proxy.planNext({ kind: 'blackhole', onset: { bytes: 2000, direction: 'up' } });
  const c = await dial(proxy.port);
  const conn = await proxy.nextConnection();
  const sent = payload(rng, 20_000);
  writeChunked(c.socket, sent, rng, 4000);
  await until('every byte after the onset to be dropped', () => conn.dropped >= 18_000);
  const peer = echo.peers[0]!;
  peer.socket.write(Buffer.alloc(500, 7)); // from the target side too
  await until('the target-side bytes to be dropped', () => conn.dropped >= 18_500);
  await sleep(200);
  t.equal(conn.forwarded.up, 2000, 'exactly the bytes before the onset went up');
  t.ok(isPrefix(c.received(), sent) && c.received().length <= 2000, `the client got only a prefix of the echo (${c.received().length} bytes)`);
  t.notOk(c.closed || c.ended, 'the client sees neither an end nor a close');
  t.notOk(peer.closed || peer.ended, 'the target sees neither an end nor a close');
  t.equal(proxy.stats.open, 1, 'the connection stays open');

  c.socket.end(); // the client gives up: its own side closes, the target learns nothing
  await until('the client side to close', () => c.closed);
  await sleep(100);
  t.notOk(peer.closed || peer.ended, 'the client giving up does not reach the target');
  peer.socket.end(); // the target gives up too: the connection is over
  await conn.closed;
  t.equal(proxy.stats.open, 0, 'once both peers gave up the connection is closed');

  proxy.planNext({ kind: 'blackhole', onset: { ms: 0 } });
  const c2 = await dial(proxy.port);
  await until('a second blackhole to start', () => proxy.connections[1]?.phase === 'active');
  const peer2 = echo.peers[1]!;
  await proxy.close();
  await until('close() to destroy both sides', () => c2.closed && peer2.closed);
  t.pass('close() destroys both sides of a blackholed connection');
  const refused = await new Promise<boolean>((resolve) => connect({ host: '127.0.0.1', port: proxy.port }).once('error', () => resolve(true)).once('connect', () => resolve(false)));
  t.ok(refused, 'close() stops listening');
});

t.test('fault proxy - the same seed gives the same sequence of fault choices', async (t) => {
  const pure = (s: number, n: number) => { const rng = prng(s); return Array.from({ length: n }, () => chooseFault(rng)); };
  const a = pure(seed, 400);
  t.equal(JSON.stringify(pure(seed, 400)), JSON.stringify(a), 'chooseFault: same seed, same faults');
  t.not(JSON.stringify(pure(seed + 1, 400)), JSON.stringify(a), 'another seed, other faults');
  t.same(new Set(a.map((f) => f.kind)), new Set(['clean', 'cut', 'stall', 'blackhole']), 'every kind is drawn');

  // Through the proxy: the same sequence, and forcing a mode in the middle leaves later draws as they were.
  const runs: Fault[][] = [];
  for (const forced of [false, true]) {
    const { proxy } = await rig(t, seed);
    for (let i = 0; i < 12; i++) {
      if (forced) proxy.setMode(i < 4 ? 'random' : i < 8 ? 'clean' : 'random');
      const c = await dial(proxy.port);
      await proxy.nextConnection();
      c.socket.destroy();
    }
    runs.push(proxy.connections.map((conn: ProxiedConnection) => conn.fault));
    t.equal(proxy.stats.connections, 12);
  }
  t.strictSame(runs[0], a.slice(0, 12), 'the proxy draws what chooseFault draws');
  t.strictSame(runs[1]!.slice(0, 4), a.slice(0, 4), 'before setMode: the same faults');
  t.ok(runs[1]!.slice(4, 8).every((f) => f.kind === 'clean'), 'setMode("clean") forces clean');
  t.strictSame(runs[1]!.slice(8), a.slice(8, 12), 'after going back to random: the same faults as without the forced ones');
});

t.test('fault proxy - seeded rounds of random faults never alter, reorder or duplicate bytes', async (t) => {
  const rng = prng(seed ^ 0x20d5);
  const { proxy } = await rig(t, seed ^ 0x20d5, { onsetBytesMax: 8000, onsetMsMax: 40, stallMsMin: 10, stallMsMax: 80 });
  const rounds = 16;
  for (let round = 0; round < rounds; round++) {
    const c = await dial(proxy.port);
    const conn = await proxy.nextConnection();
    const sent = payload(rng, 8000 + Math.floor(rng() * 30_000));
    writeChunked(c.socket, sent, rng, 4000);
    const blackholed = () => conn.fault.kind === 'blackhole' && conn.phase === 'active' && conn.forwarded.down + conn.dropped >= sent.length;
    await until(`round ${round} (${JSON.stringify(conn.fault)}) to settle`, () => c.received().length >= sent.length || c.closed || blackholed());
    const got = c.received();
    if (!isPrefix(got, sent)) t.fail(`round ${round} (${JSON.stringify(conn.fault)}): ${got.length} bytes back that are not a prefix of the ${sent.length} sent`);
    if ((conn.fault.kind === 'clean' || conn.fault.kind === 'stall') && !got.equals(sent)) t.fail(`round ${round}: ${conn.fault.kind} lost bytes`);
    c.socket.destroy();
    conn.destroy();
    await conn.closed;
  }
  t.comment(`faults: ${JSON.stringify(proxy.stats.chosen)}, applied: ${JSON.stringify(proxy.stats.applied)}`);
  t.equal(proxy.stats.connections, rounds, `${rounds} rounds, every echo a prefix of what was sent`);
});
