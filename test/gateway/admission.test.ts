import t from 'tap';
import { Admission, sessionsPerAddressPerSecondDefault, type Admit } from '../../gateway/admission.js';
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
  const a = new Admission({ connectionsPerAddressMax: 1000, sessionsPerSecondMax: 10, sessionsPerAddressPerSecondMax: 1000 }, { now: () => now, rng: () => 0.5 });
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
  const a = new Admission({ connectionsPerAddressMax: 1_000_000, sessionsPerSecondMax: rate, sessionsPerAddressPerSecondMax: rate }, { now: () => now, rng });
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

// Issue 10, case 6: one address's churn took every token of the global rate.
t.test('admission - one address churning gets its share of sessionsPerSecondMax and no more; the others keep the rest', async (t) => {
  let now = 0;
  const a = new Admission({ connectionsPerAddressMax: 1000, sessionsPerSecondMax: 20, sessionsPerAddressPerSecondMax: 4 }, { now: () => now, rng: () => 0 });
  let churnAdmitted = 0;
  let othersAdmitted = 0;
  let othersRefused = 0;
  for (let ms = 0; ms < 10_000; ms++) {
    now = ms;
    // The churner tries ten times a millisecond, and closes what it gets at once.
    for (let i = 0; i < 10; i++) {
      const r = a.admit('10.6.6.6');
      if (r.ok) {
        churnAdmitted++;
        r.release();
      } else if (r.code !== ErrorCode.GATEWAY_BUSY || !/10\.6\.6\.6 opened more than 4 new connections per second/.test(r.reason)) {
        t.fail(`the churner is refused for its own rate, not the global one: ${r.reason}`);
        return;
      }
    }
    // Ten other addresses, each once a second, spread over the second.
    if (ms % 100 === 0) {
      const r = a.admit(`10.0.0.${(ms / 100) % 10}`);
      if (r.ok) othersAdmitted++;
      else othersRefused++;
    }
  }
  t.ok(churnAdmitted <= 4 + 4 * 10, `the churner got at most a burst plus its rate for 10 s (${churnAdmitted})`);
  t.equal(othersRefused, 0, 'no other address was refused');
  t.equal(othersAdmitted, 100);
});

t.test('admission - sessionsPerAddressPerSecondMax defaults to a tenth of sessionsPerSecondMax, at least 1', async (t) => {
  t.equal(sessionsPerAddressPerSecondDefault(500), 50);
  t.equal(sessionsPerAddressPerSecondDefault(5), 1);
  const a = new Admission({ connectionsPerAddressMax: 100, sessionsPerSecondMax: 30 }, { now: () => 0, rng: () => 0 });
  for (let i = 0; i < 3; i++) ok(a.admit('a')).release();
  const r = a.admit('a');
  t.equal(r.ok ? 'ok' : r.code, ErrorCode.GATEWAY_BUSY, 'the 4th in one second from one address');
  ok(a.admit('b'));
});

t.test('admission - a refusal by the global rate takes no token from the address; one by the address rate takes none from the global', async (t) => {
  let now = 0;
  const a = new Admission({ connectionsPerAddressMax: 100, sessionsPerSecondMax: 2, sessionsPerAddressPerSecondMax: 2 }, { now: () => now, rng: () => 0 });
  ok(a.admit('a'));
  ok(a.admit('x'));
  for (let i = 0; i < 10; i++) {
    const r = a.admit('a');
    if (r.ok || !/limits\.sessionsPerSecondMax/.test(r.reason)) t.fail(`refused by the global rate: ${r.ok ? 'admitted' : r.reason}`);
  }
  now += 500; // one global token back
  ok(a.admit('a'));
  t.pass('ten global refusals took nothing from the address');

  const b = new Admission({ connectionsPerAddressMax: 100, sessionsPerSecondMax: 10, sessionsPerAddressPerSecondMax: 1 }, { now: () => 0, rng: () => 0 });
  ok(b.admit('a'));
  for (let i = 0; i < 5; i++) t.notOk(b.admit('a').ok, 'a: its own rate');
  for (let i = 0; i < 9; i++) ok(b.admit(`o${i}`));
  t.pass('the nine global tokens a was refused are there for the others');
});

t.test('admission - addresses that hold nothing are forgotten once their bucket is full again; held ones are kept', async (t) => {
  let now = 0;
  const a = new Admission({ connectionsPerAddressMax: 10, sessionsPerSecondMax: 100_000, sessionsPerAddressPerSecondMax: 2 }, { now: () => now, rng: () => 0 });
  for (let i = 0; i < 5000; i++) ok(a.admit(`10.1.${i >> 8}.${i & 255}`)).release();
  const kept = ok(a.admit('10.9.9.9'));
  t.equal(a.addresses(), 5001, 'remembered while their buckets refill');
  now += 400;
  ok(a.admit('x')).release();
  t.equal(a.addresses(), 5002, 'no sweep within a second of the last');
  now += 700;
  ok(a.admit('y')).release();
  t.equal(a.addresses(), 2, 'after a full refill only the one holding a connection and the newest remain');
  t.equal(a.held('10.9.9.9'), 1);
  kept.release();
  now += 1100;
  ok(a.admit('z')).release();
  t.equal(a.addresses(), 1, 'released and refilled: forgotten');
  // Refusals remember nothing: a storm from many addresses past the global rate adds no entries.
  const b = new Admission({ connectionsPerAddressMax: 10, sessionsPerSecondMax: 1 }, { now: () => now, rng: () => 0 });
  ok(b.admit('first'));
  let admitted = 0;
  for (let i = 0; i < 1000; i++) if (b.admit(`s${i}`).ok) admitted++;
  t.equal(admitted, 0);
  t.equal(b.addresses(), 1);
});
