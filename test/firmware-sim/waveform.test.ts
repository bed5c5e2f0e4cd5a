import t from 'tap';
import { simConfigSchema, sample, type Waveform } from '../../firmware-sim/index.js';

const noRandom = (): number => {
  throw new Error('rng must not be called when noise is 0');
};
const near = (actual: number, expected: number): boolean => Math.abs(actual - expected) < 1e-9;

t.test('waveform - the default waveform crosses 22 up and down within one period', async (t) => {
  const { waveform } = simConfigSchema.parse({});
  let up = 0;
  let down = 0;
  let prev = sample(waveform, 0, noRandom);
  for (let tMs = 10; tMs <= waveform.periodMs; tMs += 10) {
    const value = sample(waveform, tMs, noRandom);
    if (prev < 22 && value >= 22) up++;
    if (prev >= 22 && value < 22) down++;
    prev = value;
  }
  t.equal(up, 1, 'one upward crossing');
  t.equal(down, 1, 'one downward crossing');
});

t.test('waveform - each kind has its shape at known points', async (t) => {
  const base = { baseline: 10, amplitude: 4, periodMs: 1000, noise: 0 };
  const sine: Waveform = { kind: 'sine', ...base };
  const square: Waveform = { kind: 'square', ...base };
  const saw: Waveform = { kind: 'sawtooth', ...base };
  const at = (w: Waveform, tMs: number): number => sample(w, tMs, noRandom);

  // sine: 10 + 4·sin(2π·t/1000)
  t.ok(near(at(sine, 0), 10), 'sine starts at the baseline');
  t.ok(near(at(sine, 250), 14), 'sine peaks at a quarter period');
  t.ok(near(at(sine, 500), 10), 'sine is back at the baseline at half period');
  t.ok(near(at(sine, 750), 6), 'sine bottoms at three quarters');
  t.ok(near(at(sine, 1000 / 12), 12), 'sine at 1/12 period is baseline + amplitude/2');
  // square: high for the first half, low for the second
  t.equal(at(square, 0), 14);
  t.equal(at(square, 499), 14);
  t.equal(at(square, 500), 6);
  t.equal(at(square, 999), 6);
  // sawtooth: -A at the start, rising linearly to +A
  t.ok(near(at(saw, 0), 6), 'sawtooth starts at baseline - amplitude');
  t.ok(near(at(saw, 250), 8));
  t.ok(near(at(saw, 500), 10));
  t.ok(near(at(saw, 750), 12));
  t.ok(at(saw, 999) < 14 && at(saw, 999) > 13.9, 'sawtooth ends just below baseline + amplitude');
  t.ok(near(at(saw, 1000), 6), 'and drops back at the period');
});

t.test('waveform - repeats every period, negative times included', async (t) => {
  for (const kind of ['sine', 'square', 'sawtooth'] as const) {
    const w: Waveform = { kind, baseline: 0, amplitude: 1, periodMs: 400, noise: 0 };
    for (const tMs of [0, 37, 150, 399]) {
      t.ok(near(sample(w, tMs + 3 * 400, noRandom), sample(w, tMs, noRandom)), `${kind} at ${tMs} + 3 periods`);
      t.ok(near(sample(w, tMs - 400, noRandom), sample(w, tMs, noRandom)), `${kind} at ${tMs} - 1 period`);
    }
  }
});

t.test('waveform - noise is uniform in [-noise, +noise] from the rng passed in', async (t) => {
  const w: Waveform = { kind: 'square', baseline: 0, amplitude: 0, periodMs: 1000, noise: 0.5 };
  t.ok(near(sample(w, 0, () => 0), -0.5), 'rng 0 gives -noise');
  t.ok(near(sample(w, 0, () => 0.5), 0), 'rng 0.5 gives no offset');
  t.ok(near(sample(w, 0, () => 0.75), 0.25), 'rng 0.75 gives +noise/2');
  let calls = 0;
  sample(w, 0, () => (calls++, 0.1));
  t.equal(calls, 1, 'one rng call per sample');
});
