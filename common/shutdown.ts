/** What the agent and the gateway share about stopping on SIGTERM (docs/operations.md#signals). */
import type { Clock } from './clock.js';

/** How long a stop waits for work in flight by default (config key `shutdownTimeoutMs`). */
export const shutdownTimeoutMsDefault = 10_000;
/** The most `shutdownTimeoutMs` may be: systemd's TimeoutStopSec in deploy/systemd must stay above it. */
export const shutdownTimeoutMsMax = 600_000;
/**
 * After the drain, closing the store, the handlers and the logs gets this much more before the
 * process exits anyway: a backend that never answers must not keep a stopped service alive.
 */
export const closeGraceMs = 5_000;

/** Resolves true once `work` settled, or false after `ms` (the timer is cleared either way). */
export function within(work: Promise<unknown>, ms: number, clock: Clock): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clock.clearTimeout(timer);
      resolve(true);
    };
    work.then(done, done);
  });
}
