/**
 * The sending half of a BundleChannel: messages queued and not yet acknowledged by the peer.
 *
 * Each message is in one of three states: never sent; sent in bundle b and its fate unknown
 * (outstanding: not put in the next bundle, so a request held at the gateway is not copied into
 * the next one); or to be sent again (lost). A message is dropped only when the peer reports it
 * received. It is marked lost when the peer reports having read a bundle at least as new as the
 * one that carried it (`seen`) without reporting the message, which covers a lost or unreadable
 * body as soon as any later body gets through; and all outstanding ones are marked lost when the
 * caller says a response timed out (`resendOutstanding`).
 */
import { ErrorCode, FerryError } from '../errors.js';
import type { Ack, Message } from './body.js';
import type { BundleLimits } from './limits.js';

interface Entry {
  bytes: Uint8Array;
  /** 0: never sent or to be sent again; else the bundle it was last sent in */
  sentIn: number;
}

export interface OutboxLimits {
  messageBytesMax: number;
  queueMessagesMax: number;
  queueBytesMax: number;
}

export class Outbox {
  // Insertion order is number order: a Map gives it with O(1) deletion of selectively acked ones.
  private readonly queue = new Map<number, Entry>();
  private bytes = 0;
  private lastNumber = 0;
  /** the highest message number put in a bundle: the peer cannot have received any above it */
  private highestSent = 0;
  /** the last bundle number built: the peer cannot have seen one above it */
  private lastBundle = 0;

  constructor(private readonly limits: OutboxLimits) {}

  /** True when a message of `n` bytes would be queued now. */
  canSend(n: number): boolean {
    return n <= this.limits.messageBytesMax && this.queue.size < this.limits.queueMessagesMax && this.bytes + n <= this.limits.queueBytesMax;
  }

  /** Queues one message; returns its number. Throws LONGPOLL_QUEUE_FULL (the caller waits for acks) or LONGPOLL_BODY_TOO_LARGE. */
  send(bytes: Uint8Array): number {
    if (bytes.length === 0 || bytes.length > this.limits.messageBytesMax) {
      throw new FerryError(ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll message of ${bytes.length} bytes; it must be 1 to ${this.limits.messageBytesMax}`);
    }
    if (!this.canSend(bytes.length)) {
      throw new FerryError(ErrorCode.LONGPOLL_QUEUE_FULL, `long-poll queue full: ${this.queue.size} messages, ${this.bytes} bytes not yet acknowledged (at most ${this.limits.queueMessagesMax} and ${this.limits.queueBytesMax})`);
    }
    const n = ++this.lastNumber;
    this.queue.set(n, { bytes, sentIn: 0 });
    this.bytes += bytes.length;
    return n;
  }

  /** The messages to send next (never sent, or lost), in number order, up to the limits; they become outstanding in bundle `bundle`. */
  take(bundle: number, l: BundleLimits): Message[] {
    if (bundle <= this.lastBundle) throw new FerryError(ErrorCode.INTERNAL, `bundle ${bundle} is not after ${this.lastBundle}`);
    this.lastBundle = bundle;
    const out: Message[] = [];
    let bytes = 0;
    for (const [n, e] of this.queue) {
      if (e.sentIn !== 0) continue;
      // Stop rather than skip: a smaller later message would overtake and widen the peer's gap.
      if (out.length === l.bundleMessagesMax || bytes + e.bytes.length > l.bundleBytesMax) break;
      e.sentIn = bundle;
      bytes += e.bytes.length;
      out.push({ n, bytes: e.bytes });
      if (n > this.highestSent) this.highestSent = n;
    }
    return out;
  }

  /** True when the messages waiting to be sent fill a bundle (either limit). */
  hasFullBundle(l: BundleLimits): boolean {
    let count = 0;
    let bytes = 0;
    for (const e of this.queue.values()) {
      if (e.sentIn !== 0) continue;
      count++;
      bytes += e.bytes.length;
      if (count >= l.bundleMessagesMax || bytes >= l.bundleBytesMax) return true;
    }
    return false;
  }

  /** Messages waiting to be sent (never sent or lost). */
  get sendableMessages(): number {
    let count = 0;
    for (const e of this.queue.values()) if (e.sentIn === 0) count++;
    return count;
  }

  /**
   * Applies the peer's report: drops what it received, marks lost what a bundle it has read carried
   * and it did not receive. Throws LONGPOLL_ACK_INVALID, applying nothing, when the report names a
   * message or bundle this side never sent (the trust rule: the peer's word only within what we issued).
   */
  acknowledged(a: Ack): number {
    const top = a.ranges.length > 0 ? a.ranges[a.ranges.length - 1]![1] : a.ack;
    if (top > this.highestSent) throw new FerryError(ErrorCode.LONGPOLL_ACK_INVALID, `the peer acknowledged message ${top}; only up to ${this.highestSent} was sent`);
    if (a.seen > this.lastBundle) throw new FerryError(ErrorCode.LONGPOLL_ACK_INVALID, `the peer reported bundle ${a.seen} read; only up to ${this.lastBundle} was sent`);
    let dropped = 0;
    const drop = (n: number, e: Entry): void => {
      this.queue.delete(n);
      this.bytes -= e.bytes.length;
      dropped++;
    };
    let r = 0;
    for (const [n, e] of this.queue) {
      if (n <= a.ack) { drop(n, e); continue; }
      while (r < a.ranges.length && a.ranges[r]![1] < n) r++;
      const range = a.ranges[r];
      if (range && range[0] <= n) { drop(n, e); continue; }
      if (range === undefined && n > this.highestSent) break; // never sent: nothing more to decide
      if (e.sentIn !== 0 && e.sentIn <= a.seen) e.sentIn = 0;
    }
    return dropped;
  }

  /** A response timed out: every outstanding message goes in the next bundle again. */
  resendOutstanding(): void {
    for (const e of this.queue.values()) e.sentIn = 0;
  }

  get queuedMessages(): number {
    return this.queue.size;
  }

  get queuedBytes(): number {
    return this.bytes;
  }

  get bundlesBuilt(): number {
    return this.lastBundle;
  }
}
