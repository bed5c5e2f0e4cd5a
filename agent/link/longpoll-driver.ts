/**
 * The driver of one agent-side long-poll session after its opening exchange (longpoll-client.ts
 * has the dialer and the rules): moves the ChannelTransport's bundles with the injected `post`
 * as the RequestPolicy decides, applies each response, and sends `end` when this side closes.
 */
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError, isFerryError } from '../../protocol/errors.js';
import { BodyKind, decodeBody, encodeBody, type Body, type End } from '../../protocol/longpoll/body.js';
import type { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { bodyLimitsFor, type BodyLimits } from '../../protocol/longpoll/limits.js';
import { RequestPolicy } from '../../protocol/longpoll/request-policy.js';
import type { PostResult, Resolved } from './longpoll-client.js';
import { refusalOf, type LongPollRefusal } from './longpoll-refusal.js';

/** 409 LONGPOLL_REQUEST_STALE answers in a row before the session is given up for a new one */
const staleInRowMax = 4;

interface InFlight {
  abort: AbortController;
  sentAtMs: number;
  /** a newer request's response arrived then: the gateway answered this one first, so its answer was lost or is late */
  supersededAtMs?: number;
}

/** Drives one long-poll session after its opening exchange. */
export class LongPollClient {
  readonly transport: ChannelTransport;
  private readonly policy: RequestPolicy;
  private readonly bodyLimits: BodyLimits;
  private readonly log: Log;
  private readonly inFlight = new Map<number, InFlight>();
  private timer: unknown = null;
  private timerAtMs = -1;
  /** no request before this (a retry-after, or the pause after failures) */
  private pausedUntilMs = 0;
  /** requests in a row without a good response: the pause grows with it */
  private badInRow = 0;
  /** 409s in a row */
  private staleInRow = 0;
  private stopped = false;
  /** the gateway no longer knows the session: no `end` is owed */
  private sessionGone = false;
  private pumping = false;
  private pumpAgain = false;

  constructor(private readonly channel: BundleChannel, private readonly session: string, private readonly o: Resolved) {
    this.policy = new RequestPolicy(o.policy);
    this.bodyLimits = bodyLimitsFor(o.limits);
    this.log = o.log.child({ transport: 'longpoll' });
    this.transport = new ChannelTransport(channel, { onSendable: () => this.pump(), onClose: (err) => this.onClose(err) });
  }

  start(): void {
    this.pump();
  }

  /** Asks the policy what to do until it says wait; re-entrant calls (a frame sent while delivering) run once more after. */
  private pump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.step();
      } while (this.pumpAgain && !this.stopped);
    } finally {
      this.pumping = false;
    }
  }

  private step(): void {
    // Bounded: each round sends one request, and the policy keeps at most a few outstanding.
    for (let round = 0; round < 16 && !this.stopped; round++) {
      const now = this.o.clock.now();
      this.abortAbandoned(now);
      const d = this.policy.decide(now, { sendableMessages: this.channel.stats().sendableMessages, fullBundle: this.channel.hasFullBundle() });
      if (d.action === 'failed') {
        this.transport.close(d.error);
        return;
      }
      if (d.action === 'wait') {
        this.arm(this.earliest(d.wakeAtMs, this.supersededDueMs()));
        return;
      }
      if (d.resend) {
        // Every request out is taken as lost: abort them, so a socket a middlebox went silent on
        // is closed now, not after responseTimeoutMs (a late answer would only repeat what the
        // gateway sends again anyway: its messages were not reported seen).
        this.channel.resendOutstanding();
        for (const [bundle, f] of this.inFlight) {
          this.inFlight.delete(bundle);
          f.abort.abort();
        }
      }
      if (now < this.pausedUntilMs) {
        this.arm(this.pausedUntilMs);
        return;
      }
      this.request(now);
    }
    this.arm(this.o.clock.now());
  }

  private request(now: number): void {
    const ob = this.channel.nextBundle();
    const bytes = encodeBody({ kind: BodyKind.REQUEST, session: this.session, ...ob });
    const abort = new AbortController();
    this.policy.sent(ob.bundle, now);
    this.inFlight.set(ob.bundle, { abort, sentAtMs: now });
    this.o.counters.requests++;
    this.o.post(bytes, abort.signal).then(
      (res) => {
        if (this.settled(ob.bundle)) this.onAnswer(ob.bundle, res);
      },
      (err: unknown) => {
        if (!this.settled(ob.bundle)) return;
        this.onBad(ob.bundle, 'network error', err as Error, true);
        this.pump();
      },
    );
  }

  /** True the first time request `bundle` settles while it still counts (not aborted, session running). */
  private settled(bundle: number): boolean {
    if (!this.inFlight.delete(bundle) || this.stopped) return false;
    return true;
  }

  /**
   * A request the policy gave up on and the gateway cannot still be holding (older than
   * responseTimeoutMs) is aborted, and so is the oldest past a few in flight: sockets stay bounded.
   * So is one a newer response overtook answerTimeoutMs ago. A younger one is left to finish:
   * its late response is still applied.
   */
  private abortAbandoned(now: number): void {
    const inFlightMax = this.policy.opts.requestsOutstandingMax + 2;
    for (const [bundle, f] of this.inFlight) {
      // An answer overtaken by a newer one has had answerTimeoutMs to arrive: its socket may be one a middlebox went silent on.
      const overtaken = f.supersededAtMs !== undefined && now - f.supersededAtMs >= this.policy.opts.answerTimeoutMs;
      if (!overtaken && now - f.sentAtMs < this.policy.opts.responseTimeoutMs && this.inFlight.size < inFlightMax) continue;
      this.inFlight.delete(bundle);
      f.abort.abort();
      // An overtaken one is settled already: the newer response reported what its body carried.
      if (overtaken) continue;
      this.policy.failed(bundle);
      this.channel.resendOutstanding();
    }
  }

  /** When the earliest overtaken request is due to be given up. */
  private supersededDueMs(): number | undefined {
    let due: number | undefined;
    for (const f of this.inFlight.values()) {
      if (f.supersededAtMs !== undefined) due = Math.min(due ?? Infinity, f.supersededAtMs + this.policy.opts.answerTimeoutMs);
    }
    return due;
  }

  private earliest(a: number | undefined, b: number | undefined): number | undefined {
    return a === undefined ? b : b === undefined ? a : Math.min(a, b);
  }

  private onAnswer(bundle: number, res: PostResult): void {
    if (res.status === 200) this.onResponse(bundle, res.body);
    else this.onRefusal(bundle, refusalOf(res));
    this.pump();
  }

  private onResponse(bundle: number, bytes: Uint8Array): void {
    let body: Body;
    try {
      body = decodeBody(bytes, BodyKind.RESPONSE, this.bodyLimits);
      if (body.session !== this.session || body.answers !== bundle) {
        throw new FerryError(ErrorCode.LONGPOLL_BODY_INVALID, `the response to request ${bundle} is for ${body.session !== this.session ? 'another session' : `request ${body.answers}`}`);
      }
    } catch (err) {
      if (!isFerryError(err)) throw err;
      this.o.counters.unreadable++;
      return this.onBad(bundle, 'unreadable response', err, false);
    }
    let messages: Uint8Array[];
    try {
      messages = this.channel.accept(body);
    } catch (err) {
      this.transport.close(err as Error); // LONGPOLL_ACK_INVALID: nothing applied, the session is not to be trusted
      return;
    }
    this.o.counters.responses++;
    this.badInRow = 0;
    this.staleInRow = 0;
    this.policy.responded(bundle);
    const now = this.o.clock.now();
    for (const [older, f] of this.inFlight) if (older < bundle) f.supersededAtMs ??= now;
    this.transport.deliver(messages);
    if (body.end) this.transport.peerEnded(body.end);
  }

  private onRefusal(bundle: number, r: LongPollRefusal): void {
    const now = this.o.clock.now();
    switch (r.status) {
      case 404:
      case 403:
        this.sessionGone = true;
        this.transport.close(r);
        return;
      case 409:
        this.o.counters.stale++;
        // One now and then: two requests crossed on two sockets. Every one in a row: someone else
        // holding this session's ID has moved its request numbers on; a new session ends that.
        if (++this.staleInRow >= staleInRowMax) {
          this.transport.close(r);
          return;
        }
        return this.onBad(bundle, 'stale request', r, false);
      case 429:
      case 503:
        if (r.code === ErrorCode.SHUTDOWN) {
          this.sessionGone = true;
          this.transport.close(r);
          return;
        }
        this.o.counters.busy++;
        this.onBad(bundle, 'gateway busy', r, false);
        this.pausedUntilMs = Math.max(this.pausedUntilMs, now + (r.retryAfterMs ?? this.o.busyDelayMsDefault));
        return;
      default:
        return this.onBad(bundle, 'error status', r, true);
    }
  }

  /**
   * No good response to `bundle`: what it carried goes again (a copy the gateway did get is
   * dropped there by number), after a pause that grows with each one in a row. A `failed` one (no
   * response at all, or an error status) also counts toward requestsUnansweredMax; the others were
   * answered, just not usefully.
   */
  private onBad(bundle: number, what: string, err: Error, failed: boolean): void {
    if (failed) {
      this.o.counters.failed++;
      this.policy.failed(bundle);
    } else {
      this.policy.responded(bundle);
    }
    this.channel.resendOutstanding();
    const delayMs = Math.min(this.o.errorDelayMsMax, this.o.errorDelayMsMin * 2 ** Math.min(this.badInRow, 20));
    this.badInRow++;
    this.pausedUntilMs = Math.max(this.pausedUntilMs, this.o.clock.now() + delayMs);
    this.log.debug(`longpoll: ${what}; resending`, { request: bundle, delayMs, code: (err as { code?: unknown }).code, error: err.message });
  }

  private arm(atMs: number | undefined): void {
    if (atMs !== undefined && this.timer !== null && this.timerAtMs === atMs) return;
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
    if (atMs === undefined || this.stopped) return;
    this.timerAtMs = atMs;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      this.pump();
    }, Math.max(0, atMs - this.o.clock.now()));
  }

  /** The transport closed (this side, the peer's `end`, or the session gone): the last request carries `end` if one is owed; the rest are aborted. */
  private onClose(err: Error | undefined): void {
    this.stopped = true;
    this.arm(undefined);
    const end = this.transport.takeEnd();
    if (end !== undefined && !this.sessionGone) this.sendEnd(end);
    for (const f of this.inFlight.values()) f.abort.abort();
    this.inFlight.clear();
    this.log.debug('longpoll: session closed', { code: (err as { code?: unknown } | undefined)?.code, error: err?.message, endSent: end !== undefined && !this.sessionGone });
  }

  private sendEnd(end: End): void {
    const bytes = encodeBody({ kind: BodyKind.REQUEST, session: this.session, ...this.channel.nextBundle(), end });
    const abort = new AbortController();
    const timer = this.o.clock.setTimeout(() => abort.abort(), this.o.endTimeoutMs);
    this.o.counters.requests++;
    // Best effort: the gateway also drops the session when it stays idle.
    this.o.post(bytes, abort.signal).then(
      () => this.o.clock.clearTimeout(timer),
      () => this.o.clock.clearTimeout(timer),
    );
  }
}
