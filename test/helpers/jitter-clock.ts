/**
 * A Clock (common/clock.ts) that moves only when a test says so, like FakeClock, but whose timers
 * fire early or late on purpose, as real ones do: a real timer may run a millisecond before
 * `now()` reaches its deadline, or long after it. Each timer fires at its due time plus
 * `skewMs(ms)` (ms: the delay asked for), never before it was set, and a timer of 1 ms or more
 * never in the instant it was set (so code that re-arms for what remains makes progress).
 */
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { prng } from './seed.js';

export class JitterClock extends FakeClock {
  /** timers that fired before their deadline, and after it */
  early = 0;
  late = 0;

  constructor(private readonly skewMs: (ms: number) => number, nowMs?: number) {
    super(nowMs);
  }

  /** Every timer fires `byMs` before its deadline (within the limits above). */
  static early(byMs = 1): JitterClock {
    return new JitterClock(() => -byMs);
  }

  /** Every timer fires `byMs` after its deadline. */
  static late(byMs: number): JitterClock {
    return new JitterClock(() => byMs);
  }

  /** Each timer fires up to `earlyMsMax` early or `lateMsMax` late, seeded. */
  static seeded(seed: number, earlyMsMax: number, lateMsMax: number): JitterClock {
    const rng = prng(seed);
    return new JitterClock(() => Math.round(-earlyMsMax + rng() * (earlyMsMax + lateMsMax)));
  }

  protected override firesInMs(delayMs: number): number {
    const firesInMs = Math.max(Math.min(delayMs, 1), delayMs + this.skewMs(delayMs));
    if (firesInMs < delayMs) this.early++;
    if (firesInMs > delayMs) this.late++;
    return firesInMs;
  }
}
