/** Waiting in unit tests: bounds against hanging, never timing assertions. */

/** Lets callbacks queued on the event loop (store writes, handler results, pumps, ACKs) run. */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Waits one event-loop turn at a time (real time, bounded) until `cond` holds. */
export async function until(cond: () => boolean, what: string, msMax = 5000): Promise<void> {
  const deadline = Date.now() + msMax;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await turn();
  }
}

/** Polls `cond` every 10 ms until it holds; throws after `ms`. */
export async function pollUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
