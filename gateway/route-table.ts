/**
 * The gateway's live routes. A reload (SIGHUP) swaps in a new set while sessions go on; a handler
 * the new set no longer uses is closed only once no packet is in it and no session's lane still
 * holds packets for it, so what it was handed is finished and acked, not failed.
 */
import type { Clock } from '../common/clock.js';
import type { Log } from '../common/log.js';
import type { DispatchPacket, Handler, HandlerResult } from './handlers/handler.js';
import { Router } from './routes.js';

/** A handler that counts the packets it holds. */
export class CountedHandler implements Handler {
  readonly kind: string;
  readonly inflightMax?: number;
  private held = 0;

  constructor(readonly inner: Handler) {
    this.kind = inner.kind;
    if (inner.inflightMax !== undefined) this.inflightMax = inner.inflightMax;
  }

  /** Packets handed to it whose result has not come back. */
  get active(): number {
    return this.held;
  }

  handle(packet: DispatchPacket): Promise<HandlerResult> {
    this.held++;
    // A synchronous throw becomes a rejection, which the session turns into a retryable failure.
    return Promise.resolve()
      .then(() => this.inner.handle(packet))
      .finally(() => this.held--);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface RouteTableOptions {
  clock: Clock;
  log: Log;
  /** whether some session still has packets waiting for (or in) `handler` */
  inUse(handler: Handler): boolean;
  /** how often a retired handler is looked at until it is idle */
  retirePollMs?: number;
  /** a retired handler still busy after this long is closed anyway (its late packets fail, retryable) */
  retireMsMax?: number;
}

export class RouteTable {
  private handlers: CountedHandler[];
  private matches: string[];
  private live: Router<Handler>;
  private readonly retiring = new Set<Promise<void>>();
  /** closing: retiring handlers stop waiting for their packets */
  private closing = false;

  constructor(routes: { match: string; handler: Handler }[], private readonly o: RouteTableOptions) {
    this.handlers = routes.map((r) => new CountedHandler(r.handler));
    this.matches = routes.map((r) => r.match);
    this.live = new Router(this.entries);
  }

  /** The live routes with the handlers sessions are given (the counted ones). */
  get entries(): { match: string; handler: Handler }[] {
    return this.matches.map((match, i) => ({ match, handler: this.handlers[i]! }));
  }

  /** The router for new packets (sessions look it up per packet). */
  get router(): Router<Handler> {
    return this.live;
  }

  /** Packets in some handler now, old or new. */
  get inHandlers(): number {
    return this.handlers.reduce((n, h) => n + h.active, 0);
  }

  /**
   * New packets go to `routes` from now on; the old handlers close once idle (see the file's
   * comment). Resolves at once: retiring goes on in the background and `close` waits for it.
   */
  replace(routes: { match: string; handler: Handler }[]): void {
    const old = this.handlers;
    // A handler the new set keeps (a route whose settings did not change) stays as it is, counts and all.
    const kept = new Map(old.map((h) => [h.inner, h]));
    this.handlers = routes.map((r) => kept.get(r.handler) ?? new CountedHandler(r.handler));
    this.matches = routes.map((r) => r.match);
    this.live = new Router(this.entries);
    const live = new Set(this.handlers);
    for (const h of old) {
      if (live.has(h)) continue;
      const p = this.retire(h).finally(() => this.retiring.delete(p));
      this.retiring.add(p);
    }
  }

  private async retire(h: CountedHandler): Promise<void> {
    const { clock, log } = this.o;
    const pollMs = this.o.retirePollMs ?? 50;
    const deadline = clock.now() + (this.o.retireMsMax ?? 60_000);
    while ((h.active > 0 || this.o.inUse(h)) && clock.now() < deadline && !this.closing) {
      await new Promise<void>((r) => clock.setTimeout(r, pollMs));
    }
    if (h.active > 0 || this.o.inUse(h)) log.warn('gateway: a replaced handler is still busy; closing it anyway (its packets are retried)', { handler: h.kind, inHandler: h.active });
    await h.close().catch((err: unknown) => log.warn('gateway: closing a replaced handler failed', { handler: h.kind, err }));
  }

  /** Closes every handler, current and retiring. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.handlers.map((h) => h.close()), ...this.retiring]);
  }
}
