import type { Packet } from '../../protocol/packet.js';

interface Entry {
  packet: Packet;
  bytes: number;
  dueMs: number;
}

/**
 * Packets the gateway refused for now (a NACK with retry-after), kept in memory until they are
 * due, in seq order. Bounded: while it is full the link reads no new packets from the store, so
 * a target that fails for hours costs a bounded amount of memory (and then stalls the others).
 */
export class RetryQueue {
  private entries: Entry[] = [];
  private totalBytes = 0;

  constructor(private readonly packetsMax: number, private readonly bytesMax: number) {}

  get size(): number {
    return this.entries.length;
  }

  get full(): boolean {
    return this.entries.length >= this.packetsMax || this.totalBytes >= this.bytesMax;
  }

  /** The `ts` of the oldest packet waiting, or undefined when none is (for the PING's backlog age). */
  oldestTs(): number | undefined {
    let min: number | undefined;
    for (const e of this.entries) if (min === undefined || e.packet.ts < min) min = e.packet.ts;
    return min;
  }

  add(packet: Packet, bytes: number, dueMs: number): void {
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1]!.packet.seq > packet.seq) i--;
    if (this.entries[i - 1]?.packet.seq === packet.seq) return;
    this.entries.splice(i, 0, { packet, bytes, dueMs });
    this.totalBytes += bytes;
  }

  /**
   * The earliest due time after `nowMs`, or null. Packets already due but still here wait for
   * credit (the next ACK pumps them) or for an earlier packet of their target (counted here).
   */
  nextDueMs(nowMs: number): number | null {
    let min: number | null = null;
    for (const e of this.entries) if (e.dueMs > nowMs && (min === null || e.dueMs < min)) min = e.dueMs;
    return min;
  }

  /**
   * Takes due packets in seq order while `fits` accepts them. A packet not yet due holds back the
   * later packets of its target (they must not overtake it), not those of other targets.
   */
  takeDue(nowMs: number, fits: (bytes: number) => boolean): { packet: Packet; bytes: number }[] {
    const out: { packet: Packet; bytes: number }[] = [];
    const waiting = new Set<string>();
    const keep: Entry[] = [];
    let i = 0;
    for (; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.dueMs > nowMs || waiting.has(e.packet.target)) {
        waiting.add(e.packet.target);
        keep.push(e);
        continue;
      }
      if (!fits(e.bytes)) break;
      this.totalBytes -= e.bytes;
      out.push({ packet: e.packet, bytes: e.bytes });
    }
    if (out.length > 0) this.entries = keep.concat(this.entries.slice(i));
    return out;
  }

  /** Forgets packets the gateway acked after all (e.g. a resend from an earlier session landed). */
  remove(isDone: (seq: number) => boolean): void {
    const keep = this.entries.filter((e) => !isDone(e.packet.seq));
    if (keep.length === this.entries.length) return;
    this.entries = keep;
    this.totalBytes = keep.reduce((n, e) => n + e.bytes, 0);
  }

  clear(): void {
    this.entries = [];
    this.totalBytes = 0;
  }
}
