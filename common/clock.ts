/**
 * Time as a seam: cores take a Clock so a simulation can run hours of reconnects in a second.
 * Timers returned by `setTimeout` must not keep the process alive on their own (real ones are unref'd).
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
