/**
 * Issue 10 case 3 at the session: what a handler says about its backend (a URL with credentials, a
 * webhook path that is a token, the backend's own answer) never reaches the agent. The agent gets
 * the handler's kind, the target, the code and a fixed sentence; the gateway's log gets the cause.
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type NackFrame } from '../../protocol/frames.js';
import { agentMessage } from '../../gateway/agent-message.js';
import { createGatewayCore } from '../../gateway/core.js';
import type { DispatchPacket, Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';

const secretUrl = 'mqtt://ferry:s3cretPW@10.0.0.9:1883';
const secretPath = 'http://hooks.example:8080/hooks/T000/B000/XXXXSECRET';

/** Answers by target: `perm` permanent, `retry` retryable, `throw` throws; each message full of secrets. */
class LeakyHandler implements Handler {
  readonly kind = 'mqtt';
  handle(p: DispatchPacket): Promise<HandlerResult> {
    if (p.target === 'throw') throw new Error(`cannot reach ${secretUrl}`);
    if (p.target === 'perm') return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: `${secretPath} answered 400: bad token XXXXSECRET` });
    return Promise.resolve({ ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: `the MQTT broker at ${secretUrl} is not connected`, retryAfterMs: 60_000 });
  }
  async close(): Promise<void> {}
}

t.test('session - a NACK names kind, target and code, never the handler\'s message; the log keeps the cause', async (t) => {
  const lines: string[] = [];
  const log = createLog({ level: 'debug', write: (l) => lines.push(l) });
  const core = await createGatewayCore({
    clock: new FakeClock(), log, dataDir: t.testdir(), routes: [{ match: '#', handler: new LeakyHandler() }],
    limits: {
      helloTimeoutMs: 1e9, peerTimeoutMs: 1e9, pingIntervalMs: 15_000, sessionQueuePacketsMax: 16, sessionQueueBytesMax: 100_000,
      targetQueuePacketsMax: 4, targetSlowMs: 1e9, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 1000, packetBytesMax: 65_536, agentsMax: 10,
    },
    newSessionId: () => 's1', rng: () => 0.5,
  });
  t.teardown(() => core.close());
  const tr = new MemoryTransport();
  core.accept(tr);
  tr.deliver({ t: FrameType.HELLO, version: protocolVersion, agent: 'pi-1', ackedSeq: 0 });
  tr.deliver({ t: FrameType.DATA, packets: ['perm', 'retry', 'retry', 'throw'].map((target, i) => ({ seq: i + 1, target, ts: 0, data: 'x' })) });
  for (const seq of [1, 2, 3, 4]) await tr.waitSent((f) => f.t === FrameType.NACK && f.seq === seq, `NACK of ${seq}`);
  const nacks = new Map(tr.sentOf(FrameType.NACK).map((n): [number, NackFrame] => [n.seq, n]));

  t.same(nacks.get(1), { t: FrameType.NACK, seq: 1, code: ErrorCode.HANDLER_REJECTED, message: agentMessage('mqtt', 'perm', ErrorCode.HANDLER_REJECTED, false) }, 'permanent: kind, target, code');
  t.match(nacks.get(2), { code: ErrorCode.HANDLER_FAILED, message: agentMessage('mqtt', 'retry', ErrorCode.HANDLER_FAILED, true), retryAfterMs: Number }, 'retryable: kind, target, code');
  t.match(nacks.get(3), { code: ErrorCode.TARGET_BUSY }, 'the packet behind it waits for the retry');
  t.match(nacks.get(4), { code: ErrorCode.HANDLER_FAILED, message: agentMessage('mqtt', 'throw', ErrorCode.HANDLER_FAILED, true) }, 'a throw: the same fixed message');
  for (const n of nacks.values()) {
    t.notMatch(n.message, /s3cretPW|XXXXSECRET|hooks|10\.0\.0\.9|ferry:/, `NACK ${n.seq} (${n.code}) shows no address or backend text`);
  }
  const log1 = lines.map((l) => JSON.parse(l) as { msg: string; cause?: string; seq?: number });
  t.ok(log1.some((l) => l.seq === 1 && l.cause?.includes('answered 400')), 'the gateway log has the cause of the rejection');
  t.ok(log1.some((l) => l.seq === 2 && l.cause?.includes('not connected')), 'the gateway log has the cause of the retryable failure');
});
