import t from 'tap';
import { Admission, type Admit } from '../../gateway/admission.js';
import { ErrorCode } from '../../protocol/errors.js';
import { prng, testSeed } from '../helpers/seed.js';

const ok = (a: Admit): Admit & { ok: true } => {
  if (!a.ok) throw new Error(`expected admission, got ${a.code}: ${a.reason}`);
  return a;
};

t.test('admission - the connection past connectionsPerAddressMax is refused; closing one frees a place', async (t) => {
  const a = new Admission({ connectionsPerAddressMax: 2, sessionsPerSecondMax: 1000 }, { now: () => 0, rng: () => 0 });
  const first = ok(a.admit('10.0.0.1'));
  ok(a.admit('10.0.0.1'));
  const third = a.admit('10.0.0.1');
  t.equal(third.ok ? 'ok' : third.code, ErrorCode.CONNECTIONS_PER_ADDRESS);
  t.match(third.ok ? '' : third.reason, /10\.0\.0\.1 already holds 2 connections/);
  ok(a.admit('10.0.0.2'));
  first.release();
  first.release();
  t.equal(a.held('10.0.0.1'), 1, 'release is idempotent');
  ok(a.admit('10.0.0.1'));
});

t.test('admission - a burst up to sessionsPerSecondMax passes, then GATEWAY_BUSY with a jittered retryAfterMs; the bucket refills with time', async (t) => {
  let now = 5000;
  const a = new Admission({ connectionsPerAddressMax: 1000, sessionsPerSecondMax: 10 }, { now: () => now, rng: () => 0.5 });
  for (let i = 0; i < 10; i++) ok(a.admit(`10.0.0.${i}`)).release();
  const busy = a.admit('10.0.0.99');
  t.same(busy.ok ? null : { code: busy.code, retryAfterMs: busy.retryAfterMs }, { code: ErrorCode.GATEWAY_BUSY, retryAfterMs: 3000 }, 'rng 0.5 → the middle of 1000–5000');
  now += 99;
  t.notOk(a.admit('x').ok, 'after 99 ms less than one token is back');
  now += 1;
  ok(a.admit('x'));
  t.notOk(a.admit('x').ok, 'one token per 100 ms at 10/s');
  now += 60_000;
  for (let i = 0; i < 10; i++) ok(a.admit('y'));
  t.notOk(a.admit('y').ok, 'a long quiet spell refills the bucket only to one second of burst');
});

t.test('admission - a refused connection takes neither a token nor an address place', async (t) => {
  const a = new Admission({ connectionsPerAddressMax: 1, sessionsPerSecondMax: 2 }, { now: () => 0, rng: () => 0 });
  ok(a.admit('a'));
  t.notOk(a.admit('a').ok);
  t.notOk(a.admit('a').ok);
  ok(a.admit('b'));
  const busy = a.admit('c');
  t.equal(busy.ok ? 'ok' : busy.code, ErrorCode.GATEWAY_BUSY, 'the two tokens went to a and b');
  t.equal(a.held('c'), 0);
});

t.test('admission - over a storm, admissions per second stay within the limit and retryAfterMs within 1000–5000', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  let now = 0;
  const rate = 50;
  const a = new Admission({ connectionsPerAddressMax: 1_000_000, sessionsPerSecondMax: rate }, { now: () => now, rng });
  const admittedPerSecond = new Map<number, number>();
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    now += rng() * 2; // ~1000 attempts per second
    const r = a.admit(`10.0.${i % 250}.1`);
    if (r.ok) {
      const s = Math.floor(now / 1000);
      admittedPerSecond.set(s, (admittedPerSecond.get(s) ?? 0) + 1);
    } else {
      refused++;
      if (r.retryAfterMs === undefined || r.retryAfterMs < 1000 || r.retryAfterMs > 5000) t.fail(`retryAfterMs ${r.retryAfterMs} out of range`);
    }
  }
  const worst = Math.max(...admittedPerSecond.values());
  t.ok(worst <= 2 * rate, `at most a burst plus one second's refill in any second (worst ${worst})`);
  t.ok(refused > 10_000, `most of the storm was paced (${refused} refused)`);
});
