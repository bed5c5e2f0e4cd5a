/**
 * The gateway's long-poll sessions, without HTTP: `handle` takes one request body (with the
 * `ferry-agent` header and who sent it) and resolves with the status and body to send back, now
 * or when the request is released from its hold. gateway/longpoll/http-listener.ts calls it for
 * real requests; the simulator calls it directly.
 *
 * One session = one BundleChannel + one ChannelTransport (handed to `onTransport`, as the TCP
 * listener hands its connections) + one HoldPolicy. An opening request (no `s`) makes a session
 * and is answered at once with its ID. Every other request, in this order:
 *   404 LONGPOLL_SESSION_UNKNOWN   no such session (never made, expired, or ended);
 *   403 LONGPOLL_SESSION_FORBIDDEN another agent's header or another client certificate CN;
 *   429 LONGPOLL_TOO_MANY_REQUESTS past requestsPerSessionPerSecondMax;
 *   409 LONGPOLL_REQUEST_STALE     a duplicate or older request number: answered at once, nothing
 *                                  of it applied (the agent resends what the next response does not
 *                                  report), the session unharmed;
 *   503 GATEWAY_BUSY               it would be held and heldRequestsMax requests are held already
 *                                  (nothing applied; retry-after);
 *   400 LONGPOLL_ACK_INVALID       its report names what the gateway never sent: the session ends.
 * Refusals never touch the session's state, so none of them lets a stranger harm it.
 *
 * A session ends when its transport closes (the gateway session's BYE, the agent's `end`, a HELLO
 * naming another agent than the `ferry-agent` it opened with); the `end` goes in the next response
 * (the held request's at once), then the session is forgotten. One without a request for
 * `sessionIdleMs` (and none held) is closed and forgotten: one timer per session, re-armed lazily.
 */
import type { Clock } from '../../common/clock.js';
import type { Log, LogFields } from '../../common/log.js';
import { ErrorCode, FerryError, isFerryError } from '../../protocol/errors.js';
import { FrameType } from '../../protocol/frames.js';
import { helloFrameBytesMax } from '../../protocol/limits.js';
import { agentIdPattern } from '../../protocol/ids.js';
import { BodyKind, decodeBody, encodeBody, type Body, type End } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { checkRequestOrder, HoldPolicy } from '../../protocol/longpoll/hold-policy.js';
import { httpStatusFor, longpollContentType, type RefusalBody } from '../../protocol/longpoll/http.js';
import { bodyLimitsFor, channelLimitsDefault, sessionIdCharsMax, type BodyLimits } from '../../protocol/longpoll/limits.js';
import type { PeerInfo, Transport } from '../../protocol/transport.js';
import type { Admit } from '../admission.js';
import type { LongPollSessionLimits } from './limits.js';

export interface LongPollRequest {
  body: Uint8Array;
  /** the `ferry-agent` header */
  agent: string | undefined;
  peer: PeerInfo;
}

export interface LongPollReply {
  status: number;
  /** CBOR (200) or JSON (a refusal: RefusalBody) */
  body: Uint8Array;
  contentType: string;
  /** for the Retry-After header (429, 503) */
  retryAfterS?: number;
}

/** Tells the sessions the client went away before its answer (a held request's socket closed). */
export interface RequestAbort {
  onAbort(fn: () => void): void;
}

export interface LongPollSessionsDeps {
  clock: Clock;
  /** a session ID: at least 128 random bits, base64url (1 to 64 of [A-Za-z0-9_-]) */
  randomId(): string;
  log: Log;
  /** each new session's transport, as the TCP listener hands over its connections */
  onTransport(t: Transport): void;
  limits: LongPollSessionLimits;
  /** admission of a new session from an address (gateway/admission.ts); released when the session is forgotten */
  admit?(address: string): Admit;
  /** where refusals are logged (gateway/log-summary.ts); absent: at debug level, one line each */
  summary?: { note(level: 'info' | 'warn', msg: string, code: string, fields?: LogFields): void };
  /** [0, 1): spreads the retry-after of GATEWAY_BUSY (default 0.5) */
  rng?(): number;
}

export interface LongPollSessionsStats {
  sessions: number;
  heldRequests: number;
  /** refusals so far, by code */
  refused: Record<string, number>;
  /** requests answered with a bundle (200) so far */
  requests: number;
  /** sessions opened so far */
  sessionsOpened: number;
}

interface Session {
  id: string;
  agent: string;
  certSubject: string | undefined;
  address: string;
  channel: BundleChannel;
  transport: ChannelTransport;
  hold: HoldPolicy<number>;
  /** the highest request number taken */
  highestTaken: number;
  lastRequestMs: number;
  /** requests waiting for their answer (the held one), by request number */
  waiting: Map<number, (r: LongPollReply) => void>;
  holdTimer: unknown;
  holdTimerAtMs: number | undefined;
  idleTimer: unknown;
  /** counted in heldRequests */
  counted: boolean;
  /** a request's body is being applied (take() answers what happens meanwhile) */
  applying: boolean;
  sawFirstFrame: boolean;
  gone: boolean;
  release: (() => void) | undefined;
  tokens: number;
  refilledAtMs: number;
}

/** ended sessions remembered for their next request, at most (a few bytes each) */
const endedSessionsMax = 4096;
const busyRetryMsMin = 1000;
const busyRetryMsMax = 5000;

/** A refusal: the status for `code`, a JSON body saying why. */
export function refusalReply(code: string, message: string, retryAfterMs?: number): LongPollReply {
  const body: RefusalBody = { code, message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  return {
    status: httpStatusFor(code), body: Buffer.from(JSON.stringify(body)), contentType: 'application/json',
    ...(retryAfterMs !== undefined ? { retryAfterS: Math.max(1, Math.ceil(retryAfterMs / 1000)) } : {}),
  };
}

export class LongPollSessions {
  private readonly sessions = new Map<string, Session>();
  private readonly bodyLimits: BodyLimits;
  private readonly refused: Record<string, number> = {};
  private held = 0;
  private closing = false;
  private answered = 0;
  private opened = 0;
  /** sessions that ended with no request held to carry their `end`: told to their next request */
  private readonly ended = new Map<string, { agent: string; end: End; atMs: number }>();

  constructor(private readonly deps: LongPollSessionsDeps) {
    const l = deps.limits;
    if (!(l.sessionIdleMs > l.holdMs)) throw new FerryError(ErrorCode.CONFIG_INVALID, `long-poll sessionIdleMs (${l.sessionIdleMs}) must exceed holdMs (${l.holdMs})`);
    new HoldPolicy({ holdMs: l.holdMs, lingerMs: l.lingerMs }); // checks them now, not at the first session
    this.bodyLimits = bodyLimitsFor(l.channel);
  }

  handle(req: LongPollRequest, abort?: RequestAbort): Promise<LongPollReply> {
    try {
      return this.take(req, abort);
    } catch (err) {
      // Nothing a client sends may crash the gateway: a bug here is a 500 and a log line.
      this.deps.log.error('longpoll: request failed', { error: (err as Error).message, address: req.peer.address });
      return Promise.resolve(this.refuse(req, ErrorCode.INTERNAL, 'internal error'));
    }
  }

  stats(): LongPollSessionsStats {
    return { sessions: this.sessions.size, heldRequests: this.held, refused: { ...this.refused }, requests: this.answered, sessionsOpened: this.opened };
  }

  /** Answers every held request (with `end` SHUTDOWN unless the session ended otherwise), closes every transport; later requests get 503 SHUTDOWN. */
  close(): void {
    this.closing = true;
    for (const s of [...this.sessions.values()]) {
      s.transport.close(new FerryError(ErrorCode.SHUTDOWN, 'gateway stopping'));
      this.forget(s);
    }
  }

  private take(req: LongPollRequest, abort: RequestAbort | undefined): Promise<LongPollReply> {
    const now = this.deps.clock.now();
    if (this.closing) return this.refusedNow(req, ErrorCode.SHUTDOWN, 'gateway stopping');
    let body: Body;
    try {
      body = decodeBody(req.body, BodyKind.REQUEST, this.bodyLimits);
    } catch (err) {
      if (!isFerryError(err)) throw err;
      return this.refusedNow(req, err.code, err.message);
    }
    if (req.agent === undefined || !agentIdPattern.test(req.agent)) {
      return this.refusedNow(req, ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'a long-poll request must name its agent in the ferry-agent header');
    }
    if (body.session === undefined) return Promise.resolve(this.open(body, req, now));
    const s = this.sessions.get(body.session);
    if (s === undefined) {
      const ended = this.ended.get(body.session);
      if (ended !== undefined && ended.agent === req.agent && ended.atMs + this.deps.limits.holdMs > now) {
        this.ended.delete(body.session);
        // Why it ended (a BYE code such as AUTH_FAILED sets the agent's back-off), with the 404 of a session that is gone.
        const gone = this.refuse(req, ErrorCode.LONGPOLL_SESSION_UNKNOWN, 'long-poll session ended');
        return Promise.resolve({ ...refusalReply(ended.end.code, `long-poll session ended: ${ended.end.reason}`), status: gone.status });
      }
      return this.refusedNow(req, ErrorCode.LONGPOLL_SESSION_UNKNOWN, 'no such long-poll session (it expired or ended): open a new one');
    }
    if (req.agent !== s.agent || req.peer.certSubject !== s.certSubject) {
      return this.refusedNow(req, ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'this long-poll session belongs to another agent');
    }
    if (!this.takeToken(s, now)) {
      return this.refusedNow(req, ErrorCode.LONGPOLL_TOO_MANY_REQUESTS, `more than ${this.deps.limits.requestsPerSessionPerSecondMax} requests per second in one long-poll session`, 1000);
    }
    try {
      checkRequestOrder(s.highestTaken, body.bundle);
    } catch (err) {
      if (!isFerryError(err)) throw err;
      return this.refusedNow(req, err.code, err.message);
    }
    s.lastRequestMs = now;
    if (s.transport.isClosed) {
      // Ended while no request was held: this one carries the termination, then the session is gone.
      s.highestTaken = body.bundle;
      const reply = this.response(s, body.bundle);
      this.forget(s);
      return Promise.resolve(reply);
    }
    if (s.hold.held === undefined && this.held >= this.deps.limits.heldRequestsMax) {
      const retryAfterMs = Math.round(busyRetryMsMin + (this.deps.rng?.() ?? 0.5) * (busyRetryMsMax - busyRetryMsMin));
      return this.refusedNow(req, ErrorCode.GATEWAY_BUSY, `the gateway holds its maximum of ${this.deps.limits.heldRequestsMax} long-poll requests; retry after ${retryAfterMs} ms`, retryAfterMs);
    }
    if (!s.sawFirstFrame && body.messages.some((m) => m.n !== 1 || m.bytes.length > helloFrameBytesMax)) {
      // Before its HELLO a session takes the HELLO alone (as a TCP connection's first frame, at
      // most helloFrameBytesMax): nothing else may sit in its reorder window unauthenticated.
      return this.refusedNow(req, ErrorCode.LONGPOLL_BODY_INVALID, `invalid long-poll body: before its HELLO a session takes only message 1, the HELLO, of at most ${helloFrameBytesMax} bytes`);
    }
    let messages: Uint8Array[];
    try {
      messages = s.channel.accept(body);
    } catch (err) {
      if (!isFerryError(err, ErrorCode.LONGPOLL_ACK_INVALID)) throw err;
      s.transport.close(err);
      s.transport.takeEnd(); // told in the refusal, not in a body
      this.forget(s);
      return this.refusedNow(req, err.code, err.message);
    }
    s.highestTaken = body.bundle;
    // This request answers for the session while its body is applied: a close now goes in its answer.
    s.applying = true;
    try {
      s.transport.deliver(messages);
      if (body.end !== undefined) s.transport.peerEnded(body.end);
    } finally {
      s.applying = false;
    }
    if (s.transport.isClosed || s.gone) {
      const reply = this.response(s, body.bundle);
      this.forget(s);
      return Promise.resolve(reply);
    }
    return new Promise<LongPollReply>((resolve) => {
      s.waiting.set(body.bundle, resolve);
      for (const id of s.hold.request(body.bundle, now, s.channel.hasFullBundle())) this.answer(s, id);
      this.pump(s);
      abort?.onAbort(() => {
        // The client went away while held: free the hold; its body was applied and stays so.
        if (s.hold.held !== body.bundle) return;
        s.hold.close();
        s.waiting.delete(body.bundle);
        this.pump(s);
      });
    });
  }

  private open(body: Body, req: LongPollRequest, now: number): LongPollReply {
    if (body.bundle !== 1 || body.messages.length > 0 || body.end !== undefined || body.ack !== 0 || body.ranges.length > 0 || body.seen !== 0) {
      return this.refuse(req, ErrorCode.LONGPOLL_BODY_INVALID, 'invalid long-poll body: an opening request (no s) is bundle 1 with no messages, acknowledgement or end');
    }
    if (this.sessions.size >= this.deps.limits.sessionsMax) {
      return this.refuse(req, ErrorCode.GATEWAY_BUSY, `the gateway holds its maximum of ${this.deps.limits.sessionsMax} long-poll sessions`, busyRetryMsMax);
    }
    const admit = this.deps.admit?.(req.peer.address);
    if (admit !== undefined && !admit.ok) return this.refuse(req, admit.code, admit.reason, admit.retryAfterMs);
    const id = this.deps.randomId();
    this.opened++;
    if (!/^[A-Za-z0-9_-]+$/.test(id) || id.length > sessionIdCharsMax || this.sessions.has(id)) {
      if (admit?.ok) admit.release();
      throw new Error('randomId gave an unusable or repeated session ID');
    }
    const channel = new BundleChannel(this.deps.limits.channel);
    const agent = req.agent!;
    const s: Session = {
      id, agent, certSubject: req.peer.certSubject, address: req.peer.address, channel,
      transport: undefined as unknown as ChannelTransport,
      hold: new HoldPolicy<number>({ holdMs: this.deps.limits.holdMs, lingerMs: this.deps.limits.lingerMs }),
      highestTaken: body.bundle, lastRequestMs: now, waiting: new Map(), holdTimer: undefined, holdTimerAtMs: undefined, idleTimer: undefined,
      counted: false, applying: false, sawFirstFrame: false, gone: false, release: admit?.ok ? admit.release : undefined,
      tokens: this.deps.limits.requestsPerSessionPerSecondMax - 1, refilledAtMs: now,
    };
    s.transport = new ChannelTransport(channel, {
      peer: { ...req.peer, longpoll: true },
      onSendable: () => this.pump(s),
      onClose: () => this.pump(s),
      onTraffic: (dir, frame) => {
        if (dir !== 'in' || s.sawFirstFrame) return;
        s.sawFirstFrame = true;
        // The session is bound to the agent it opened as: its HELLO may not speak for another.
        if (frame.t === FrameType.HELLO && frame.agent !== s.agent) {
          s.transport.close(new FerryError(ErrorCode.LONGPOLL_SESSION_FORBIDDEN, `HELLO as ${frame.agent} in a long-poll session opened as ${s.agent}`));
        }
      },
    });
    channel.accept(body); // its bundle number counts as read
    this.sessions.set(id, s);
    this.armIdle(s, this.deps.limits.sessionIdleMs);
    this.deps.onTransport(s.transport);
    const reply = this.response(s, body.bundle);
    if (s.transport.isClosed) this.forget(s);
    return reply;
  }

  /** After anything changed: answers what is due, arms the hold timer, keeps the held count. */
  private pump(s: Session): void {
    if (s.gone || s.applying) return;
    if (s.transport.isClosed) {
      const id = s.hold.close();
      if (id !== undefined) this.answer(s, id); // the termination goes in that answer
      else this.remember(s, s.transport.takeEnd());
      // Gone now, as a closed TCP connection is: its admission slot, its place and its memory.
      this.forget(s);
      return;
    } else {
      const now = this.deps.clock.now();
      while (s.hold.held !== undefined && s.channel.hasFullBundle()) this.answer(s, s.hold.bundleReady()!);
      if (s.channel.stats().sendableMessages > 0) {
        const id = s.hold.messagesWaiting(now);
        if (id !== undefined) this.answer(s, id);
      }
    }
    this.armHold(s);
    this.count(s);
  }

  private armHold(s: Session): void {
    const due = s.hold.deadlineMs();
    if (due === s.holdTimerAtMs) return;
    if (s.holdTimer !== undefined) this.deps.clock.clearTimeout(s.holdTimer);
    s.holdTimer = undefined;
    s.holdTimerAtMs = due;
    if (due === undefined) return;
    s.holdTimer = this.deps.clock.setTimeout(() => {
      s.holdTimer = undefined;
      s.holdTimerAtMs = undefined;
      if (s.gone) return;
      const id = s.hold.tick(this.deps.clock.now());
      if (id !== undefined) this.answer(s, id);
      this.pump(s);
    }, Math.max(0, due - this.deps.clock.now()));
  }

  private armIdle(s: Session, ms: number): void {
    s.idleTimer = this.deps.clock.setTimeout(() => {
      if (s.gone) return;
      const idleMs = this.deps.clock.now() - s.lastRequestMs;
      const limit = this.deps.limits.sessionIdleMs;
      // A held request is activity (answered within holdMs, below sessionIdleMs): look again a whole period later.
      if (s.hold.held !== undefined) return this.armIdle(s, limit);
      if (idleMs < limit) return this.armIdle(s, limit - idleMs);
      s.transport.close(new FerryError(ErrorCode.LONGPOLL_SESSION_UNKNOWN, `long-poll session expired: no request for ${limit} ms`));
      this.forget(s);
    }, ms);
  }

  private count(s: Session): void {
    const held = !s.gone && s.hold.held !== undefined;
    if (held === s.counted) return;
    s.counted = held;
    this.held += held ? 1 : -1;
  }

  /** Resolves request `id` with the session's next bundle (and its termination, once closed). */
  private answer(s: Session, id: number): void {
    const resolve = s.waiting.get(id);
    s.waiting.delete(id);
    if (resolve) resolve(this.response(s, id));
  }

  private response(s: Session, id: number): LongPollReply {
    // Bundles to the agent stay within the carrier's default bundle limits, which every agent's
    // body limit accepts, however large the frames this gateway takes from agents.
    const ob = s.channel.nextBundle(channelLimitsDefault);
    const end = s.transport.isClosed ? s.transport.takeEnd() : undefined;
    const body = encodeBody({ kind: BodyKind.RESPONSE, session: s.id, answers: id, ...ob, ...(end !== undefined ? { end } : {}) });
    this.answered++;
    return { status: 200, body, contentType: longpollContentType };
  }

  /** Keeps why a session ended, for its next request (within holdMs), when no request was held to carry it. */
  private remember(s: Session, end: End | undefined): void {
    if (end === undefined) return;
    const now = this.deps.clock.now();
    for (const [id, e] of this.ended) {
      if (this.ended.size < endedSessionsMax && e.atMs + this.deps.limits.holdMs > now) break;
      this.ended.delete(id); // oldest first (insertion order)
    }
    this.ended.set(s.id, { agent: s.agent, end, atMs: now });
  }

  private forget(s: Session): void {
    if (s.gone) return;
    const id = s.hold.close();
    if (id !== undefined) this.answer(s, id);
    s.gone = true;
    this.sessions.delete(s.id);
    if (s.holdTimer !== undefined) this.deps.clock.clearTimeout(s.holdTimer);
    if (s.idleTimer !== undefined) this.deps.clock.clearTimeout(s.idleTimer);
    s.holdTimer = s.idleTimer = undefined;
    s.release?.();
    this.count(s);
  }

  private takeToken(s: Session, now: number): boolean {
    const rate = this.deps.limits.requestsPerSessionPerSecondMax;
    s.tokens = Math.min(rate, s.tokens + (Math.max(0, now - s.refilledAtMs) * rate) / 1000);
    s.refilledAtMs = now;
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }

  private refuse(req: LongPollRequest, code: string, message: string, retryAfterMs?: number): LongPollReply {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
    const fields = { address: req.peer.address, agent: req.agent ?? null, error: message };
    if (this.deps.summary) this.deps.summary.note('warn', 'longpoll: request refused', code, fields);
    else this.deps.log.debug('longpoll: request refused', { code, ...fields });
    return refusalReply(code, message, retryAfterMs);
  }

  private refusedNow(req: LongPollRequest, code: string, message: string, retryAfterMs?: number): Promise<LongPollReply> {
    return Promise.resolve(this.refuse(req, code, message, retryAfterMs));
  }
}
