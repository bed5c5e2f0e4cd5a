import { dataFrameOverheadBytes, packetWireBytes } from '../../protocol/codec.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import type { WelcomeFrame } from '../../protocol/frames.js';
import { checkPacket, type PacketLimits } from '../../protocol/limits.js';
import type { Packet } from '../../protocol/packet.js';

/**
 * The limits one gateway's WELCOME named (protocol/frames.ts): the link sizes DATA frames to its
 * `frameBytesMax` and keeps back, as a dead letter, a packet it could never take. Sent anyway, such
 * a packet would come back NACKed, or (over the frame limit) end the session on every reconnect,
 * with every later packet behind it. A gateway older than these fields names none: nothing is held back.
 */
export class GatewayLimits {
  /** the largest DATA frame body the gateway reads; undefined: not known */
  readonly frameBytesMax: number | undefined;
  private readonly packetLimits: PacketLimits | undefined;
  private readonly wire = new WeakMap<Packet, number>();

  /** @param carrierFrameBytesMax what the transport itself carries in one frame (long-poll: a message), if it has a limit of its own */
  constructor(w?: WelcomeFrame, carrierFrameBytesMax?: number) {
    // The smaller of the two: a frame the carrier cannot take would end the session on every reconnect.
    const limits = [w?.frameBytesMax, carrierFrameBytesMax].filter((n): n is number => n !== undefined);
    this.frameBytesMax = limits.length > 0 ? Math.min(...limits) : undefined;
    this.packetLimits = w?.dataBytesMax !== undefined && w.dataDepthMax !== undefined ? { dataBytesMax: w.dataBytesMax, dataDepthMax: w.dataDepthMax } : undefined;
  }

  /** Why the gateway could never take `p` (over its packet limits, or alone over its frameBytesMax), or null. */
  refusal(p: Packet): FerryError | null {
    try {
      if (this.packetLimits) checkPacket(p, this.packetLimits);
    } catch (err) {
      return err as FerryError;
    }
    if (this.frameBytesMax !== undefined && dataFrameOverheadBytes + this.wireBytes(p) > this.frameBytesMax) {
      return new FerryError(ErrorCode.DATA_TOO_LARGE, `the packet takes ${dataFrameOverheadBytes + this.wireBytes(p)} bytes in a DATA frame; the gateway (or the transport) takes frames of at most ${this.frameBytesMax}`);
    }
    return null;
  }

  /** `p`'s bytes inside a DATA frame body; 0 when the gateway named no frame limit (nothing to size against). */
  wireBytes(p: Packet): number {
    if (this.frameBytesMax === undefined) return 0;
    let n = this.wire.get(p);
    if (n === undefined) this.wire.set(p, (n = packetWireBytes(p)));
    return n;
  }
}
