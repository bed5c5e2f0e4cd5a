/**
 * Simulated time: one timeline (`SimTime`) for the whole world, and one `Clock` view of it
 * (`SimClock`, common/clock.ts) per simulated process, so killing a process cancels its timers
 * and later ones it asks for never fire.
 *
 * Nothing happens on its own: the simulator asks for the next timer (`nextAt`), moves time there
 * and fires it (`fireNext`). Timers fire early and late on purpose, within a seeded jitter,
 * because real ones do (Node's timers run on the loop's cached time, Date.now may be a
 * millisecond ahead of it; a busy loop fires them late) and every timer-driven decision in ferry
 * must tolerate both. A timer never fires before the moment it was set.
 */
import type { Clock } from '../../common/clock.js';
import type { Rng } from './rng.js';

export interface TimerJitter {
  /** a timer may fire up to this many ms before its deadline */
  earlyMsMax: number;
  /** and up to this many ms after it */
  lateMsMax: number;
}

interface Timer {
  at: number;
  /** insertion order: timers due at the same moment fire in the order they were set */
  order: number;
  fn: () => void;
  owner: string;
  cancelled: boolean;
}

export class SimTime {
  private nowMs: number;
  private heap: Timer[] = [];
  private order = 0;
  /** timers fired so far */
  fired = 0;

  constructor(startMs = 1_700_000_000_000) {
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  /** Runs `fn` at `at` (not before now). */
  at(at: number, fn: () => void, owner: string): Timer {
    const t: Timer = { at: Math.max(at, this.nowMs), order: this.order++, fn, owner, cancelled: false };
    this.push(t);
    return t;
  }

  cancel(t: Timer): void {
    t.cancelled = true;
  }

  /** Cancels every timer of `owner`. */
  cancelOwner(owner: string): void {
    for (const t of this.heap) if (t.owner === owner) t.cancelled = true;
  }

  /** When the next live timer is due, or null if none is. */
  nextAt(): number | null {
    this.dropCancelled();
    return this.heap[0]?.at ?? null;
  }

  /** Moves time to the next timer and fires it; false if there is none. */
  fireNext(): boolean {
    this.dropCancelled();
    const t = this.popMin();
    if (!t) return false;
    this.nowMs = Math.max(this.nowMs, t.at);
    this.fired++;
    t.fn();
    return true;
  }

  /** Moves time forward without firing anything (never past the next timer). */
  advanceTo(ms: number): void {
    const next = this.nextAt();
    this.nowMs = Math.max(this.nowMs, next === null ? ms : Math.min(ms, next));
  }

  /** A Clock for one process. */
  view(owner: string, rng: Rng, jitter: TimerJitter): SimClock {
    return new SimClock(this, owner, rng, jitter);
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.popMin();
  }

  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private push(t: Timer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private popMin(): Timer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** One process's clock. After `kill`, its timers are gone and new ones never fire. */
export class SimClock implements Clock {
  private alive = true;

  constructor(private readonly time: SimTime, readonly owner: string, private readonly rng: Rng, private readonly jitter: TimerJitter) {}

  now(): number {
    return this.time.now();
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const delay = Math.max(0, ms);
    if (!this.alive) return null;
    // Early by at most the delay itself (a timer never fires before it was set), late by up to lateMsMax.
    const r = this.rng.next();
    const early = Math.min(delay, this.jitter.earlyMsMax);
    const skew = r < 0.3 ? -this.rng.int(0, early) : r < 0.8 ? this.rng.int(0, this.jitter.lateMsMax) : 0;
    return this.time.at(this.time.now() + delay + skew, fn, this.owner);
  }

  clearTimeout(handle: unknown): void {
    if (handle) this.time.cancel(handle as Timer);
  }

  kill(): void {
    this.alive = false;
    this.time.cancelOwner(this.owner);
  }
}
