/**
 * One side's end of the long-poll bundle exchange (the agent has one, the gateway one per
 * session): an Outbox for what it sends and an Inbox for what it receives. No IO: the caller
 * encodes `nextBundle()` into a body, and hands each readable body it gets to `accept`.
 *
 * An unreadable body is never passed in: the Inbox's report then stays as it was, so the peer
 * learns that the body's messages did not arrive (its `seen` does not cover them) and sends
 * them again.
 */
import type { Ack, Body, Message } from './body.js';
import { Inbox } from './inbox.js';
import { checkChannelLimits, type BundleLimits, type ChannelLimits } from './limits.js';
import { Outbox } from './outbox.js';

/** A bundle to encode: this side's next bundle number, its messages, and its report of the peer's. */
export interface OutBundle extends Ack {
  bundle: number;
  messages: Message[];
}

export class BundleChannel {
  readonly limits: ChannelLimits;
  private readonly out: Outbox;
  private readonly in: Inbox;

  constructor(limits: ChannelLimits) {
    checkChannelLimits(limits);
    this.limits = { ...limits };
    this.out = new Outbox(limits);
    this.in = new Inbox(limits);
  }

  /** Queues a frame body; returns its message number. Throws LONGPOLL_QUEUE_FULL past the queue limits: back-pressure for the layer above. */
  send(bytes: Uint8Array): number {
    return this.out.send(bytes);
  }

  canSend(bytes: number): boolean {
    return this.out.canSend(bytes);
  }

  /** The next bundle: messages not yet sent or lost, up to `l` (the channel's own limits by default), with the current report. */
  nextBundle(l: BundleLimits = this.limits): OutBundle {
    const limits = { bundleMessagesMax: Math.min(l.bundleMessagesMax, this.limits.bundleMessagesMax), bundleBytesMax: Math.min(l.bundleBytesMax, this.limits.bundleBytesMax) };
    const bundle = this.out.bundlesBuilt + 1;
    return { bundle, messages: this.out.take(bundle, limits), ...this.in.ack() };
  }

  /** Takes a readable bundle's messages; returns those new to this side, in order, each once. */
  receive(bundle: { bundle: number; messages: readonly Message[] }): Uint8Array[] {
    return this.in.receive(bundle.bundle, bundle.messages);
  }

  /** Applies the peer's report; returns how many messages it let go. Throws LONGPOLL_ACK_INVALID (nothing applied) for a report of what was never sent. */
  acknowledged(ack: Ack): number {
    return this.out.acknowledged(ack);
  }

  /** A whole readable body: its report first (it may fail, and then nothing is applied), then its messages. */
  accept(body: Body): Uint8Array[] {
    this.acknowledged(body);
    return this.receive(body);
  }

  /** A response timed out: what is outstanding goes again in the next bundle. */
  resendOutstanding(): void {
    this.out.resendOutstanding();
  }

  hasFullBundle(l: BundleLimits = this.limits): boolean {
    return this.out.hasFullBundle(l);
  }

  /** What the channel holds, for stats and for the memory-bound checks. */
  stats(): { queuedMessages: number; queuedBytes: number; sendableMessages: number; heldMessages: number; heldBytes: number; delivered: number } {
    return {
      queuedMessages: this.out.queuedMessages, queuedBytes: this.out.queuedBytes, sendableMessages: this.out.sendableMessages,
      heldMessages: this.in.heldMessages, heldBytes: this.in.heldBytes, delivered: this.in.deliveredNumber,
    };
  }
}
