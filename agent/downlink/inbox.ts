/**
 * The agent's end of the downlink. DOWN messages are handed on one at a time, in the order the
 * gateway sent them (in order per agent), each to the consumer its target routes to; the verdict
 * is recorded durably (AnsweredLog) before the DOWN_ACK that carries it is sent, so a message sent
 * again after a lost DOWN_ACK, or after this agent restarted, is answered from the record and
 * reaches its consumer at most once. The agent's window (HELLO downMessagesMax/downBytesMax)
 * bounds what waits here; a gateway that sends past it breaks the protocol (BYE CREDIT_EXCEEDED).
 * When a session ends, what waits is dropped (the gateway sends it again); a message already
 * with its consumer finishes and is recorded.
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type DownFrame, type DownResult, type Frame } from '../../protocol/frames.js';
import { checkPacket, type PacketLimits } from '../../protocol/limits.js';
import { packetCreditBytes } from '../../protocol/packet.js';
import type { AnsweredLog, DownlinkConsumer, DownlinkMessage, Verdict } from './consumer.js';

/** A verdict that could not be recorded is tried again after this. */
export const recordRetryMs = 1000;

export interface InboxOptions {
  /** the window told in HELLO */
  messagesMax: number;
  bytesMax: number;
  /** what a message may be (the agent's dataBytesMax and depth): beyond it, DOWNLINK_INVALID */
  limits: PacketLimits;
}

export interface InboxDeps {
  /** the consumer of a target, or undefined: no route (DOWNLINK_NO_ROUTE) */
  route(target: string): DownlinkConsumer | undefined;
  answered: AnsweredLog;
  clock: Clock;
  log: Log;
}

/** The session the inbox answers on. */
export interface InboxSession {
  send(f: Frame): void;
  close(err: Error): void;
}

export interface InboxStats {
  /** handed to a consumer and taken */
  accepted: number;
  /** refused, by code (expired ones under DOWNLINK_EXPIRED) */
  refused: Record<string, number>;
  /** sent again by the gateway and answered from the record, not handed on */
  repeats: number;
  /** waiting here now */
  waiting: number;
}

interface Waiting {
  m: DownlinkMessage;
  bytes: number;
  session: InboxSession;
}

export class DownlinkInbox {
  private session: InboxSession | null = null;
  private readonly waiting: Waiting[] = [];
  private waitingBytes = 0;
  /** the message with its consumer now (counts against the window until answered) */
  private current: Waiting | null = null;
  private running = false;
  /** verdicts to send in the next DOWN_ACK, per session */
  private answers: DownResult[] = [];
  private answersSession: InboxSession | null = null;
  private counters = { accepted: 0, repeats: 0 };
  private readonly refused: Record<string, number> = {};
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | null = null;

  constructor(private readonly opts: InboxOptions, private readonly deps: InboxDeps) {}

  /** What HELLO carries: the window. */
  hello(): { downMessagesMax: number; downBytesMax: number } {
    return { downMessagesMax: this.opts.messagesMax, downBytesMax: this.opts.bytesMax };
  }

  /** A session opened: DOWN frames arrive on it and verdicts go back on it. */
  open(session: InboxSession): void {
    this.session = session;
  }

  /** The session ended: messages not yet handed on are dropped (the gateway has them and sends them again). */
  sessionEnded(): void {
    this.session = null;
    for (const w of this.waiting) this.waitingBytes -= w.bytes;
    this.waiting.length = 0;
    this.answers = [];
    this.answersSession = null;
  }

  onDown(f: DownFrame): void {
    const session = this.session;
    if (!session || this.closed) return;
    const now = this.deps.clock.now();
    for (const m of f.messages) {
      const bytes = packetCreditBytes(m);
      const held = this.waiting.length + (this.current?.session === session ? 1 : 0);
      const heldBytes = this.waitingBytes + (this.current?.session === session ? this.current.bytes : 0);
      // A message over the byte window may come alone, when nothing else is held (as on the uplink).
      if (held + 1 > this.opts.messagesMax || (held > 0 && heldBytes + bytes > this.opts.bytesMax)) {
        const err = new FerryError(ErrorCode.CREDIT_EXCEEDED, `the gateway sent more than the downlink window of ${this.opts.messagesMax} messages or ${this.opts.bytesMax} bytes`);
        this.deps.log.error('downlink: the gateway ignored the window; ending the session', { code: err.code });
        session.send({ t: FrameType.BYE, code: err.code, reason: err.message });
        session.close(err);
        return;
      }
      const msg: DownlinkMessage = { id: m.id, target: m.target, data: m.data, ts: m.ts, ...(m.ttlMs !== undefined ? { deadlineMs: now + m.ttlMs } : {}) };
      this.waiting.push({ m: msg, bytes, session });
      this.waitingBytes += bytes;
    }
    void this.run();
  }

  stats(): InboxStats {
    return { ...this.counters, refused: { ...this.refused }, waiting: this.waiting.length + (this.current ? 1 : 0) };
  }

  /** Stops taking messages and waits for the one with its consumer to be answered and recorded. */
  async close(): Promise<void> {
    this.closed = true;
    this.sessionEnded();
    await this.idle;
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.idle = new Promise((r) => (this.idleResolve = r));
    try {
      for (;;) {
        const w = this.waiting.shift();
        if (!w) break;
        this.waitingBytes -= w.bytes;
        this.current = w;
        try {
          const result = await this.handle(w.m);
          if (result) this.answer(w.session, result);
        } finally {
          this.current = null;
        }
      }
    } finally {
      this.running = false;
      this.idleResolve?.();
    }
  }

  /** The verdict on one message, recorded; undefined when the inbox closed before it could be recorded (no answer: the gateway sends it again). */
  private async handle(m: DownlinkMessage): Promise<DownResult | undefined> {
    const { answered, log } = this.deps;
    const before = answered.get(m.id);
    if (before) {
      this.counters.repeats++;
      return before;
    }
    const verdict = await this.verdict(m);
    const result: DownResult = verdict.ok ? { id: m.id, ok: true } : { id: m.id, ok: false, code: verdict.code, reason: verdict.reason.slice(0, 1000) };
    if (verdict.ok) this.counters.accepted++;
    else this.refused[verdict.code] = (this.refused[verdict.code] ?? 0) + 1;
    // Unrecorded, the verdict is not sent (a repeat would reach the consumer again). Nor is it
    // dropped: unanswered, the message would hold its place in the window until the session ends,
    // and a session that lives on would hold it for good (simulator seed 300076). So it is tried
    // again until it is recorded, and the messages behind it wait.
    for (let attempt = 1; ; attempt++) {
      try {
        await answered.record(result);
        break;
      } catch (err) {
        if (attempt === 1) log.error('downlink: could not record a verdict; trying again, the messages behind it wait', { id: m.id, target: m.target, err, retryMs: recordRetryMs });
        if (this.closed) return undefined;
        await new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, recordRetryMs));
        if (this.closed) return undefined;
      }
    }
    if (!verdict.ok) log.info('downlink: message refused', { id: m.id, target: m.target, code: verdict.code, reason: verdict.reason });
    return result;
  }

  private async verdict(m: DownlinkMessage): Promise<Verdict> {
    if (m.deadlineMs !== undefined && this.deps.clock.now() >= m.deadlineMs) return { ok: false, code: ErrorCode.DOWNLINK_EXPIRED, reason: 'the message expired before a consumer took it' };
    try {
      checkPacket(m, this.opts.limits);
    } catch (err) {
      return { ok: false, code: ErrorCode.DOWNLINK_INVALID, reason: (err as Error).message };
    }
    const consumer = this.deps.route(m.target);
    if (!consumer) return { ok: false, code: ErrorCode.DOWNLINK_NO_ROUTE, reason: `no downlink route matches target ${m.target}` };
    try {
      return await consumer.deliver(m);
    } catch (err) {
      return { ok: false, code: ErrorCode.DOWNLINK_REFUSED, reason: `the consumer failed: ${(err as Error).message}` };
    }
  }

  /** Verdicts answered in one turn of the event loop go in one DOWN_ACK, on the session that sent their messages. */
  private answer(session: InboxSession, result: DownResult): void {
    if (session !== this.session) return;
    if (this.answersSession !== session) {
      this.answers = [];
      this.answersSession = session;
    }
    this.answers.push(result);
    if (this.answers.length > 1) return;
    setImmediate(() => {
      const results = this.answers;
      this.answers = [];
      if (results.length > 0 && this.answersSession === this.session && this.session) this.session.send({ t: FrameType.DOWN_ACK, results });
    });
  }
}
