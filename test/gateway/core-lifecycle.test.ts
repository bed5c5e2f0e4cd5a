/**
 * The gateway core's stop and reload (gateway/core.ts drain and replaceRoutes, gateway/route-table.ts),
 * over in-memory transports with handlers the test answers by hand.
 */
import t from 'tap';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type AckFrame, type Frame } from '../../protocol/frames.js';
import type { Packet } from '../../protocol/packet.js';
import { createGatewayCore, type CoreLimits } from '../../gateway/core.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import type { Handler } from '../../gateway/handlers/handler.js';
import { keysNeedingRestart } from '../../gateway/reload.js';
import { FakeHandler } from '../helpers/fake-handler.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { until } from '../helpers/wait.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

class ClosableHandler extends FakeHandler {
  closed = false;
  override async close(): Promise<void> {
    this.closed = true;
  }
}

const limits: CoreLimits = {
  helloTimeoutMs: 1e9, peerTimeoutMs: 1e9, pingIntervalMs: 15_000, sessionQueuePacketsMax: 16, sessionQueueBytesMax: 100_000,
  targetQueuePacketsMax: 4, targetSlowMs: 1e9, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 1000,
  packetBytesMax: 64 * 1024, agentsMax: 10,
};

async function core(t: Test, routes: { match: string; handler: Handler }[]) {
  // The real clock's timers are unref'd (sockets keep a gateway alive): keep this test's process up.
  const alive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(alive));
  let n = 0;
  const gw = await createGatewayCore({ clock: realClock, log: silentLog, dataDir: t.testdir(), limits, routes, newSessionId: () => `s${++n}`, rng: () => 0.5 });
  t.teardown(() => gw.close());
  return {
    gw,
    connect(): MemoryTransport {
      const tr = new MemoryTransport();
      gw.accept(tr);
      tr.deliver({ t: FrameType.HELLO, version: 2, agent: 'pi-1', ackedSeq: 0 });
      return tr;
    },
  };
}

const pkt = (seq: number, target: string): Packet => ({ seq, target, ts: 0, data: 'x' });
const send = (tr: MemoryTransport, ...packets: Packet[]): void => tr.deliver({ t: FrameType.DATA, packets });
const isAckOf = (seq: number) => (f: Frame): boolean => f.t === FrameType.ACK && ((f as AckFrame).seq >= seq || ((f as AckFrame).ranges ?? []).some(([a, b]) => seq >= a && seq <= b));
const nackOf = (tr: MemoryTransport, seq: number) => tr.sentOf(FrameType.NACK).find((f) => f.seq === seq);

t.test('core - drain: packets in a handler finish and are acked; those waiting go nowhere; new work is refused with SHUTDOWN', async (t) => {
  const handler = new FakeHandler();
  const { gw, connect } = await core(t, [{ match: '#', handler }]);
  const tr = connect();
  send(tr, pkt(1, 'a'), pkt(2, 'a'), pkt(3, 'b'));
  await until(() => handler.calls.length === 2, '1 and 3 in the handler (2 waits behind 1)');
  const drained = gw.drain(5000);
  send(tr, pkt(4, 'c'));
  await until(() => nackOf(tr, 4) !== undefined, 'a NACK for the packet sent while draining');
  t.equal(nackOf(tr, 4)?.code, ErrorCode.SHUTDOWN, 'a new packet is refused with SHUTDOWN');
  t.ok((nackOf(tr, 4)?.retryAfterMs ?? 0) > 0, 'for now: the agent keeps it');
  const late = new MemoryTransport();
  gw.accept(late);
  t.equal(late.sentOf(FrameType.BYE)[0]?.code, ErrorCode.SHUTDOWN, 'a new connection gets BYE SHUTDOWN');
  handler.finish(1);
  handler.finish(3);
  t.same(await drained, { inHandlers: 0 }, 'the drain ends once the handler answered');
  await tr.waitSent(isAckOf(1), 'ACK of 1');
  await tr.waitSent(isAckOf(3), 'ACK of 3');
  t.same(handler.calls, [1, 3], 'the packet waiting behind 1 never reached the handler');
  t.notOk(isAckOf(2)(tr.sentOf(FrameType.ACK).at(-1)!), '2 is not acked: the agent sends it again');
  t.ok(tr.isOpen, 'the session is still open for the caller to end');
});

t.test('core - drain gives up after its timeout and says how many packets are still in a handler', async (t) => {
  const handler = new FakeHandler();
  const { gw, connect } = await core(t, [{ match: '#', handler }]);
  const tr = connect();
  send(tr, pkt(1, 'a'), pkt(2, 'b'));
  await until(() => handler.calls.length === 2, 'both in the handler');
  t.same(await gw.drain(50), { inHandlers: 2 });
  handler.finish(1);
  handler.finish(2);
});

t.test('core - replaceRoutes: a target finishes with its old handler first, new targets go to the new one, the old handler closes once idle', async (t) => {
  const before = new ClosableHandler();
  const after = new ClosableHandler();
  const { gw, connect } = await core(t, [{ match: '#', handler: before }]);
  const tr = connect();
  send(tr, pkt(1, 'a'));
  await until(() => before.calls.length === 1, '1 in the old handler');
  gw.replaceRoutes([{ match: '#', handler: after }]);
  send(tr, pkt(2, 'a'), pkt(3, 'b'));
  await until(() => after.calls.length === 1 && nackOf(tr, 2) !== undefined, 'b in the new handler, 2 refused');
  t.same(after.calls, [3], 'a target with nothing in flight goes to the new handler at once');
  t.equal(nackOf(tr, 2)?.code, ErrorCode.TARGET_BUSY, 'a later packet of a target still with the old handler is refused for now');
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(before.closed, 'the old handler stays open while it holds a packet');
  before.finish(1);
  await tr.waitSent(isAckOf(1), 'ACK of 1 from the old handler');
  await until(() => before.closed, 'the old handler closed once idle');
  await new Promise((r) => setTimeout(r, limits.busyRetryAfterMs));
  send(tr, pkt(2, 'a'));
  await until(() => after.calls.includes(2), '2 in the new handler');
  t.same(before.calls, [1], 'the old handler got nothing after the reload');
  after.finish(3);
  after.finish(2);
  await tr.waitSent(isAckOf(3), 'everything acked');
});

t.test('reload - keys other than routes that changed are named as needing a restart', async (t) => {
  const base = gatewayConfigSchema.parse({ listen: { tcp: '127.0.0.1:7800' }, dataDir: '/d', routes: [{ match: '#', handler: 'file', path: '/d/x' }] });
  const next = gatewayConfigSchema.parse({ listen: { tcp: '127.0.0.1:7801' }, dataDir: '/d', limits: { agentsMax: 5 }, routes: [{ match: 'a/#', handler: 'file', path: '/d/y' }] });
  t.same(keysNeedingRestart(base, next), ['limits', 'listen']);
  t.same(keysNeedingRestart(base, base), []);
});
