/**
 * The agent's side of the HTTP long-poll carrier: a Dialer whose Transport is a ChannelTransport
 * (protocol/longpoll/channel-transport.ts) that a driver keeps moving with HTTP requests. The
 * Link above sends HELLO and the rest on it exactly as over TCP. No HTTP code here: requests go
 * through an injected `post` (agent/link/http-post.ts for real, the simulator its own), and every
 * timer through the injected clock.
 *
 * One dial = one long-poll session: the opening request (no session, bundle 1) makes it at the
 * gateway, and the dialer resolves once its 200 response names the session. From then on the
 * RequestPolicy decides when to send; each response is checked and applied (acks, new messages,
 * a termination). What does not get a good response is resent: an unreadable body, a 409 (a
 * duplicate or overtaken request), a 429/503 (after their retry-after), a network error or any
 * other status (these count toward requestsUnansweredMax, and the next request waits a growing
 * pause so a request that fails at once does not spin). 404/403 mean the session is gone: the
 * transport closes with that code. Closing on this side sends one last request carrying `end`
 * (with any frames still queued, such as the Link's BYE) and aborts the rest.
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError, isFerryError } from '../../protocol/errors.js';
import { BodyKind, decodeBody, encodeBody, type Body, type End } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { bodyLimitsFor, channelLimitsDefault, type BodyLimits, type ChannelLimits } from '../../protocol/longpoll/limits.js';
import { RequestPolicy, type RequestPolicyOptions } from '../../protocol/longpoll/request-policy.js';
import type { Dialer, Transport } from '../../protocol/transport.js';
import { refusalOf, type LongPollRefusal } from './longpoll-refusal.js';

/** One HTTP exchange: POST `body`, resolve with the status and the whole response body; reject on a network error. `signal` aborts it. */
export type Post = (body: Uint8Array, signal: AbortSignal) => Promise<PostResult>;
export interface PostResult {
  status: number;
  body: Uint8Array;
  /** the refusal's Retry-After (header, or the JSON body's retryAfterMs), in ms */
  retryAfterMs?: number;
}

/** Counts the caller may read (benchmarks: requests per delivered packet); the client only adds to them. */
export interface LongPollCounters {
  requests: number;
  responses: number;
  /** 200s whose body could not be read or did not fit (not applied) */
  unreadable: number;
  /** network errors and error statuses */
  failed: number;
  stale: number;
  busy: number;
}

export const newLongPollCounters = (): LongPollCounters => ({ requests: 0, responses: 0, unreadable: 0, failed: 0, stale: 0, busy: 0 });

export interface LongPollDialerOptions {
  post: Post;
  agentId: string;
  clock: Clock;
  log: Log;
  /** this side's channel; the gateway's bundles are read within the same limits */
  limits?: ChannelLimits;
  policy?: Partial<RequestPolicyOptions>;
  /** the opening exchange, at most (default 5000) */
  openTimeoutMs?: number;
  /** the last request, carrying `end`, is given up after this (default 3000) */
  endTimeoutMs?: number;
  /** the pause after a request without a good response, doubling per one in a row (default 100), up to errorDelayMsMax (default 5000) */
  errorDelayMsMin?: number;
  errorDelayMsMax?: number;
  /** the pause after a 429/503 that names no retry-after (default 1000) */
  busyDelayMsDefault?: number;
  counters?: LongPollCounters;
}

type Resolved = Required<Omit<LongPollDialerOptions, 'policy'>> & { policy: Partial<RequestPolicyOptions> };

/** A Dialer over the long-poll carrier. Options are checked here, so a bad limit fails at start. */
export function longPollDialer(opts: LongPollDialerOptions): Dialer {
  const o: Resolved = {
    limits: channelLimitsDefault, policy: {}, openTimeoutMs: 5000, endTimeoutMs: 3000, errorDelayMsMin: 100, errorDelayMsMax: 5000,
    busyDelayMsDefault: 1000, counters: newLongPollCounters(), ...opts,
  };
  new BundleChannel(o.limits); // throws CONFIG_INVALID for bad limits
  new RequestPolicy(o.policy);
  return () => open(o);
}

async function open(o: Resolved): Promise<Transport> {
  const channel = new BundleChannel(o.limits);
  const opening = encodeBody({ kind: BodyKind.REQUEST, ...channel.nextBundle() });
  o.counters.requests++;
  const res = await withTimeout(o, (signal) => o.post(opening, signal));
  if (res.status !== 200) throw refusalOf(res);
  const body = decodeBody(res.body, BodyKind.RESPONSE, bodyLimitsFor(o.limits));
  o.counters.responses++;
  if (body.answers !== 1) throw new FerryError(ErrorCode.LONGPOLL_BODY_INVALID, `the answer to the long-poll opening request says it answers request ${body.answers}`);
  if (body.end) throw endError(body.end);
  // The gateway answers before it has any frame to send (HELLO has not been sent yet); if it did
  // send some, they are not taken (no one listens yet) and it sends them again.
  if (body.messages.length === 0) channel.accept(body);
  else channel.acknowledged(body);
  const client = new LongPollClient(channel, body.session!, o);
  client.start();
  return client.transport;
}

function withTimeout(o: Resolved, run: (signal: AbortSignal) => Promise<PostResult>): Promise<PostResult> {
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    const timer = o.clock.setTimeout(() => {
      ac.abort();
      reject(new FerryError(ErrorCode.LONGPOLL_CONNECTION_FAILED, `no answer to the long-poll opening request within ${o.openTimeoutMs} ms`));
    }, o.openTimeoutMs);
    run(ac.signal).then(
      (r) => { o.clock.clearTimeout(timer); resolve(r); },
      (err: unknown) => { o.clock.clearTimeout(timer); reject(err as Error); },
    );
  });
}

function endError(end: End): Error {
  const msg = `the gateway ended the long-poll session: ${end.code}: ${end.reason}`;
  return (Object.values(ErrorCode) as string[]).includes(end.code) ? new FerryError(end.code as ErrorCode, msg) : new Error(msg);
}

interface InFlight {
  abort: AbortController;
  sentAtMs: number;
}

/** Drives one long-poll session after its opening exchange. */
class LongPollClient {
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
        this.arm(d.wakeAtMs);
        return;
      }
      if (d.resend) this.channel.resendOutstanding();
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
   * A younger one is left to finish: its late response is still applied.
   */
  private abortAbandoned(now: number): void {
    const inFlightMax = this.policy.opts.requestsOutstandingMax + 2;
    for (const [bundle, f] of this.inFlight) {
      if (now - f.sentAtMs < this.policy.opts.responseTimeoutMs && this.inFlight.size < inFlightMax) break;
      this.inFlight.delete(bundle);
      this.policy.failed(bundle);
      this.channel.resendOutstanding();
      f.abort.abort();
    }
  }

  private onAnswer(bundle: number, res: { status: number; body: Uint8Array; retryAfterMs?: number }): void {
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
    this.policy.responded(bundle);
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
