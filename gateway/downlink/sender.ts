/**
 * One session's downlink: takes the agent's queued messages into DOWN frames within the window
 * the agent named in HELLO (messages and bytes it takes un-answered), and settles them with its
 * DOWN_ACK results. The agent's consumers set the pace: room comes back only with their verdicts,
 * once they are recorded. When the session ends, what it sent and never had answered (or whose
 * answer is not recorded yet) is queued again, first in line.
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { encodeFrameBody } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import { downFrameMessagesMax, FrameType, type DownAckFrame, type DownMessage, type DownResult, type Frame } from '../../protocol/frames.js';
import type { DownlinkQueues } from './queue.js';

export interface DownlinkWindow {
  messages: number;
  bytes: number;
}

/** A DOWN frame's body besides its messages: the map, `t`, the `messages` key and the array header. */
const frameOverheadBytes = 32;

/** Ignored DOWN_ACK results a session may send before it is ended: more than its window ever allowed (at least 16). */
export function ignoredResultsMax(window: DownlinkWindow): number {
  return Math.max(16, window.messages);
}

/** A write of DOWN_ACK results that failed is tried again after this. */
export const settleRetryMs = 1000;

export class DownlinkSender {
  /** sent, and not answered or its answer not yet recorded: id → bytes */
  private readonly outstanding = new Map<string, number>();
  /** answers not yet recorded, in the order they came */
  private readonly answered = new Map<string, DownResult>();
  /** a write of answers is under way (one at a time) */
  private writing = false;
  private retryTimer: unknown = null;
  private outstandingBytes = 0;
  private closed = false;
  private pumpScheduled = false;
  /** DOWN frames waiting for their messages to be recorded as sent, in order */
  private sending: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;
  /** settles in progress (the durable writes of DOWN_ACK results) */
  private settling: Promise<unknown> = Promise.resolve();
  /** DOWN_ACK results naming no message this session has outstanding, so far */
  private ignoredResults = 0;
  /** the session was ended for them (BYE sent): later DOWN_ACKs are not read */
  private ended = false;

  constructor(
    private readonly agent: string,
    private readonly window: DownlinkWindow,
    private readonly deps: {
      queues: DownlinkQueues; clock: Clock; log: Log;
      send(f: Frame): void;
      /** ends the session: the agent broke the downlink protocol */
      bye(code: ErrorCode, reason: string): void;
      /** the largest frame body the transport carries (the DOWN frames are split to fit) */
      frameBytesMax: number;
      /** logs an event an agent can repeat at will (the gateway's LogSummary); absent: one log line each */
      note?(level: 'info' | 'warn', msg: string, code: string, fields: Record<string, unknown>): void;
    },
  ) {
    this.unsubscribe = deps.queues.onQueued((a) => {
      if (a === this.agent) this.schedulePump();
    });
    this.schedulePump();
  }

  /** Messages sent and not answered. */
  get outstandingMessages(): number {
    return this.outstanding.size;
  }

  onAck(f: DownAckFrame): void {
    if (this.closed || this.ended) return;
    let taken = 0;
    for (const r of f.results) {
      // Only what this session sent to this agent can be answered here, once; anything else is ignored by the queue too.
      if (!this.outstanding.has(r.id) || this.answered.has(r.id)) continue;
      this.answered.set(r.id, r);
      taken++;
    }
    const ignored = f.results.length - taken;
    if (ignored > 0) this.ignore(ignored);
    this.writeAnswers();
  }

  /**
   * Results for messages this session never sent (or answered twice) change nothing, but cost a
   * log line each and take no credit: an agent could make the gateway log as fast as it sends
   * 30-byte frames (10,000 frames were 1.56 MB). They are logged as a summary, and past more than
   * the window ever allowed (an honest agent answers only what this session sent it, once) the
   * session ends with PROTOCOL_STATE.
   */
  private ignore(n: number): void {
    this.ignoredResults += n;
    const fields = { agent: this.agent, ignored: n, ignoredTotal: this.ignoredResults };
    const msg = 'downlink: DOWN_ACK names messages this session did not send; ignored';
    if (this.deps.note) this.deps.note('warn', msg, ErrorCode.PROTOCOL_STATE, fields);
    else this.deps.log.warn(msg, fields);
    if (this.ignoredResults <= ignoredResultsMax(this.window)) return;
    this.ended = true; // no more DOWN_ACKs are read; close() gives the session's messages back as usual
    this.deps.bye(ErrorCode.PROTOCOL_STATE, `DOWN_ACK named ${this.ignoredResults} messages this session did not send or had answered already (more than its window of ${this.window.messages})`);
  }

  /**
   * Records the answers in the order they came, one write at a time, and frees a message's room in
   * the window only once its answer is durable. A failed write is tried again (the messages stay
   * delivered meanwhile). Freeing room for an answer not recorded would let the agent answer more
   * than its window past it; after a gateway restart that message comes back to an agent whose
   * answered log (at least a window of ids, no more) may have forgotten it, and its consumer gets it
   * twice (simulator seed 300085). In order and held, what can come back is within the window.
   */
  private writeAnswers(): void {
    if (this.writing || this.closed || this.retryTimer !== null || this.answered.size === 0) return;
    const results = [...this.answered.values()];
    this.writing = true;
    const written = this.deps.queues.settle(this.agent, results).then(
      () => {
        this.writing = false;
        if (this.closed) return;
        for (const r of results) {
          this.answered.delete(r.id);
          this.outstandingBytes -= this.outstanding.get(r.id) ?? 0;
          this.outstanding.delete(r.id);
        }
        this.schedulePump();
        this.writeAnswers();
      },
      (err: unknown) => {
        this.writing = false;
        this.deps.log.error('downlink: could not record DOWN_ACK results; trying again', { agent: this.agent, err, retryMs: settleRetryMs });
        if (this.closed) return;
        this.retryTimer = this.deps.clock.setTimeout(() => {
          this.retryTimer = null;
          this.writeAnswers();
        }, settleRetryMs);
      },
    );
    this.settling = Promise.all([this.settling, written]);
  }

  /** The session ended: what is unanswered, or answered and not recorded, goes back to the queue, first in line. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    if (this.retryTimer !== null) this.deps.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.outstanding.size > 0) this.deps.queues.requeue(this.agent, [...this.outstanding.keys()]);
    this.outstanding.clear();
    this.outstandingBytes = 0;
    this.answered.clear();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      if (!this.closed) this.pump();
    });
  }

  private pump(): void {
    const { queues, clock } = this.deps;
    const frameBudget = this.deps.frameBytesMax - frameOverheadBytes;
    for (;;) {
      const roomMessages = Math.min(this.window.messages - this.outstanding.size, downFrameMessagesMax);
      const roomBytes = this.window.bytes - this.outstandingBytes;
      if (roomMessages <= 0 || (roomBytes <= 0 && this.outstanding.size > 0)) return;
      const whole = this.outstanding.size === 0;
      const taken = queues.take(this.agent, { messages: roomMessages, bytes: Math.max(0, Math.min(roomBytes, frameBudget)), whole });
      if (taken.length === 0) return;
      const now = clock.now();
      const frames: DownMessage[][] = [];
      let frame: DownMessage[] = [];
      let frameBytes = 0;
      const tooLarge: string[] = [];
      for (const m of taken) {
        // The time left, not the deadline: the agent counts it on its own clock.
        const ttlMs = m.expiresAt === undefined ? undefined : Math.max(0, m.expiresAt - now);
        const msg: DownMessage = { id: m.id, target: m.target, data: m.data, ts: m.queuedAt, ...(ttlMs !== undefined ? { ttlMs } : {}) };
        // Its encoded size, not its JSON size: CBOR writes a short decimal as 9 bytes.
        const wire = encodeFrameBody({ t: FrameType.DOWN, messages: [msg] }).length;
        this.outstanding.set(m.id, m.bytes);
        this.outstandingBytes += m.bytes;
        if (wire > frameBudget + frameOverheadBytes) {
          tooLarge.push(m.id);
          continue;
        }
        if (frame.length > 0 && frameBytes + wire > frameBudget) {
          frames.push(frame);
          frame = [];
          frameBytes = 0;
        }
        frame.push(msg);
        frameBytes += wire;
      }
      if (frame.length > 0) frames.push(frame);
      this.sendWhenRecorded(frames);
      // A message no frame can carry would come back after every reconnect: it is refused instead.
      if (tooLarge.length > 0) {
        const reason = `encoded, the message is larger than the ${this.deps.frameBytesMax}-byte frame this session carries`;
        this.deps.log.warn('downlink: a message is too large for a frame; rejected', { agent: this.agent, ids: tooLarge });
        this.onAck({ t: FrameType.DOWN_ACK, results: tooLarge.map((id) => ({ id, ok: false, code: ErrorCode.DOWNLINK_INVALID, reason })) });
      }
    }
  }

  /**
   * Sends the frames once the queue recorded their messages as sent (DownlinkQueues.sentRecorded):
   * a message its consumer may have taken must never be expired or dropped at the gateway, also
   * after a power cut (simulator seeds 1368435623, 1368435707, 1368435863). In take order: each
   * send waits for the one before.
   */
  private sendWhenRecorded(frames: DownMessage[][]): void {
    if (frames.length === 0) return;
    const send = (): void => {
      if (this.closed) return;
      for (const messages of frames) this.deps.send({ t: FrameType.DOWN, messages });
    };
    const recorded = this.deps.queues.sentRecorded();
    this.sending = this.sending.then(() => recorded).then(send, (err: unknown) => {
      // Not recorded: not sent. The session ends; its messages are queued again and go in the next one.
      this.deps.log.error('downlink: could not record messages as sent; ending the session', { agent: this.agent, err });
      this.deps.bye(ErrorCode.INTERNAL, 'the gateway could not record downlink messages as sent');
    });
  }

  /** Resolves once the DOWN_ACK results received so far are recorded (tests, shutdown). */
  flushed(): Promise<void> {
    return this.settling.then(() => undefined);
  }
}
