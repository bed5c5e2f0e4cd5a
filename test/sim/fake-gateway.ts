/**
 * A fake gateway (issue 10, case 2): what an agent's dial reaches while the fault `fake-gateway`
 * hijacks it (a spoofed address on a plaintext link). It speaks the real protocol, but every
 * WELCOME or ACK it sends names seqs the agent never issued, in one of the ways below, chosen per
 * connection. The agent must refuse them (GATEWAY_PROTOCOL_VIOLATION, or FRAME_MALFORMED for a seq
 * beyond seqMax) and keep every stored packet: the `lost` checker sees any it let go.
 *
 * The fake peeks at the device's store for its lastSeq (a simulation may) and names seqs at least
 * 10,000 above it, far more than a device appends while the fake's frame is on its way. A fresh
 * store (made empty by a wipe) renumbers above what a WELCOME names (it cannot tell a new gateway
 * from a fake): the fake never sends it an honest WELCOME, and names seqs above every seq the
 * device ever sent the real gateway too. Either would leave the real gateway's record of the
 * wiped store's earlier life above or among the new seqs, so it would ack new packets or be
 * refused for good (a weakness the trust rule does not cover: docs/guarantees.md, a fake gateway;
 * seed 3765432253 found the second, a fake naming seqs below the earlier life's).
 */
import { FrameType, seqMax, seqRenumberTopMax, type Frame, type HelloFrame, type WelcomeFrame } from '../../protocol/frames.js';
import type { Transport } from '../../protocol/transport.js';
import type { Rng } from './rng.js';

export const fakeGatewayModes = [
  /** WELCOME dispatchedSeq above lastSeq */
  'welcome-above',
  /** WELCOME ranges above lastSeq */
  'welcome-ranges-above',
  /** WELCOME dispatchedSeq at the ends of the range: seqRenumberTopMax, seqMax, 2^53-1 (refused at decode) */
  'welcome-huge',
  /** WELCOME seenSeq beyond what a fresh store renumbers above */
  'welcome-seen-huge',
  /** an honest-looking WELCOME, then an ACK of a seq above lastSeq */
  'ack-above',
  /** an honest-looking WELCOME, then ACK ranges above lastSeq */
  'ack-ranges-above',
  /** an honest-looking WELCOME, then an ACK of seqMax or 2^53-1 */
  'ack-huge',
  /** an honest-looking WELCOME, then nothing but PONGs: packets sent to it stay un-acked */
  'silent',
] as const;
export type FakeGatewayMode = (typeof fakeGatewayModes)[number];

export interface FakeGatewayView {
  /** the device's store: its highest issued seq, and whether it is fresh */
  store(): { lastSeq: number; fresh: boolean } | null;
  /** the highest seq the device ever sent the real gateway, in any life of its store */
  sentToGateway(): number;
}

export class FakeGateway {
  constructor(private readonly rng: Rng, private readonly device: FakeGatewayView) {}

  /** A seq this agent never issued: at least 10,000 above its store's lastSeq (and, for a fresh store, above all the gateway knows). */
  private above(): number {
    const store = this.device.store();
    const floor = store?.fresh !== false ? Math.max(store?.lastSeq ?? 0, this.device.sentToGateway()) : store.lastSeq;
    return floor + this.rng.int(10_000, 1_000_000);
  }

  /** Takes one hijacked connection. */
  accept(t: Transport): void {
    const mode = this.rng.pick(fakeGatewayModes);
    let acked = false;
    t.onFrame((f: Frame) => {
      switch (f.t) {
        case FrameType.HELLO:
          return t.send(this.welcome(mode, f));
        case FrameType.DATA:
          if (acked) return;
          acked = true;
          if (mode === 'ack-above') return t.send({ t: FrameType.ACK, seq: this.above(), creditPackets: 16, creditBytes: 16 * 1024 });
          if (mode === 'ack-ranges-above') {
            const a = this.above();
            return t.send({ t: FrameType.ACK, seq: 0, ranges: [[a, a + this.rng.int(0, 50)]], creditPackets: 16, creditBytes: 16 * 1024 });
          }
          if (mode === 'ack-huge') return t.send({ t: FrameType.ACK, seq: this.rng.pick([seqMax, Number.MAX_SAFE_INTEGER]), creditPackets: 16, creditBytes: 16 * 1024 });
          return;
        case FrameType.PING:
          return t.send({ t: FrameType.PONG, id: f.id });
        default:
          return;
      }
    });
  }

  private welcome(mode: FakeGatewayMode, h: HelloFrame): WelcomeFrame {
    const w: WelcomeFrame = { t: FrameType.WELCOME, session: 'fake', dispatchedSeq: h.ackedSeq, creditPackets: 16, creditBytes: 16 * 1024, pingIntervalMs: 1000 };
    // A fresh store renumbers on any WELCOME: it gets one that names seqs it never issued.
    const fresh = this.device.store()?.fresh ?? true;
    switch (fresh && mode !== 'welcome-huge' && mode !== 'welcome-seen-huge' ? 'welcome-above' : mode) {
      case 'welcome-above':
        return { ...w, dispatchedSeq: this.above() };
      case 'welcome-ranges-above': {
        const a = this.above();
        return { ...w, ranges: [[a, a + this.rng.int(0, 50)]] };
      }
      case 'welcome-huge':
        // A fresh store renumbers up to seqRenumberTopMax; from there a later wipe could never
        // renumber above the gateway's record again, so a fresh store gets only refused seqs.
        return { ...w, dispatchedSeq: this.rng.pick(fresh ? [seqMax, Number.MAX_SAFE_INTEGER] : [seqRenumberTopMax, seqMax, Number.MAX_SAFE_INTEGER]) };
      case 'welcome-seen-huge':
        return { ...w, dispatchedSeq: fresh ? this.above() : h.ackedSeq, seenSeq: this.rng.pick([seqRenumberTopMax + 1, seqMax, Number.MAX_SAFE_INTEGER]) };
      default:
        return w;
    }
  }
}
