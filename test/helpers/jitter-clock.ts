/**
 * A Clock (common/clock.ts) that moves only when a test says so, like FakeClock, but whose timers
 * fire early or late on purpose, as real ones do: a real timer may run a millisecond before
 * `now()` reaches its deadline, or long after it. Each timer fires at its due time plus
 * `skewMs(ms)` (ms: the delay asked for), never before it was set, and a timer of 1 ms or more
 * never in the instant it was set (so code that re-arms for what remains makes progress).
 */
import type { Clock } from '../../common/clock.js';
import { prng } from './seed.js';

interface Timer {
  at: number;
  fn: () => void;
}

export class JitterClock implements Clock {
  private readonly timers = new Map<number, Timer>();
  private nextId = 1;
  /** timers that fired before their deadline, and after it */
  early = 0;
  late = 0;

  constructor(private readonly skewMs: (ms: number) => number, private nowMs = 1_700_000_000_000) {}

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

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    const delayMs = Math.max(0, ms);
    const firesInMs = Math.max(Math.min(delayMs, 1), delayMs + this.skewMs(delayMs));
    if (firesInMs < delayMs) this.early++;
    if (firesInMs > delayMs) this.late++;
    this.timers.set(id, { at: this.nowMs + firesInMs, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers set and not yet run or cleared. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Runs the timers that fall due within `ms`, in firing order, each with `now()` at its firing time. */
  advance(ms: number): void {
    const end = this.nowMs + ms;
    for (;;) {
      let next: [number, Timer] | null = null;
      for (const entry of this.timers) if (entry[1].at <= end && (next === null || entry[1].at < next[1].at)) next = entry;
      if (next === null) break;
      this.timers.delete(next[0]);
      this.nowMs = next[1].at;
      next[1].fn();
    }
    this.nowMs = end;
  }
}
