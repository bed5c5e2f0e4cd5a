/**
 * Issue 9, case 8, over real sockets: the gateway's listener and real Sessions in this process, a
 * raw TCP client that says HELLO and then floods PINGs without ever reading the PONGs, and a
 * normal agent on the same gateway. The flooder's write queue stays bounded and it is ended with
 * PEER_NOT_READING; the normal agent keeps getting its packets acked meanwhile.
 */
import t from 'tap';
import { connect } from 'node:net';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import type { DispatchPacket, Handler } from '../../gateway/handlers/handler.js';
import { listen } from '../../gateway/listener.js';
import { Router } from '../../gateway/routes.js';
import { Session } from '../../gateway/session.js';
import { encodeFrame } from '../../protocol/codec.js';
import { ErrorCode, type FerryError } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import type { SocketTransport } from '../../protocol/socket-transport.js';
import { sayHello } from '../helpers/hello.js';
import { pollUntil } from '../helpers/wait.js';

const timedOut = Symbol('timed out');
/** `p`, or `timedOut` after `ms` (a bound against hanging on the old code, not a timing assertion). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<typeof timedOut>((resolve) => (timer = setTimeout(() => resolve(timedOut), ms)))]);
  clearTimeout(timer);
  return r;
}

const writeQueueBytesHigh = 64 * 1024;
const writeQueueBytesMax = 1024 * 1024;

t.test('peer-not-reading - a client that floods PINGs and never reads is bounded and ended with PEER_NOT_READING; another agent keeps working', async (t) => {
  const dispatchLog = await DispatchLog.open(t.testdir(), silentLog);
  t.teardown(() => dispatchLog.close());
  const delivered: number[] = [];
  const handler: Handler = { kind: 'test', handle: async (p: DispatchPacket) => (delivered.push(p.seq), { ok: true }), close: async () => undefined };
  const transports: SocketTransport[] = [];
  const listener = await listen({
    tcp: '127.0.0.1:0', log: silentLog,
    limits: {
      connectionsMax: 10, connectionsPerAddressMax: 10, sessionsPerSecondMax: 100, frameBytesMax: 1 << 20, handshakeTimeoutMs: 5000,
      writeQueueBytesHigh, writeQueueBytesMax, writeStallMs: 300,
    },
  }, (tr) => {
    transports.push(tr as SocketTransport);
    new Session(tr, {
      helloTimeoutMs: 60_000, peerTimeoutMs: 600_000, pingIntervalMs: 10_000, queuePacketsMax: 64, queueBytesMax: 1 << 20,
      targetQueuePacketsMax: 16, targetSlowMs: 60_000, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 1000, packetBytesMax: 64 * 1024,
    }, {
      clock: realClock, log: silentLog, dispatchLog, router: new Router([{ match: '#', handler }]), inDispatch: new Map(),
      counters: { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 }, newSessionId: () => `s${transports.length}`,
      register: () => ({ ok: true }), unregister: () => undefined,
    });
  });
  t.teardown(async () => {
    for (const tr of transports) tr.close();
    await listener.close();
  });
  const port = listener.ports.tcp!;

  // The flooder: HELLO, then PINGs in 64 KiB batches; it never reads (at most 32 MiB, so the old code ends too).
  const flooder = connect({ host: '127.0.0.1', port });
  flooder.on('error', () => undefined);
  flooder.pause();
  t.teardown(() => flooder.destroy());
  await new Promise((r) => flooder.once('connect', r));
  let flooderClosed = false;
  flooder.once('close', () => (flooderClosed = true));
  await pollUntil(() => transports.length === 1, 5000, 'the flooder handed over');
  const flooderTransport = transports[0]!;
  flooder.write(encodeFrame({ t: FrameType.HELLO, version: protocolVersion, agent: 'flooder', ackedSeq: 0 }));
  const ping = encodeFrame({ t: FrameType.PING, id: 1 });
  const batch = Buffer.concat(Array.from({ length: Math.floor(65536 / ping.length) }, () => ping));
  const flood = (async () => {
    let sent = 0;
    while (!flooderClosed && sent < 32 * 1024 * 1024) {
      sent += batch.length;
      if (!flooder.write(batch)) await new Promise((r) => { flooder.once('drain', r); flooder.once('close', r); });
    }
    return sent;
  })();

  // A normal agent on the same gateway, while the flood goes on.
  const good = await sayHello(t, `tcp://127.0.0.1:${port}`, { agent: 'good' });
  t.equal(good.first?.t, FrameType.WELCOME, 'the normal agent is welcomed');
  const acked = (seq: number): boolean => good.frames.some((f: Frame) => f.t === FrameType.ACK && f.seq >= seq);
  for (let seq = 1; seq <= 5; seq++) {
    good.tr.send({ t: FrameType.DATA, packets: [{ seq, target: 'a', ts: 0, data: seq }] });
    await pollUntil(() => acked(seq), 5000, `ACK of ${seq}`);
  }

  const closedWith = await within(flooderTransport.closed, 10_000);
  const sent = await within(flood, 10_000);
  t.equal(closedWith === timedOut ? 'still open' : (closedWith as FerryError | undefined)?.code, ErrorCode.PEER_NOT_READING, 'the flooder is ended with PEER_NOT_READING');
  const stats = flooderTransport.stats?.();
  t.ok(stats !== undefined && stats.writeQueueBytesPeak > writeQueueBytesHigh, `its queue reached the mark (peak ${stats?.writeQueueBytesPeak})`);
  t.ok(stats !== undefined && stats.writeQueueBytesPeak <= writeQueueBytesMax, `and never passed writeQueueBytesMax ${writeQueueBytesMax} (peak ${stats?.writeQueueBytesPeak})`);
  t.comment(`the flooder wrote ${String(sent)} bytes of PINGs before it was closed`);
  await pollUntil(() => flooderClosed, 5000, 'the flooder socket closed');

  good.tr.send({ t: FrameType.DATA, packets: [{ seq: 6, target: 'a', ts: 0, data: 6 }] });
  await pollUntil(() => acked(6), 5000, 'ACK of 6 after the flooder is gone');
  t.same(delivered, [1, 2, 3, 4, 5, 6], 'every packet of the normal agent was delivered');
  t.equal(transports[1]!.stats().readingPaused, false, 'the normal agent was never paused');
});
