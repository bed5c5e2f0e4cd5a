/**
 * SocketTransport's write back-pressure over real sockets on 127.0.0.1 (issue 9, case 8): a peer
 * that does not read must not grow the write queue without bound. The peer here is a raw socket
 * the test never reads from; the stall timer runs on a FakeClock.
 */
import t from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import { encodeFrame } from '../../protocol/codec.js';
import { ErrorCode, type FerryError } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { SocketTransport, type SocketTransportOptions } from '../../protocol/socket-transport.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { turn, until } from '../helpers/wait.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** A connected pair: `server` is the transport under test, `peer` a raw socket that reads nothing until told. */
async function pair(t: Test, opts: SocketTransportOptions): Promise<{ tr: SocketTransport; socket: Socket; peer: Socket; frames: Frame[] }> {
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      server.close();
      resolve(s);
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      peerReady(connect({ host: '127.0.0.1', port }));
    });
  });
  let peerReady!: (s: Socket) => void;
  const peerP = new Promise<Socket>((r) => (peerReady = r));
  const [socket, peer] = await Promise.all([accepted, peerP]);
  peer.on('error', () => undefined);
  peer.pause();
  const tr = new SocketTransport(socket, opts);
  const frames: Frame[] = [];
  tr.onFrame((f) => frames.push(f));
  t.teardown(() => {
    tr.close();
    peer.destroy();
    socket.destroy();
  });
  return { tr, socket, peer, frames };
}

/** A DATA frame of about `bytes` (the transport does not check what it sends). */
const big = (bytes: number): Frame => ({ t: FrameType.DATA, packets: [{ seq: 1, target: 'a', ts: 0, data: new Uint8Array(bytes) }] });

/** Sends big frames, a turn apart (so each is flushed), until reading pauses; at most 64 MiB. */
async function fillUntilPaused(tr: SocketTransport): Promise<void> {
  for (let i = 0; i < 256 && !tr.stats().readingPaused; i++) {
    tr.send(big(256 * 1024));
    await turn();
  }
}

const high = 64 * 1024;

t.test('socket-transport - past writeQueueBytesHigh reading pauses; once the peer reads and the queue drains, reading resumes', async (t) => {
  const clock = new FakeClock();
  const { tr, socket, peer, frames } = await pair(t, { writeQueueBytesHigh: high, writeQueueBytesMax: 256 * 1024 * 1024, writeStallMs: 1000, clock });
  await fillUntilPaused(tr);
  t.ok(tr.stats().readingPaused, 'paused once the peer stopped reading');
  t.ok(tr.stats().writeQueueBytes > high, `queue ${tr.stats().writeQueueBytes} bytes, over the mark`);
  t.ok(socket.isPaused(), 'the socket itself reads nothing more');
  peer.write(encodeFrame({ t: FrameType.PING, id: 42 }));
  for (let i = 0; i < 20; i++) await turn();
  t.same(frames, [], 'a frame sent while paused is not read yet');

  peer.on('data', () => undefined); // the peer reads again
  peer.resume();
  await until(() => !tr.stats().readingPaused, 'reading resumes after the drain');
  await until(() => frames.length === 1, 'the PING sent meanwhile is read');
  t.same(frames, [{ t: FrameType.PING, id: 42 }]);
  t.equal(tr.stats().writeQueueBytes, 0);
  clock.advance(10_000);
  await turn();
  t.ok(!socket.destroyed, 'the stall timer was cleared: the connection stays');
});

t.test('socket-transport - paused, and none of the queue taken for writeStallMs: closed with PEER_NOT_READING', async (t) => {
  const clock = new FakeClock();
  const { tr, socket } = await pair(t, { writeQueueBytesHigh: high, writeQueueBytesMax: 256 * 1024 * 1024, writeStallMs: 1000, clock });
  let closedWith: Error | undefined | null = null;
  void tr.closed.then((e) => (closedWith = e));
  await fillUntilPaused(tr);
  t.ok(tr.stats().readingPaused);
  clock.advance(999);
  await turn();
  t.equal(closedWith, null, 'not before writeStallMs');
  // The OS may still take a little (its buffers can grow): each step of progress buys another writeStallMs.
  for (let i = 0; i < 100 && closedWith === null; i++) {
    clock.advance(1000);
    await turn();
  }
  t.equal((closedWith as FerryError | null)?.code, ErrorCode.PEER_NOT_READING, 'closed with PEER_NOT_READING');
  t.ok(socket.destroyed, 'the socket is destroyed (a BYE could not get through)');
  tr.send({ t: FrameType.PING, id: 1 });
  t.equal(tr.stats().writeQueueBytes, 0, 'nothing is queued after the close');
});

t.test('socket-transport - a send that would pass writeQueueBytesMax closes at once with PEER_NOT_READING; the queue never passes it', async (t) => {
  const clock = new FakeClock();
  const max = 2 * 1024 * 1024;
  const { tr, socket } = await pair(t, { writeQueueBytesHigh: high, writeQueueBytesMax: max, writeStallMs: 1e9, clock });
  let closedWith: Error | undefined | null = null;
  void tr.closed.then((e) => (closedWith = e));
  // Frames sent in one turn (as a flood of PONGs would be): the limit holds before any is flushed.
  for (let i = 0; i < 4096 && closedWith === null; i++) {
    tr.send(big(64 * 1024));
    if (i % 8 === 7) await turn();
  }
  await turn();
  t.equal((closedWith as FerryError | null)?.code, ErrorCode.PEER_NOT_READING);
  t.ok(tr.stats().writeQueueBytesPeak <= max, `peak ${tr.stats().writeQueueBytesPeak} <= writeQueueBytesMax ${max}`);
  t.ok(socket.destroyed);
});

t.test('socket-transport - frames sent in one turn reach the peer in order, and close() sends what was queued before it', async (t) => {
  const { tr, peer } = await pair(t, {});
  const got: Buffer[] = [];
  peer.on('data', (b: Buffer) => got.push(b));
  peer.resume();
  for (let id = 1; id <= 100; id++) tr.send({ t: FrameType.PING, id });
  tr.send({ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'done' });
  tr.close();
  await new Promise((r) => peer.once('end', r));
  const want = Buffer.concat([...Array.from({ length: 100 }, (_, i) => encodeFrame({ t: FrameType.PING, id: i + 1 })), encodeFrame({ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'done' })]);
  t.ok(Buffer.concat(got).equals(want), 'every frame, in order, then the end');
});
