import t from 'tap';
import type { Clock } from '../../common/clock.js';
import { RateWindow } from '../../agent/rate-window.js';

function fakeClock(startMs = 1_000_000): Clock & { advance(ms: number): void } {
  let now = startMs;
  return { now: () => now, setTimeout: () => null, clearTimeout: () => undefined, advance: (ms) => { now += ms; } };
}

t.test('rate-window - a steady counter sampled every bucket gives its rate over the last minute', async (t) => {
  const clock = fakeClock();
  const w = new RateWindow(clock, { windowMs: 60_000, bucketMs: 10_000 });
  let count = 0;
  for (let s = 0; s < 120; s += 10) {
    w.sample(count);
    clock.advance(10_000);
    count += 50; // 5 per second
  }
  const r = w.perSecond(count);
  t.equal(r.perSecond, 5);
  t.equal(r.overS, 60, 'over the whole window');
});

t.test('rate-window - what happened before the window no longer counts', async (t) => {
  const clock = fakeClock();
  const w = new RateWindow(clock, { windowMs: 60_000, bucketMs: 10_000 });
  let count = 0;
  // A burst of 6000 in the first 10 s, then nothing for two minutes.
  w.sample(count);
  clock.advance(10_000);
  count += 6000;
  for (let s = 0; s < 120; s += 10) {
    w.sample(count);
    clock.advance(10_000);
  }
  t.equal(w.perSecond(count).perSecond, 0, 'the burst is out of the window');
});

t.test('rate-window - a young counter is measured since its first sample; under a second it says 0', async (t) => {
  const clock = fakeClock();
  const w = new RateWindow(clock, { windowMs: 60_000, bucketMs: 10_000 });
  w.sample(0);
  clock.advance(500);
  t.same(w.perSecond(100), { perSecond: 0, overS: 0.5 }, 'not a rate of 200/s from half a second');
  clock.advance(3500);
  t.same(w.perSecond(100), { perSecond: 25, overS: 4 });
});

t.test('rate-window - samples taken within one bucket keep the first; memory stays bounded', async (t) => {
  const clock = fakeClock(0);
  const w = new RateWindow(clock, { windowMs: 60_000, bucketMs: 10_000 });
  w.sample(0);
  clock.advance(9000);
  w.sample(900); // same bucket: ignored
  clock.advance(1000);
  t.equal(w.perSecond(1000).perSecond, 100, 'measured from the sample at 0, not the one at 9 s');
  for (let i = 0; i < 10_000; i++) {
    clock.advance(10_000);
    w.sample(i);
  }
  t.ok((w as unknown as { atMs: number[] }).atMs.length <= 8, 'at most window/bucket + 2 samples kept');
});

t.test('rate-window - with no sample inside the window, the last one before it is used', async (t) => {
  const clock = fakeClock(0);
  const w = new RateWindow(clock, { windowMs: 60_000, bucketMs: 10_000 });
  w.sample(0);
  clock.advance(100_000);
  t.same(w.perSecond(1000), { perSecond: 10, overS: 100 }, 'not 0: the counter did grow');
});
