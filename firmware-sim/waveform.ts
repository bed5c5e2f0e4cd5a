import type { Waveform } from './config.js';

/**
 * The value of `waveform` at time `tMs` (ms since the sim started; any finite number, the shape
 * repeats every `periodMs`). Pure: the only randomness is `rng` (uniform in [0, 1)), and it is
 * called exactly once per sample when `noise > 0` and never otherwise.
 *
 * - sine: `baseline + amplitude·sin(2π·phase)`, so it starts at the baseline, rising;
 * - square: `baseline + amplitude` for the first half of the period, `baseline − amplitude` after;
 * - sawtooth: rises linearly from `baseline − amplitude` to just below `baseline + amplitude`.
 */
export function sample(waveform: Waveform, tMs: number, rng: () => number): number {
  const { baseline, amplitude, periodMs, noise } = waveform;
  const phase = (((tMs % periodMs) + periodMs) % periodMs) / periodMs; // [0, 1)
  let value: number;
  switch (waveform.kind) {
    case 'sine':
      value = baseline + amplitude * Math.sin(2 * Math.PI * phase);
      break;
    case 'square':
      value = phase < 0.5 ? baseline + amplitude : baseline - amplitude;
      break;
    case 'sawtooth':
      value = baseline - amplitude + 2 * amplitude * phase;
      break;
  }
  if (noise > 0) value += noise * (2 * rng() - 1);
  return value;
}
