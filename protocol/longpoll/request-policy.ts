/**
 * The agent's request policy for one long-poll connection, as a state machine with no clock of
 * its own: the caller reports what happened (`sent`, `responded`) and asks `decide(nowMs, …)`
 * after each event and when the timer it armed at the returned `wakeAtMs` fires.
 *
 * It sends a request:
 * - when none is outstanding (at the start, and when a response arrives with none left), so one
 *   request is nearly always waiting at the gateway and the gateway can send at any moment;
 * - when a full bundle has built up;
 * - when messages (not a full bundle) are waiting and no request went in the last `lingerMs`: a
 *   lone packet goes at once, and under load messages share requests (one per lingerMs at most);
 * - when `responseTimeoutMs` passes after the last request without any response, or
 *   `answerTimeoutMs` when two are outstanding (the gateway answers the older one as soon as the
 *   newer arrives, so a long wait means one of them was lost): then with `resend` (the caller
 *   calls BundleChannel.resendOutstanding(): the requests are taken as lost).
 * Never more than `requestsOutstandingMax` at once except on a time-out (the gateway holds one;
 * a second makes it answer the first). After `requestsUnansweredMax` requests in a row without
 * any response, the next time-out declares the connection failed (LONGPOLL_CONNECTION_FAILED):
 * the caller reconnects.
 */
import { ErrorCode, FerryError } from '../errors.js';
import { holdMsDefault } from './hold-policy.js';

export interface RequestPolicyOptions {
  /** no response this long after the last request: it is taken as lost; above the gateway's holdMs */
  responseTimeoutMs: number;
  /** no response this long after the last request while two or more are outstanding: taken as lost; a few round trips */
  answerTimeoutMs: number;
  /** requests in a row without a response before the connection is declared failed */
  requestsUnansweredMax: number;
  /** requests waiting for their response, at most (except on a time-out) */
  requestsOutstandingMax: number;
  /** how long messages short of a full bundle wait for more before a request carries them */
  lingerMs: number;
}

export const requestPolicyDefault: RequestPolicyOptions = {
  responseTimeoutMs: holdMsDefault + 10_000,
  answerTimeoutMs: 3_000,
  requestsUnansweredMax: 3,
  requestsOutstandingMax: 2,
  lingerMs: 20,
};

export type RequestDecision =
  | { action: 'send'; resend: boolean }
  | { action: 'wait'; wakeAtMs: number | undefined }
  | { action: 'failed'; error: FerryError };

export class RequestPolicy {
  readonly opts: RequestPolicyOptions;
  /** requests sent and not answered, by request number */
  private readonly outstanding = new Set<number>();
  private lastSentMs = 0;
  private unansweredInRow = 0;
  private sendableSinceMs: number | undefined;
  private failure: FerryError | undefined;

  constructor(opts: Partial<RequestPolicyOptions> = {}) {
    this.opts = { ...requestPolicyDefault, ...opts };
    for (const [key, v] of Object.entries(this.opts)) {
      if (!Number.isSafeInteger(v) || v < (key === 'lingerMs' ? 0 : 1)) throw new FerryError(ErrorCode.CONFIG_INVALID, `long-poll ${key} must be a ${key === 'lingerMs' ? 'non-negative' : 'positive'} integer, got ${String(v)}`);
    }
  }

  /** The caller sent request `bundle`. */
  sent(bundle: number, nowMs: number): void {
    this.outstanding.add(bundle);
    this.lastSentMs = nowMs;
    this.unansweredInRow++;
    this.sendableSinceMs = undefined; // the request took what was waiting
  }

  /** A readable response to request `answers` arrived: it and any older request are settled (the gateway answers in order). */
  responded(answers: number): void {
    for (const b of this.outstanding) if (b <= answers) this.outstanding.delete(b);
    this.unansweredInRow = 0;
  }

  /**
   * Request `bundle` ended without a response (a network error, an error status): it is no longer
   * outstanding, and it stays counted among the requests in a row without a response, so fast
   * failures end the connection as time-outs do (the next `decide` says 'failed' once
   * `requestsUnansweredMax` are reached). The caller resends what it carried
   * (BundleChannel.resendOutstanding) and waits a little before the next request.
   */
  failed(bundle: number): void {
    if (!this.outstanding.delete(bundle)) return; // already settled or taken as lost by a time-out
    if (this.unansweredInRow >= this.opts.requestsUnansweredMax) {
      this.failure ??= new FerryError(ErrorCode.LONGPOLL_CONNECTION_FAILED, `${this.unansweredInRow} long-poll requests in a row failed or got no response in time`);
    }
  }

  /** What to do now, given what the channel has waiting to send. */
  decide(nowMs: number, waiting: { sendableMessages: number; fullBundle: boolean }): RequestDecision {
    if (this.failure) return { action: 'failed', error: this.failure };
    if (this.outstanding.size > 0 && nowMs >= this.timeoutDueMs()) {
      if (this.unansweredInRow >= this.opts.requestsUnansweredMax) {
        this.failure = new FerryError(ErrorCode.LONGPOLL_CONNECTION_FAILED, `${this.unansweredInRow} long-poll requests in a row got no response in time`);
        return { action: 'failed', error: this.failure };
      }
      this.outstanding.clear();
      return { action: 'send', resend: true };
    }
    if (waiting.sendableMessages === 0) this.sendableSinceMs = undefined;
    else this.sendableSinceMs ??= nowMs;
    if (this.outstanding.size === 0) return { action: 'send', resend: false };
    const room = this.outstanding.size < this.opts.requestsOutstandingMax;
    if (room && waiting.fullBundle) return { action: 'send', resend: false };
    // Messages go at once after a quiet spell; under load at most one request per lingerMs carries
    // them, so a lone packet is not delayed and a stream still shares requests.
    const lingerDue = this.sendableSinceMs === undefined ? undefined : Math.max(this.sendableSinceMs, this.lastSentMs + this.opts.lingerMs);
    if (room && lingerDue !== undefined && nowMs >= lingerDue) return { action: 'send', resend: false };
    const timeoutDue = this.timeoutDueMs();
    return { action: 'wait', wakeAtMs: room && lingerDue !== undefined ? Math.min(lingerDue, timeoutDue) : timeoutDue };
  }

  private timeoutDueMs(): number {
    return this.lastSentMs + (this.outstanding.size >= 2 ? this.opts.answerTimeoutMs : this.opts.responseTimeoutMs);
  }

  get outstandingRequests(): number {
    return this.outstanding.size;
  }
}
