/**
 * A route's handler with its verdicts told to the observer (dispatch counts, latency, health).
 * Behaves as the handler does: same kind, pipelining, results and throws.
 */
import { ErrorCode } from '../../protocol/errors.js';
import type { Handler } from '../handlers/handler.js';
import type { GatewayObserver } from './observer.js';

/** Starts a stopwatch; the returned function gives the seconds since. */
export type Stopwatch = () => () => number;

export function observedHandler(h: Handler, route: string, observer: GatewayObserver, stopwatch: Stopwatch): Handler {
  return {
    kind: h.kind,
    ...(h.inflightMax !== undefined ? { inflightMax: h.inflightMax } : {}),
    async handle(p) {
      const elapsed = stopwatch();
      try {
        const r = await h.handle(p);
        observer.handled(route, elapsed(), r.ok ? { ok: true } : { ok: false, code: r.code, cause: r.message, retryable: r.retryable });
        return r;
      } catch (err) {
        // The session turns a throw into HANDLER_FAILED (retryable): counted the same here.
        observer.handled(route, elapsed(), { ok: false, code: ErrorCode.HANDLER_FAILED, cause: String((err as Error)?.message ?? err), retryable: true });
        throw err;
      }
    },
    close: () => h.close(),
  };
}
