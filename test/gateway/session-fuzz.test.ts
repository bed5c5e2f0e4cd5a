/**
 * Fuzzes the gateway's handshake and session state machine: random sequences of frames (valid
 * ones of every type, HELLOs with wrong versions, bad agent IDs, wrong tokens) fed to a real
 * Session over an in-memory transport. Whatever comes, the session must not throw, every BYE it
 * sends must carry a documented code, nothing may follow a BYE, and a WELCOME goes out only
 * after a HELLO that is valid and authenticated. SEED= replays; NUM_RUNS= scales (default 100,000).
 */
import t from 'tap';
import fc from 'fast-check';
import { silentLog } from '../../common/log.js';
import type { Clock } from '../../common/clock.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type HelloFrame } from '../../protocol/frames.js';
import { agentIdPattern } from '../../protocol/ids.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import type { Handler } from '../../gateway/handlers/handler.js';
import { Router } from '../../gateway/routes.js';
import { Session, type Admission } from '../../gateway/session.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { testSeed } from '../helpers/seed.js';
import { frameArb, stringArb, uintArb } from '../protocol/fuzz-arbitraries.js';

/** Timers never fire: the fuzz is about frames, not time. */
const frozenClock: Clock = { now: () => 1_000_000, setTimeout: () => 0, clearTimeout: () => undefined };
const okHandler: Handler = { kind: 'test', inflightMax: 4, handle: async () => ({ ok: true }), close: async () => undefined };
const codes = new Set<string>(Object.values(ErrorCode));

const helloArb: fc.Arbitrary<HelloFrame> = fc.record({
  t: fc.constant(FrameType.HELLO),
  version: fc.oneof(fc.constant(protocolVersion), uintArb),
  agent: fc.oneof(fc.constantFrom('pi-1', 'pi-2', 'revoked'), stringArb(300)),
  ackedSeq: fc.oneof(fc.nat(100), uintArb),
}).chain((h) => fc.option(fc.constantFrom('good', 'bad', ''), { nil: undefined }).map((token) => (token === undefined ? h : { ...h, token })));

const goodHelloArb: fc.Arbitrary<HelloFrame> = fc.record({
  t: fc.constant(FrameType.HELLO), version: fc.constant(protocolVersion), agent: fc.constantFrom('pi-1', 'pi-2'), ackedSeq: fc.nat(100), token: fc.constant('good'),
});

const scriptArb = fc.tuple(
  fc.oneof({ arbitrary: goodHelloArb, weight: 2 }, { arbitrary: helloArb, weight: 2 }, { arbitrary: frameArb, weight: 1 }),
  fc.array(fc.oneof({ arbitrary: helloArb, weight: 1 }, { arbitrary: frameArb, weight: 4 }), { maxLength: 5 }),
).map(([first, rest]) => [first, ...rest]);

function authenticate(h: HelloFrame): Admission {
  if (h.agent === 'revoked') return { ok: false, code: ErrorCode.AUTH_REVOKED, message: 'revoked' };
  return h.token === 'good' ? { ok: true } : { ok: false, code: ErrorCode.AUTH_FAILED, message: 'bad token' };
}

t.test('session - fuzzed handshakes never crash, every BYE has a code, WELCOME only after a good HELLO', async (t) => {
  const seed = testSeed((m) => t.comment(`session fuzz ${m}`));
  const numRuns = Number(process.env.NUM_RUNS ?? 100_000);
  const dispatchLog = await DispatchLog.open(t.testdir(), silentLog);
  t.teardown(() => dispatchLog.close());
  const router = new Router<Handler>([{ match: '#', handler: okHandler }]);
  const byes = new Map<string, number>();
  let welcomes = 0;
  fc.assert(
    fc.property(scriptArb, (script) => {
      const transport = new MemoryTransport();
      const sessions = new Map<string, Session>();
      new Session(transport, {
        helloTimeoutMs: 1000, peerTimeoutMs: 1000, pingIntervalMs: 500, queuePacketsMax: 64, queueBytesMax: 65_536,
        targetQueuePacketsMax: 8, targetSlowMs: 1000, busyRetryAfterMs: 100, retriesInPlace: 1, retryInPlaceMsMax: 100, packetBytesMax: 65_536,
      }, {
        clock: frozenClock, log: silentLog, dispatchLog, router, authenticate, inDispatch: new Map(),
        counters: { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 },
        newSessionId: () => 's',
        register: (agent, s) => (sessions.set(agent, s), { ok: true }),
        unregister: (agent) => void sessions.delete(agent),
      });
      for (const f of script) transport.deliver(f);
      const first = script[0]!;
      const goodHello = first.t === FrameType.HELLO && first.version === protocolVersion && agentIdPattern.test(first.agent) && authenticate(first).ok;
      const welcomeAt = transport.sent.findIndex((f) => f.t === FrameType.WELCOME);
      if (welcomeAt >= 0) welcomes++;
      if (goodHello !== (welcomeAt === 0)) return false;
      const byeAt = transport.sent.findIndex((f) => f.t === FrameType.BYE);
      if (byeAt >= 0) {
        const bye = transport.sent[byeAt]!;
        if (bye.t !== FrameType.BYE || !codes.has(bye.code)) return false;
        byes.set(bye.code, (byes.get(bye.code) ?? 0) + 1);
        if (byeAt !== transport.sent.length - 1 || transport.closedWith === null) return false;
      }
      // A session refused at HELLO gets nothing but the BYE.
      if (!goodHello && (byeAt !== 0 || transport.sent.length !== 1)) return false;
      return true;
    }),
    { seed, numRuns },
  );
  t.comment(`welcomes ${welcomes}; BYE codes ${[...byes].map(([c, n]) => `${c}=${n}`).join(' ')}`);
  t.ok(welcomes > numRuns / 10, 'a good share of the cases got past the handshake');
  for (const code of [ErrorCode.PROTOCOL_VERSION, ErrorCode.AUTH_FAILED, ErrorCode.AUTH_REVOKED, ErrorCode.PROTOCOL_STATE, ErrorCode.FRAME_MALFORMED]) {
    t.ok((byes.get(code) ?? 0) > 0, `some cases were refused with ${code}`);
  }
});
