import t from 'tap';
import { createRule, deltaRule, heartbeatRule, thresholdRule, type Rule } from '../../agent/rules.js';
import type { NewPacket } from '../../protocol/packet.js';
import { prng, testSeed } from '../helpers/seed.js';

/** Feeds `values` of key `t` one per ms from ts 1000 on; returns every packet produced, in order. */
function feed(rule: Rule, values: number[], key = 't'): NewPacket[] {
  return values.flatMap((v, i) => rule.onReading({ [key]: v }, 1000 + i));
}

const threshold = { kind: 'threshold', key: 't', above: 30, hysteresis: 2, target: 'alarm/temp' } as const;

t.test('rules - threshold: the first reading gives no packet, above or below', async (t) => {
  t.same(feed(thresholdRule(threshold), [35]), []);
  t.same(feed(thresholdRule(threshold), [10]), []);
  t.same(feed(thresholdRule(threshold), [29]), [], 'a first reading inside the band sets nothing either');
});

t.test('rules - threshold: one packet per crossing, with value, state and threshold', async (t) => {
  const out = feed(thresholdRule(threshold), [25, 31, 32, 33, 27, 26, 31]);
  t.same(out, [
    { target: 'alarm/temp', ts: 1001, data: { key: 't', value: 31, state: 'above', threshold: 30 } },
    { target: 'alarm/temp', ts: 1004, data: { key: 't', value: 27, state: 'below', threshold: 30 } },
    { target: 'alarm/temp', ts: 1006, data: { key: 't', value: 31, state: 'above', threshold: 30 } },
  ]);
});

t.test('rules - threshold: noise within the hysteresis band gives no packet', async (t) => {
  // Above 30 is 'above'; below 28 is 'below'; 28..30 inclusive keeps the state.
  const out = feed(thresholdRule(threshold), [31, 29.9, 30, 28, 29, 30, 28.5, 30, 28.01, 30]);
  t.same(out, [], 'from above, dipping into the band and back is silent');
  const fromBelow = feed(thresholdRule(threshold), [20, 28, 30, 29, 30, 28]);
  t.same(fromBelow, [], 'from below, rising into the band is silent');
});

t.test('rules - threshold: the band is measured from the line, not from the last value', async (t) => {
  const out = feed(thresholdRule(threshold), [31, 29, 27.99]);
  t.equal(out.length, 1, 'falling below above - hysteresis is a crossing');
  t.match(out[0], { data: { state: 'below', value: 27.99 } });
});

t.test('rules - threshold: a first reading inside the band does not count as a state', async (t) => {
  // 29 is inside the band: the state is still unknown, so 31 is the first state and no crossing.
  t.same(feed(thresholdRule(threshold), [29, 31]), []);
  t.equal(feed(thresholdRule(threshold), [29, 31, 27]).length, 1);
});

t.test('rules - threshold: readings without the key are ignored', async (t) => {
  const rule = thresholdRule(threshold);
  t.same(rule.onReading({ h: 99 }, 1), []);
  t.same(rule.onReading({ t: 10 }, 2), []);
  t.same(rule.onReading({ h: 0 }, 3), [], 'no key: no crossing and no state change');
  t.equal(rule.onReading({ t: 40 }, 4).length, 1, 'the state from t=10 still holds');
  t.same(rule.onTick(5), [], 'time alone does nothing');
});

t.test('rules - threshold: hysteresis 0 flips on each side of the line, the line itself holds', async (t) => {
  const rule = thresholdRule({ ...threshold, hysteresis: 0 });
  t.same(feed(rule, [29, 30, 31, 30, 29.99]).map((p) => (p.data as { state: string }).state), ['above', 'below']);
});

t.test('rules - delta: the first reading is reported, then only changes larger than delta', async (t) => {
  const rule = deltaRule({ kind: 'delta', key: 't', delta: 1, target: 'telemetry/t' });
  const out = feed(rule, [20, 20.5, 21, 18.5, 22.5, 22]);
  t.same(out, [
    { target: 'telemetry/t', ts: 1000, data: { key: 't', value: 20 } },
    { target: 'telemetry/t', ts: 1003, data: { key: 't', value: 18.5 } },
    { target: 'telemetry/t', ts: 1004, data: { key: 't', value: 22.5 } },
  ], 'a change of exactly delta is not reported');
});

t.test('rules - delta: slow drift is measured against the last reported value', async (t) => {
  const rule = deltaRule({ kind: 'delta', key: 't', delta: 1, target: 'x' });
  const out = feed(rule, [10, 10.4, 10.8, 11.2, 11.6]);
  t.same(out.map((p) => (p.data as { value: number }).value), [10, 11.2]);
});

t.test('rules - delta: readings without the key are ignored', async (t) => {
  const rule = deltaRule({ kind: 'delta', key: 't', delta: 1, target: 'x' });
  t.same(rule.onReading({ h: 1 }, 1), []);
  t.equal(rule.onReading({ t: 5 }, 2).length, 1);
  t.same(rule.onTick(3), []);
});

const beat = { kind: 'heartbeat', everyMs: 1000, target: 'status/beat' } as const;

t.test('rules - heartbeat: fires every everyMs, counted from the first tick', async (t) => {
  const rule = heartbeatRule(beat);
  const fired: number[] = [];
  for (let now = 5000; now <= 8000; now += 100) for (const p of rule.onTick(now)) fired.push(p.ts);
  t.same(fired, [6000, 7000, 8000]);
});

t.test('rules - heartbeat: carries the latest reading and the count since the last beat', async (t) => {
  const rule = heartbeatRule(beat);
  t.same(rule.onTick(0), []);
  rule.onReading({ t: 20 }, 100);
  rule.onReading({ t: 21, h: 40 }, 200);
  rule.onReading({ t: 22 }, 300);
  t.same(rule.onTick(1000), [{ target: 'status/beat', ts: 1000, data: { t: 22, h: 40, readings: 3 } }]);
  t.same(rule.onTick(1500), [], 'nothing between beats');
  t.same(rule.onTick(2000), [{ target: 'status/beat', ts: 2000, data: { t: 22, h: 40, readings: 0 } }], 'the count restarts; the latest values stay');
  rule.onReading({ t: 23 }, 2100);
  t.same(rule.onTick(3000)[0]?.data, { t: 23, h: 40, readings: 1 });
});

t.test('rules - heartbeat: after a stall it fires once and skips the missed beats', async (t) => {
  const rule = heartbeatRule(beat);
  t.same(rule.onTick(0), []);
  t.equal(rule.onTick(1000).length, 1);
  t.equal(rule.onTick(5500).length, 1, 'one beat for the four missed ones');
  t.same(rule.onTick(5600), [], 'no burst afterwards');
  t.same(rule.onTick(5999), []);
  t.equal(rule.onTick(6000).length, 1, 'the schedule stays on its grid');
  t.equal(rule.onTick(9000).length, 1, 'a stall ending exactly on a grid point');
  t.same(rule.onTick(9999), []);
  t.equal(rule.onTick(10_000).length, 1);
});

t.test('rules - heartbeat: random tick times fire once per grid interval that has a tick', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rand = prng(seed);
  const everyMs = 1 + Math.floor(rand() * 500);
  const rule = heartbeatRule({ ...beat, everyMs });
  const start = Math.floor(rand() * 1e6);
  let now = start;
  const ticks: number[] = [];
  const fired: number[] = [];
  for (let i = 0; i < 2000; i++) {
    // mostly small steps, sometimes a stall of several periods, sometimes the same ms twice
    const r = rand();
    now += r < 0.05 ? Math.floor(rand() * everyMs * 6) : r < 0.1 ? 0 : Math.floor(rand() * everyMs * 0.7);
    ticks.push(now);
    for (const p of rule.onTick(now)) fired.push(p.ts);
  }
  // Reference: beats sit on the grid first tick + k*everyMs (k >= 1); each interval between grid
  // points that holds a tick gives one beat, at its first tick.
  const first = ticks[0]!;
  const expected: number[] = [];
  let lastSlot = 0;
  for (const tick of ticks) {
    const slot = Math.floor((tick - first) / everyMs);
    if (slot > lastSlot) {
      expected.push(tick);
      lastSlot = slot;
    }
  }
  t.ok(expected.length > 10, 'the run crossed many grid points');
  t.same(fired, expected, `everyMs ${everyMs}`);
});

t.test('rules - createRule builds the rule of each kind', async (t) => {
  const th = createRule(threshold);
  t.same([...th.onReading({ t: 10 }, 1), ...th.onReading({ t: 40 }, 2)].length, 1, 'threshold');
  t.equal(createRule({ kind: 'delta', key: 't', delta: 1, target: 'd' }).onReading({ t: 1 }, 1)[0]?.target, 'd', 'delta');
  const hb = createRule({ kind: 'heartbeat', everyMs: 10, target: 'h' });
  hb.onTick(0);
  t.equal(hb.onTick(10)[0]?.target, 'h', 'heartbeat');
});
