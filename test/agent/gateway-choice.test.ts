/**
 * agent/link/gateway-choice.ts with scripted dialers (each call waits until the test connects or
 * fails it) handing out MemoryTransports, on a FakeClock: the order of preference, the fall-back
 * on failure and on slowness, probing while on a fallback, the switch back (the transport in use
 * ended with BYE TRANSPORT_SWITCH, every probe transport closed), and an info line per switch.
 */
import t from 'tap';
import { gatewayChoice, type GatewayChoice } from '../../agent/link/gateway-choice.js';
import { createLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType } from '../../protocol/frames.js';
import type { Transport } from '../../protocol/transport.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { turn } from '../helpers/wait.js';
import { FakeClock } from './fixtures/fake-clock.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const settle = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await turn();
};

/** A dialer whose calls wait for the test: `connect()` or `fail()` the oldest waiting call. */
class ScriptedDialer {
  readonly calls: { resolve(t: Transport): void; reject(e: Error): void; done: boolean }[] = [];
  readonly transports: MemoryTransport[] = [];
  /** connect every call at once, or fail every call at once (null: wait for the test) */
  auto: 'connect' | 'fail' | null = null;
  readonly dial = (): Promise<Transport> =>
    new Promise<Transport>((resolve, reject) => {
      const call = { resolve, reject, done: false };
      this.calls.push(call);
      if (this.auto === 'connect') this.connect();
      else if (this.auto === 'fail') this.fail();
    });

  get waiting(): number {
    return this.calls.filter((c) => !c.done).length;
  }

  connect(): MemoryTransport {
    const call = this.calls.find((c) => !c.done)!;
    call.done = true;
    const tr = new MemoryTransport();
    this.transports.push(tr);
    call.resolve(tr);
    return tr;
  }

  fail(err: Error = new Error('ECONNREFUSED')): void {
    const call = this.calls.find((c) => !c.done)!;
    call.done = true;
    call.reject(err);
  }
}

function setup(t: Test, n = 2) {
  const clock = new FakeClock();
  const lines: { level: string; msg: string; url?: string }[] = [];
  const log = createLog({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) });
  const dialers = Array.from({ length: n }, () => new ScriptedDialer());
  const urls = ['tls://gw:7800', 'https://gw:7443', 'http://gw:7080'].slice(0, n);
  const choice: GatewayChoice = gatewayChoice(dialers.map((d, i) => ({ url: urls[i]!, dial: d.dial })), { clock, log, fallbackAfterMs: 10_000, probeIntervalMs: 300_000 });
  t.teardown(() => choice.stop());
  const infos = (): string[] => lines.filter((l) => l.level === 'info').map((l) => `${l.msg} ${l.url ?? ''}`.trim());
  return { clock, dialers, choice, urls, infos };
}

t.test('gateway choice - the most preferred first; nothing else dialed, nothing probed', async (t) => {
  const { clock, dialers: [a, b], choice, urls, infos } = setup(t);
  const p = choice();
  await settle();
  t.equal(a!.calls.length, 1);
  t.equal(b!.calls.length, 0);
  const tr = a!.connect();
  t.equal(await p, tr);
  t.equal(choice.currentUrl(), urls[0]);
  clock.advance(3_600_000);
  await settle();
  t.equal(a!.calls.length, 1, 'no probe while on the preferred URL');
  t.equal(b!.calls.length, 0);
  t.same(infos(), [`gateway: using the preferred URL ${urls[0]}`]);
});

t.test('gateway choice - the preferred one hangs: the next is dialed at fallbackAfterMs; the late one is closed', async (t) => {
  const { clock, dialers: [a, b], choice, urls, infos } = setup(t);
  const p = choice();
  await settle();
  clock.advance(9_999);
  await settle();
  t.equal(b!.calls.length, 0, 'not before fallbackAfterMs');
  clock.advance(1);
  await settle();
  t.equal(b!.calls.length, 1, 'the next at fallbackAfterMs');
  const tb = b!.connect();
  t.equal(await p, tb, 'the fallback is used');
  t.equal(choice.currentUrl(), urls[1]);
  const late = a!.connect();
  await settle();
  t.not(late.closedWith, null, 'the preferred one connecting late is closed at once');
  t.equal(tb.closedWith, null, 'the one in use is not');
  t.match(infos(), [/trying the next URL https/, /using a fallback URL https/]);
});

t.test('gateway choice - the preferred one fails: the next at once; all failing rejects naming each', async (t) => {
  const { dialers: [a, b], choice } = setup(t);
  const p = choice();
  await settle();
  a!.fail(new FerryError(ErrorCode.TLS_FAILED, 'handshake failed'));
  await settle();
  t.equal(b!.calls.length, 1, 'the next dialed with no time passing');
  b!.fail(Object.assign(new FerryError(ErrorCode.GATEWAY_BUSY, 'busy'), { retryAfterMs: 4000 }));
  const err = (await p.catch((e: unknown) => e)) as Error & { code?: string; retryAfterMs?: number };
  t.match(err.message, /tls:\/\/gw:7800: handshake failed; https:\/\/gw:7443: busy/);
  t.equal(err.code, ErrorCode.TLS_FAILED, 'the code of the most preferred');
  t.equal(err.retryAfterMs, 4000, 'a retry-after asked for is kept');
  const q = choice();
  await settle();
  t.equal(a!.calls.length, 2, 'the next dial starts from the most preferred again');
  a!.connect();
  await q;
});

t.test('gateway choice - on a fallback, probes every probeIntervalMs; a probe that connects is closed and the one in use ended with TRANSPORT_SWITCH', async (t) => {
  const { clock, dialers: [a, b], choice, urls, infos } = setup(t);
  const p = choice();
  await settle();
  a!.fail();
  await settle();
  const tb = b!.connect();
  await p;
  // The first probe fails; nothing changes and the next comes an interval later.
  clock.advance(299_999);
  await settle();
  t.equal(a!.calls.length, 1, 'no probe before probeIntervalMs');
  clock.advance(1);
  await settle();
  t.equal(a!.calls.length, 2, 'a probe at probeIntervalMs');
  a!.fail();
  await settle();
  t.equal(tb.closedWith, null, 'a failed probe changes nothing');
  // A probe that does not connect within fallbackAfterMs counts as failed, and is closed if it connects later.
  clock.advance(300_000);
  await settle();
  t.equal(a!.calls.length, 3);
  clock.advance(10_000);
  await settle();
  const lateProbe = a!.connect();
  await settle();
  t.not(lateProbe.closedWith, null, 'a late probe transport is closed');
  t.equal(tb.closedWith, null, 'and it did not cause a switch');
  // The next probe (an interval after the last one gave up) connects.
  clock.advance(299_999);
  await settle();
  t.equal(a!.calls.length, 3, 'the interval counts from when the last probe gave up');
  clock.advance(1);
  await settle();
  t.equal(a!.calls.length, 4);
  const probe = a!.connect();
  await settle();
  t.not(probe.closedWith, null, 'the probe transport is closed right away');
  t.same(probe.sent, [], 'nothing sent on the probe');
  t.equal((tb.closedWith as FerryError | undefined)?.code, ErrorCode.TRANSPORT_SWITCH, 'the fallback transport ended with TRANSPORT_SWITCH');
  t.same(tb.sent.map((f) => [f.t, (f as { code?: string }).code]), [[FrameType.BYE, ErrorCode.TRANSPORT_SWITCH]], 'with a BYE first');
  t.equal(choice.currentUrl(), undefined);
  // The Link dials again: the preferred one.
  const q = choice();
  await settle();
  t.equal(a!.calls.length, 5);
  const ta = a!.connect();
  t.equal(await q, ta);
  t.equal(choice.currentUrl(), urls[0]);
  t.equal(b!.calls.length, 1, 'the fallback was not dialed again');
  clock.advance(3_600_000);
  await settle();
  t.equal(a!.calls.length, 5, 'no more probes once on the preferred URL');
  t.match(infos(), [/trying the next URL/, /using a fallback URL/, /switching back/, /using the preferred URL tls/]);
});

t.test('gateway choice - with three URLs, a probe tries each more preferred one in order', async (t) => {
  const { clock, dialers: [a, b, c], choice, urls } = setup(t, 3);
  a!.auto = 'fail';
  b!.auto = 'fail';
  const p = choice();
  await settle();
  const tc = c!.connect();
  await p;
  t.equal(choice.currentUrl(), urls[2]);
  b!.auto = null;
  clock.advance(300_000);
  await settle();
  t.equal(a!.calls.length, 2, 'the most preferred probed first');
  t.equal(b!.calls.length, 2, 'then the next');
  b!.connect();
  await settle();
  t.equal((tc.closedWith as FerryError | undefined)?.code, ErrorCode.TRANSPORT_SWITCH);
  const q = choice();
  await settle();
  b!.connect();
  await q;
  t.equal(choice.currentUrl(), urls[1], 'on the second now, and probing the first from there');
  clock.advance(300_000);
  await settle();
  t.equal(a!.calls.length, 4, 'the first probed again');
  t.equal(b!.calls.length, 3, 'the one in use is not probed');
});

t.test('gateway choice - no probes once the transport in use closed, or after stop', async (t) => {
  const { clock, dialers: [a, b], choice } = setup(t);
  a!.auto = 'fail';
  const p = choice();
  await settle();
  const tb = b!.connect();
  await p;
  tb.close(new Error('connection reset'));
  await settle();
  clock.advance(600_000);
  await settle();
  t.equal(a!.calls.length, 1, 'no probe for a transport that is gone');
  const q = choice();
  await settle();
  b!.connect();
  await q;
  choice.stop();
  clock.advance(600_000);
  await settle();
  t.equal(a!.calls.length, 2, 'no probe after stop');
  t.equal(clock.pendingTimers, 0, 'no timer left');
});
