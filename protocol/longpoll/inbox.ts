/**
 * The receiving half of a BundleChannel: hands each message on exactly once, in number order.
 *
 * A message after a gap (a lost or unreadable bundle) is held until the gap fills, within a
 * bounded reorder window; one that does not fit is dropped unreported, so the peer sends it
 * again. A held message is reported received (selective range) and never dropped, so the peer
 * may forget it. The next message in order is always taken, whatever the window holds, so the
 * peer's lowest unacknowledged message always gets through and the exchange makes progress.
 */
import type { Ack, Message, MsgRange } from './body.js';
import { ackRangesMax } from './limits.js';

export interface InboxLimits {
  reorderMessagesMax: number;
  reorderBytesMax: number;
}

export class Inbox {
  private delivered = 0;
  private readonly held = new Map<number, Uint8Array>();
  private heldBytesNow = 0;
  private seenBundle = 0;

  constructor(private readonly limits: InboxLimits) {}

  /** Takes a readable bundle numbered `bundle`; returns the messages now deliverable, in order, each once. */
  receive(bundle: number, messages: readonly Message[]): Uint8Array[] {
    if (bundle > this.seenBundle) this.seenBundle = bundle;
    const out: Uint8Array[] = [];
    for (const m of messages) {
      if (m.n <= this.delivered || this.held.has(m.n)) continue; // a duplicate: already handed on or held
      if (m.n === this.delivered + 1) {
        out.push(m.bytes);
        this.delivered = m.n;
        this.drain(out);
        continue;
      }
      // Past the window (by number, count or bytes): dropped unreported; the peer sends it again.
      if (m.n - this.delivered > this.limits.reorderMessagesMax) continue;
      if (this.held.size >= this.limits.reorderMessagesMax || this.heldBytesNow + m.bytes.length > this.limits.reorderBytesMax) continue;
      this.held.set(m.n, m.bytes);
      this.heldBytesNow += m.bytes.length;
    }
    return out;
  }

  private drain(out: Uint8Array[]): void {
    for (;;) {
      const next = this.held.get(this.delivered + 1);
      if (next === undefined) return;
      this.held.delete(this.delivered + 1);
      this.heldBytesNow -= next.length;
      out.push(next);
      this.delivered++;
    }
  }

  /** What to report to the peer: everything delivered, the held messages as ranges (the lowest ackRangesMax), the last bundle read. */
  ack(): Ack {
    const ranges: MsgRange[] = [];
    if (this.held.size > 0) {
      const ns = [...this.held.keys()].sort((a, b) => a - b);
      for (const n of ns) {
        const last = ranges[ranges.length - 1];
        if (last && last[1] === n - 1) last[1] = n;
        else if (ranges.length === ackRangesMax) break; // under-reporting is safe: the peer resends, we drop the duplicate
        else ranges.push([n, n]);
      }
    }
    return { ack: this.delivered, ranges, seen: this.seenBundle };
  }

  get deliveredNumber(): number {
    return this.delivered;
  }

  get heldMessages(): number {
    return this.held.size;
  }

  get heldBytes(): number {
    return this.heldBytesNow;
  }
}
