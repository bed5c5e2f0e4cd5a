import type { Packet } from '../../protocol/packet.js';

export interface Inflight {
  packet: Packet;
  /** what the packet counts against the byte credit */
  bytes: number;
}

/**
 * What the agent has in flight (sent, neither acked nor nacked) against the gateway's credit and
 * the agent's own bound. The gateway grants credit in packets and bytes; a packet bigger than the
 * byte credit may go alone, so one oversize packet can never wedge the link.
 */
export class InflightWindow {
  private readonly entries = new Map<number, Inflight>();
  private totalBytes = 0;
  creditPackets = 0;
  creditBytes = 0;

  constructor(private readonly packetsMax: number) {}

  get size(): number {
    return this.entries.size;
  }

  setCredit(packets: number, bytes: number): void {
    this.creditPackets = packets;
    this.creditBytes = bytes;
  }

  /** Packets that may still be sent now. */
  get packetsRoom(): number {
    return Math.min(this.packetsMax, this.creditPackets) - this.entries.size;
  }

  /** A gate that admits packets while they fit, counting the ones it admitted (not yet added). */
  room(): (bytes: number) => boolean {
    let packets = this.entries.size;
    let bytes = this.totalBytes;
    const packetsMax = Math.min(this.packetsMax, this.creditPackets);
    return (b) => {
      if (packets >= packetsMax || (packets > 0 && bytes + b > this.creditBytes)) return false;
      packets++;
      bytes += b;
      return true;
    };
  }

  add(e: Inflight): void {
    this.entries.set(e.packet.seq, e);
    this.totalBytes += e.bytes;
  }

  /** Takes `seq` out of flight (acked or nacked); undefined if it was not in flight. */
  take(seq: number): Inflight | undefined {
    const e = this.entries.get(seq);
    if (!e) return undefined;
    this.entries.delete(seq);
    this.totalBytes -= e.bytes;
    return e;
  }

  /** The `ts` of the oldest packet in flight, or undefined when none is (for the PING's backlog age). */
  oldestTs(): number | undefined {
    let min: number | undefined;
    for (const e of this.entries.values()) if (min === undefined || e.packet.ts < min) min = e.packet.ts;
    return min;
  }

  /** Takes every packet `done` says is done out of flight. */
  settle(done: (seq: number) => boolean): void {
    for (const seq of [...this.entries.keys()]) if (done(seq)) this.take(seq);
  }

  clear(): void {
    this.entries.clear();
    this.totalBytes = 0;
  }
}
