import { ErrorCode } from '../protocol/errors.js';
import type { DispatchPacket, HandlerResult } from './handlers/handler.js';

export interface LaneItem {
  packet: DispatchPacket;
  /** what the packet counts against the session's byte credit */
  bytes: number;
  /** handler attempts so far */
  attempts?: number;
}

/** Refused for now: the agent keeps the packet and offers it again after `retryAfterMs`. */
export interface LaneRefusal {
  code: string;
  message: string;
  retryAfterMs: number;
}

export interface LaneOptions {
  /** packets handed to the handler and not yet resolved, at most (the handler's pipelining) */
  inflightMax: number;
  /**
   * A lane with packets but no verdict for `slowMs` is slow. A slow lane keeps at most
   * `queuePacketsMax` waiting packets and `bytesMax` bytes; the rest go back to the agent with
   * TARGET_BUSY, so a slow target cannot sit on the session's credit and starve the others. A
   * lane that makes progress takes whatever the credit lets through (back-pressure, not failure).
   */
  slowMs: number;
  queuePacketsMax: number;
  bytesMax: number;
  /** the retry-after of a TARGET_BUSY refusal */
  busyRetryAfterMs: number;
  /**
   * A retryable failure with a retry-after up to `retryInPlaceMsMax` is retried here, up to this
   * many times, before the packets go back to the agent: a brief hiccup (a 503, a broker
   * reconnect) costs neither a round trip nor the agent's memory for the refused packets.
   */
  retriesInPlace: number;
  retryInPlaceMsMax: number;
}

export interface LaneCallbacks {
  /** Hands one packet to the handler; never rejects. */
  run(item: LaneItem): Promise<HandlerResult>;
  /** The handler's verdict on an item, in the order verdicts arrive. */
  settled(item: LaneItem, result: HandlerResult): void;
  /** An item the lane gave back without running it (its target is waiting for a retry). */
  refused(item: LaneItem, refusal: LaneRefusal): void;
  now(): number;
  /** Calls `fn` after `ms` (the session's clock). */
  later(fn: () => void, ms: number): void;
}

/**
 * The packets of one session for one target. A target's packets go to its handler in seq order;
 * a retryable failure holds the target back (its later packets are refused with the same
 * retry-after, so they cannot overtake the failed one) while other targets keep flowing. The
 * agent resends refused packets in seq order, so order per target survives failures when the
 * handler takes one packet at a time (`inflightMax` 1); a pipelining handler may have delivered
 * packets after the failed one already.
 */
export class Lane {
  /** seqs refused as retryable and not offered again yet, ascending */
  private readonly refusedSeqs: number[] = [];
  private readonly queue: LaneItem[] = [];
  private active = 0;
  private laneBytes = 0;
  /** when the lane last made progress (a verdict) or last went from empty to busy */
  private progressMs = 0;
  private blockedUntilMs = 0;
  /** no packet goes to the handler before this (a retry in place is waiting) */
  private pausedUntilMs = 0;
  /** the deadline the armed wake-up timer was set for, or null when none is armed */
  private wakeAtMs: number | null = null;
  /** closed: nothing more goes to the handler */
  private closed = false;
  private blockCode = '';
  private blockMessage = '';

  constructor(private readonly opts: LaneOptions, private readonly cb: LaneCallbacks) {}

  /** The routes were reloaded and this target's packets go to another handler from now on (called while the lane is empty). */
  setInflightMax(n: number): void {
    this.opts.inflightMax = n;
  }

  /** Packets waiting or in the handler. */
  get size(): number {
    return this.queue.length + this.active;
  }

  /** Bytes of the packets waiting or in the handler. */
  get bytes(): number {
    return this.laneBytes;
  }

  get idle(): boolean {
    return this.size === 0 && this.refusedSeqs.length === 0;
  }

  /** Since when the lane has been busy without a verdict, or null when it is empty. */
  get busySinceMs(): number | null {
    return this.size === 0 ? null : this.progressMs;
  }

  /** Busy without a verdict for longer than slowMs. */
  isSlow(now: number): boolean {
    const since = this.busySinceMs;
    return since !== null && now - since > this.opts.slowMs;
  }

  /**
   * Refuses a packet for a reason found outside the lane (the dispatch log's bounds), holding
   * back this target's later packets until `retryAfterMs` as a handler failure would.
   */
  refuseNow(item: LaneItem, why: { code: string; message: string; retryAfterMs: number }): LaneRefusal {
    const now = this.cb.now();
    this.block(now + why.retryAfterMs, why.code, why.message);
    this.hold(item.packet.seq);
    return this.refusal(now);
  }

  /** Takes a packet in seq order, or refuses it for now. */
  offer(item: LaneItem): LaneRefusal | null {
    const seq = item.packet.seq;
    const now = this.cb.now();
    if (this.heldBelow(seq) || now < this.blockedUntilMs) {
      this.hold(seq);
      return this.refusal(now);
    }
    if (this.isSlow(now) && this.overShare(1, item.bytes)) {
      this.blockBusy(now, item.packet.target);
      this.hold(seq);
      return this.refusal(now);
    }
    this.unhold(seq);
    if (this.size === 0) this.progressMs = now;
    this.queue.push(item);
    this.laneBytes += item.bytes;
    this.pump();
    return null;
  }

  /**
   * A slow lane gives back what it holds beyond its share, latest first (they go back to the
   * agent with TARGET_BUSY and hold back this target's later packets). Returns them.
   */
  shed(): LaneItem[] {
    const now = this.cb.now();
    const out: LaneItem[] = [];
    if (!this.isSlow(now)) return out;
    while (this.queue.length > 0 && this.overShare(0, 0)) out.push(this.take(this.queue.pop()!));
    if (out.length > 0) {
      this.blockBusy(now, out[0]!.packet.target);
      this.giveBack([...out].reverse(), now);
    }
    return out;
  }

  /** Whether the lane would hold more than its share with `packets` more waiting and `bytes` more held. */
  private overShare(packets: number, bytes: number): boolean {
    return this.queue.length + packets > this.opts.queuePacketsMax || this.laneBytes + bytes > this.opts.bytesMax;
  }

  private blockBusy(now: number, target: string): void {
    this.block(now + this.opts.busyRetryAfterMs, ErrorCode.TARGET_BUSY, `target ${target} is slow: ${this.size} packets (${this.laneBytes} bytes) wait for its handler`);
  }

  /** `seq` came back and was found dispatched already: it will not be offered again, and holds nothing back. */
  settledElsewhere(seq: number): void {
    const i = this.refusedSeqs.indexOf(seq);
    if (i >= 0) this.refusedSeqs.splice(i, 1);
  }

  /** The agent has let go of every seq up to `seq`: they will not be offered again. */
  forgetThrough(seq: number): void {
    while (this.refusedSeqs.length > 0 && this.refusedSeqs[0]! <= seq) this.refusedSeqs.shift();
  }

  /**
   * The session ended: no packet waiting here goes to the handler any more (the agent sends them
   * again on its next session). Verdicts of packets already in the handler still arrive.
   */
  close(): void {
    this.closed = true;
    this.laneBytes -= this.queue.reduce((n, item) => n + item.bytes, 0);
    this.queue.length = 0;
  }

  private pump(): void {
    if (this.closed) return;
    const now = this.cb.now();
    if (now < this.pausedUntilMs) {
      // Whoever pumps while paused makes sure a wake-up is armed for what remains.
      this.armWake(now);
      return;
    }
    // Nothing is handed over behind a packet that went back to the agent: it comes first.
    if (this.queue.length > 0 && this.heldBelow(this.queue[0]!.packet.seq)) {
      this.refuseQueued();
      return;
    }
    while (this.active < this.opts.inflightMax && this.queue.length > 0) {
      const item = this.queue.shift()!;
      this.active++;
      void this.cb.run(item).then((result) => this.verdict(item, result));
    }
  }

  private verdict(item: LaneItem, result: HandlerResult): void {
    this.active--;
    const now = this.cb.now();
    this.progressMs = now;
    if (!result.ok && result.retryable && !this.closed) {
      item.attempts = (item.attempts ?? 1) + 1;
      // An earlier packet of this target already went back to the agent (a pipelining handler
      // failed several): this one follows it, or it would be handed over again before it.
      if (this.heldBelow(item.packet.seq)) {
        this.laneBytes -= item.bytes;
        this.hold(item.packet.seq);
        this.cb.refused(item, this.refusal(now));
        this.pump();
        return;
      }
      if (item.attempts <= this.opts.retriesInPlace + 1 && result.retryAfterMs <= this.opts.retryInPlaceMsMax) {
        // Retry here first: the packet keeps its place in seq order, ahead of the packets behind
        // it (several in the handler may fail together, and their verdicts come in any order).
        this.requeue(item);
        this.pausedUntilMs = Math.max(this.pausedUntilMs, now + result.retryAfterMs);
        this.pump();
        return;
      }
      // Hold the target back: this packet and every one queued behind it go back to the agent.
      this.laneBytes -= item.bytes;
      this.block(now + result.retryAfterMs, result.code, result.message);
      this.hold(item.packet.seq);
      this.cb.settled(item, result);
      this.refuseQueued();
    } else {
      this.laneBytes -= item.bytes;
      this.cb.settled(item, result);
    }
    this.pump();
  }

  /** Puts an item back into the queue at its seq's place. */
  private requeue(item: LaneItem): void {
    let i = 0;
    while (i < this.queue.length && this.queue[i]!.packet.seq < item.packet.seq) i++;
    this.queue.splice(i, 0, item);
  }

  /**
   * Arms one timer for the end of the pause. Timers may fire a little early or late: when this one
   * fires, the deadline it was armed for counts as reached whatever `now()` says, so an early
   * timer never leaves the lane paused with nothing armed; a pause extended meanwhile re-arms.
   */
  private armWake(now: number): void {
    if (this.wakeAtMs !== null) return;
    const deadline = this.pausedUntilMs;
    this.wakeAtMs = deadline;
    this.cb.later(() => {
      this.wakeAtMs = null;
      if (this.pausedUntilMs <= deadline) this.pausedUntilMs = 0;
      this.pump();
    }, Math.max(0, deadline - now));
  }

  private refuseQueued(): void {
    this.giveBack(this.queue.splice(0).map((item) => this.take(item)), this.cb.now());
  }

  /** An item leaves the lane: its bytes no longer count. */
  private take(item: LaneItem): LaneItem {
    this.laneBytes -= item.bytes;
    return item;
  }

  /** Items taken out of the lane go back to the agent, refused for now, in the order given. */
  private giveBack(items: LaneItem[], now: number): void {
    for (const item of items) {
      this.hold(item.packet.seq);
      this.cb.refused(item, this.refusal(now));
    }
  }

  private block(untilMs: number, code: string, message: string): void {
    if (untilMs >= this.blockedUntilMs) {
      this.blockedUntilMs = untilMs;
      this.blockCode = code;
      this.blockMessage = message;
    }
  }

  private refusal(now: number): LaneRefusal {
    return {
      code: ErrorCode.TARGET_BUSY,
      message: `an earlier packet of this target waits for a retry (${this.blockCode}: ${this.blockMessage})`,
      retryAfterMs: Math.max(this.blockedUntilMs - now, 1),
    };
  }

  /** A packet of this target below `seq` was refused and not offered again yet. */
  private heldBelow(seq: number): boolean {
    return this.refusedSeqs.length > 0 && this.refusedSeqs[0]! < seq;
  }

  private hold(seq: number): void {
    let i = this.refusedSeqs.length;
    while (i > 0 && this.refusedSeqs[i - 1]! > seq) i--;
    if (this.refusedSeqs[i - 1] !== seq) this.refusedSeqs.splice(i, 0, seq);
  }

  private unhold(seq: number): void {
    if (this.refusedSeqs[0] === seq) this.refusedSeqs.shift();
  }
}
