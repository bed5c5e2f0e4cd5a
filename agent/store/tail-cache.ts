import type { Packet } from '../../protocol/packet.js';

/**
 * The most recent durable packets, in memory, so a link that keeps up reads them without
 * touching flash. Bounded in packets and (roughly) bytes; the oldest fall out first.
 */
export class TailCache {
  private packets: Packet[] = [];
  private bytes = 0;

  constructor(private readonly packetsMax = 4096, private readonly bytesMax = 2 * 1024 * 1024) {}

  /** The seq of the oldest packet held, or undefined when empty. */
  get firstSeq(): number | undefined {
    return this.packets[0]?.seq;
  }

  get length(): number {
    return this.packets.length;
  }

  at(i: number): Packet {
    return this.packets[i]!;
  }

  push(p: Packet): void {
    this.packets.push(p);
    this.bytes += sizeOf(p);
    while (this.packets.length > this.packetsMax || this.bytes > this.bytesMax) this.bytes -= sizeOf(this.packets.shift()!);
  }

  /** Forgets packets at or below `seq` (acked). Not while a reader walks it by index. */
  dropThrough(seq: number): void {
    while (this.packets.length > 0 && this.packets[0]!.seq <= seq) this.bytes -= sizeOf(this.packets.shift()!);
  }

  /** Index of the first packet with seq > `seq`. */
  indexAfter(seq: number): number {
    let lo = 0;
    let hi = this.packets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.packets[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A rough size, to bound the cache's memory. */
function sizeOf(p: Packet): number {
  return p.target.length + 64 + (p.data instanceof Uint8Array ? p.data.length : 64);
}
