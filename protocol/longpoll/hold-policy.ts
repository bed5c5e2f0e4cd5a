/**
 * The gateway's hold policy for one long-poll session, as a state machine with no clock of its
 * own (the caller passes `nowMs` and arms one timer at `deadlineMs()`).
 *
 * It holds at most one request, so the gateway can answer at any moment, and answers it:
 * - when the next request arrives (then it answers the held one, even empty, and holds the new);
 * - when a full bundle is ready to go (a request arriving with one ready is answered at once);
 * - when messages (not a full bundle) have waited `lingerMs` (default 20 ms), so an ACK or a
 *   downlink message does not wait for the next request or the hold limit, yet a few that come
 *   together share one response;
 * - when it has been held `holdMs` (default 25 s, below common proxy idle time-outs);
 * - when the session ends.
 * Each method returns the request to answer now, if any. After answering, the caller asks again
 * (`bundleReady`) while a full bundle is still waiting, so a backlog goes out one response per
 * request the agent sends.
 */
import { ErrorCode, FerryError } from '../errors.js';

export const holdMsDefault = 25_000;
export const gatewayLingerMsDefault = 20;

export class HoldPolicy<Id> {
  readonly holdMs: number;
  readonly lingerMs: number;
  private heldId: Id | undefined;
  private heldSinceMs = 0;
  /** since when messages have been waiting to go (undefined: none) */
  private waitingSinceMs: number | undefined;

  constructor(opts: { holdMs?: number; lingerMs?: number } = {}) {
    this.holdMs = opts.holdMs ?? holdMsDefault;
    this.lingerMs = opts.lingerMs ?? gatewayLingerMsDefault;
    if (!Number.isSafeInteger(this.holdMs) || this.holdMs < 1) throw new FerryError(ErrorCode.CONFIG_INVALID, `holdMs must be a positive integer, got ${String(opts.holdMs)}`);
    if (!Number.isSafeInteger(this.lingerMs) || this.lingerMs < 0 || this.lingerMs > this.holdMs) {
      throw new FerryError(ErrorCode.CONFIG_INVALID, `lingerMs must be an integer from 0 to holdMs (${this.holdMs}), got ${String(opts.lingerMs)}`);
    }
  }

  /**
   * Messages are waiting to go (the caller calls it when its outbox gains a sendable message, and
   * again after each answer while some remain). Returns the held request when it is due now.
   */
  messagesWaiting(nowMs: number): Id | undefined {
    this.waitingSinceMs ??= nowMs;
    return this.tick(nowMs);
  }

  /**
   * A request arrived (its body applied). Returns the requests to answer now, in order: the one
   * held before, if any (it takes what is waiting; the new one is held); else the new one itself
   * when a full bundle is ready or messages have waited `lingerMs`. After the held one is
   * answered, the caller reports what is still waiting (`bundleReady`, `messagesWaiting`).
   */
  request(id: Id, nowMs: number, fullBundleReady: boolean): Id[] {
    const before = this.release();
    if (before === undefined && (fullBundleReady || (this.waitingSinceMs !== undefined && nowMs >= this.waitingSinceMs + this.lingerMs))) {
      this.waitingSinceMs = undefined;
      return [id];
    }
    this.heldId = id;
    this.heldSinceMs = nowMs;
    return before === undefined ? [] : [before];
  }

  /** A full bundle is ready: the held request, if any, is answered now. */
  bundleReady(): Id | undefined {
    return this.release();
  }

  /** The timer fired (or any moment): the held request, if held `holdMs` or longer. */
  tick(nowMs: number): Id | undefined {
    const due = this.deadlineMs();
    return due !== undefined && nowMs >= due ? this.release() : undefined;
  }

  /** The session ends (a termination either way, or the gateway stops): the held request is answered now. */
  close(): Id | undefined {
    return this.release();
  }

  /** When to call `tick` next; undefined while nothing is held. */
  deadlineMs(): number | undefined {
    if (this.heldId === undefined) return undefined;
    const hold = this.heldSinceMs + this.holdMs;
    // Messages that waited before the request came have waited long enough at its arrival.
    return this.waitingSinceMs === undefined ? hold : Math.min(hold, Math.max(this.waitingSinceMs + this.lingerMs, this.heldSinceMs));
  }

  get held(): Id | undefined {
    return this.heldId;
  }

  /** Every answer takes what is waiting; the caller reports again (`messagesWaiting`) if some is left. */
  private release(): Id | undefined {
    const id = this.heldId;
    this.heldId = undefined;
    if (id !== undefined) this.waitingSinceMs = undefined;
    return id;
  }
}

export const RequestOrder = { NEXT: 'next', AFTER_GAP: 'after-gap', DUPLICATE: 'duplicate', STALE: 'stale' } as const;
export type RequestOrder = (typeof RequestOrder)[keyof typeof RequestOrder];

/**
 * Where a request number stands against the highest one the gateway has taken for the session:
 * the next one; after a gap (requests lost on the way: fine); the same again (a duplicate or
 * replay); or older (it was overtaken, or replayed). Applying a duplicate's or stale request's
 * body is harmless (the channel drops messages it has and acks only grow), but the gateway does
 * not hold it: it answers it at once with LONGPOLL_REQUEST_STALE (`checkRequestOrder`).
 */
export function requestOrder(highestTaken: number, bundle: number): RequestOrder {
  if (bundle === highestTaken + 1) return RequestOrder.NEXT;
  if (bundle > highestTaken) return RequestOrder.AFTER_GAP;
  return bundle === highestTaken ? RequestOrder.DUPLICATE : RequestOrder.STALE;
}

/** Throws LONGPOLL_REQUEST_STALE for a duplicate or older request number; returns its order otherwise. */
export function checkRequestOrder(highestTaken: number, bundle: number): RequestOrder {
  const order = requestOrder(highestTaken, bundle);
  if (order === RequestOrder.DUPLICATE || order === RequestOrder.STALE) {
    throw new FerryError(ErrorCode.LONGPOLL_REQUEST_STALE, `long-poll request ${bundle} is ${order === RequestOrder.DUPLICATE ? 'a duplicate' : 'older than'} request ${highestTaken} already taken`);
  }
  return order;
}
