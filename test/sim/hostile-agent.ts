/**
 * A hostile agent (issue 10): a second kind of client of the real gateway, injected by the fault
 * `hostile-agent`, that sends garbage which still decodes (or just fails to): HELLOs claiming an
 * honest agent's ID without its token, huge `ackedSeq` in HELLO and PING, every other seq (so the
 * dispatch log keeps a gap per packet), seqs out of range, targets with Unicode noncharacters and
 * lone surrogates, a second HELLO, bursts over its credit. Its own ID is registered (an
 * authenticated but hostile agent). The checkers owe it nothing (checkers.ts, hostileAgentId):
 * what they check is that the honest agents' guarantees still hold. With the downlink on (issue
 * 12) it names a downlink window in HELLO (most times), and sends DOWN_ACKs that answer, besides
 * its own messages, honest agents' messages the gateway has just taken for them, and made-up ids:
 * none of those may settle anything (the oracle's authority checker).
 */
import { FrameType, protocolVersion, seqMax, type DownResult, type Frame } from '../../protocol/frames.js';
import type { Packet } from '../../protocol/packet.js';
import type { Transport } from '../../protocol/transport.js';
import { hostileAgentId } from './checkers.js';
import type { WorldContext } from './context.js';
import { routeTargets } from './gateway-host.js';
import type { Rng } from './rng.js';
import type { SimClock } from './sim-clock.js';

/** Targets it sends to: the real routes, and the same with characters MQTT forbids. */
const hostileTargets = [
  ...Object.values(routeTargets).flat(),
  'file/x\uFFFF', 'down/one/\uFDD0', 'down/pipe/a\uFDEF', 'rot/\u{10FFFF}', 'file/\uD800', 'file/a\u0000b', 'nowhere/at/all',
];

export class HostileAgent {
  private readonly clock: SimClock;
  private transport: Transport | null = null;
  private stopped = false;
  private nextSeq = 1;
  private packets = 0;
  /** seqs sent in this session and neither acked nor nacked */
  private readonly inflight = new Set<number>();
  private creditPackets = 0;
  /** the downlink's clock and draws, apart from the rest: without the downlink it acts as before issue 12 */
  private readonly dlClock: SimClock | null;
  /** ids of its own messages it got in DOWN frames */
  private readonly ownIds: string[] = [];

  /**
   * @param victims the honest agents' IDs, whose identity it tries to take
   * @param tokenOf the token registered for an agent ID at the gateway
   */
  constructor(
    private readonly w: WorldContext, private readonly rng: Rng, private readonly name: string, private readonly victims: string[], private readonly tokenOf: (agent: string) => string,
    private readonly dlRng: Rng | null = null,
  ) {
    this.clock = w.time.view(name, rng.fork('clock'), w.jitter);
    this.dlClock = dlRng ? w.time.view(`${name} downlink`, dlRng.fork('clock'), w.jitter) : null;
  }

  get active(): boolean {
    return !this.stopped;
  }

  /** Dials now and again after every session, for `forMs`, then stops. */
  start(forMs: number): void {
    this.w.trace.event('hostile', `${this.name} starts for ${forMs} ms`);
    this.clock.setTimeout(() => this.stop(), forMs);
    this.dial();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.w.trace.event('hostile', `${this.name} stops`);
    this.transport?.close();
    this.transport = null;
    this.clock.kill();
    this.dlClock?.kill();
  }

  private dial(): void {
    if (this.stopped) return;
    this.w.net.dialer(hostileAgentId, this.clock)().then(
      (t) => (this.stopped ? t.close() : this.session(t)),
      () => this.clock.setTimeout(() => this.dial(), this.rng.int(50, 500)),
    );
  }

  private session(t: Transport): void {
    this.transport = t;
    this.inflight.clear();
    let welcomed = false;
    t.onFrame((f: Frame) => {
      if (f.t === FrameType.WELCOME) {
        welcomed = true;
        this.creditPackets = f.creditPackets;
        this.nextSeq = Math.max(this.nextSeq, f.dispatchedSeq + 1);
        this.act(t);
        this.forge(t);
      } else if (f.t === FrameType.ACK) {
        this.creditPackets = f.creditPackets;
        for (const s of [...this.inflight]) if (s <= f.seq || f.ranges?.some(([a, b]) => s >= a && s <= b)) this.inflight.delete(s);
      } else if (f.t === FrameType.NACK) {
        this.inflight.delete(f.seq);
      } else if (f.t === FrameType.PING) {
        t.send({ t: FrameType.PONG, id: f.id });
      } else if (f.t === FrameType.DOWN) {
        for (const m of f.messages) this.ownIds.push(m.id);
      }
    });
    void t.closed.then(() => {
      if (this.transport === t) this.transport = null;
      if (!welcomed) this.w.trace.event('hostile', `${this.name} refused`);
      this.clock.setTimeout(() => this.dial(), this.rng.int(50, 500));
    });
    t.send(this.hello());
  }

  /** Its own ID with its token, or an honest agent's ID without the right token; `ackedSeq` often huge. */
  private hello(): Frame {
    const h = this.helloWithoutWindow();
    // With the downlink, most HELLOs name a window (so the gateway starts a downlink sender for it).
    if (h.t === FrameType.HELLO && this.dlRng?.chance(0.8)) return { ...h, downMessagesMax: this.dlRng.int(1, 64), downBytesMax: this.dlRng.int(1, 1 << 20) };
    return h;
  }

  /**
   * DOWN_ACKs every 20-500 ms while the session lasts (with the downlink): results for its own
   * messages, for honest agents' messages just taken for them, and for made-up ids, accepted or
   * refused with a code of its own; the oracle is told which ids it named.
   */
  private forge(t: Transport): void {
    const rng = this.dlRng;
    const dl = this.w.dl;
    if (!rng || !dl || this.stopped || this.transport !== t) return;
    const results: DownResult[] = [];
    const forged: DownResult[] = [];
    for (let i = rng.int(1, 6); i > 0; i--) {
      const r = rng.next();
      const foreign = dl.recentlyTaken(rng);
      const id = r < 0.3 && this.ownIds.length > 0 ? this.ownIds.shift()! : r < 0.85 && foreign ? foreign : `made-up-${rng.int(0, 1e6)}`;
      const result: DownResult = rng.chance(0.5) ? { id, ok: true } : { id, ok: false, code: 'HOSTILE_FORGED', reason: 'a hostile agent answers for another' };
      results.push(result);
      if (id === foreign) forged.push(result);
    }
    dl.forgedResults(forged);
    t.send({ t: FrameType.DOWN_ACK, results });
    this.dlClock!.setTimeout(() => this.forge(t), rng.int(20, 500));
  }

  private helloWithoutWindow(): Frame {
    const ackedSeq = this.rng.pick([0, this.rng.int(0, 200), seqMax, Number.MAX_SAFE_INTEGER]);
    const r = this.rng.next();
    if (r < 0.6 || this.victims.length === 0) return { t: FrameType.HELLO, version: protocolVersion, agent: hostileAgentId, token: this.tokenOf(hostileAgentId), ackedSeq: this.rng.chance(0.7) ? this.rng.int(0, 200) : ackedSeq };
    const victim = this.rng.pick(this.victims);
    // Its own (valid) token under the victim's ID, a wrong one, or none.
    const token = this.rng.pick([this.tokenOf(hostileAgentId), 'guessed-token', undefined]);
    return { t: FrameType.HELLO, version: protocolVersion, agent: victim, ackedSeq, ...(token !== undefined ? { token } : {}) };
  }

  /** One hostile act every 20-300 ms while the session lasts. */
  private act(t: Transport): void {
    if (this.stopped || this.transport !== t) return;
    const r = this.rng.next();
    if (r < 0.6) {
      // Every other seq, within its credit: each one leaves a gap at the gateway.
      const room = Math.min(this.rng.int(1, 4), this.creditPackets - this.inflight.size);
      const packets: Packet[] = [];
      for (let i = 0; i < room; i++) packets.push(this.packet(this.nextSeq += 2));
      if (packets.length > 0) t.send({ t: FrameType.DATA, packets });
    } else if (r < 0.75) {
      t.send({ t: FrameType.PING, id: this.rng.int(0, 1000), ackedSeq: this.rng.pick([seqMax, this.rng.int(0, this.nextSeq), this.nextSeq + 1000]) });
    } else if (r < 0.8) {
      t.send({ t: FrameType.PING, id: 1, ackedSeq: Number.MAX_SAFE_INTEGER });
    } else if (r < 0.85) {
      t.send({ t: FrameType.DATA, packets: [this.packet(this.rng.pick([0, seqMax + 1, Number.MAX_SAFE_INTEGER]))] });
    } else if (r < 0.9) {
      t.send(this.hello());
    } else if (r < 0.93) {
      // Far over its credit.
      t.send({ t: FrameType.DATA, packets: Array.from({ length: 40 }, () => this.packet(this.nextSeq += 2)) });
    } else {
      // Seqs below what it sent, out of order, and an old one again.
      t.send({ t: FrameType.DATA, packets: [this.packet(this.rng.int(1, this.nextSeq)), this.packet(this.rng.int(1, this.nextSeq))] });
    }
    this.clock.setTimeout(() => this.act(t), this.rng.int(20, 300));
  }

  private packet(seq: number): Packet {
    if (seq >= 1 && seq <= seqMax) this.inflight.add(seq);
    const id = `${hostileAgentId}-${++this.packets}`;
    return { seq, target: this.rng.pick(hostileTargets), ts: this.clock.now(), data: { id, pad: 'x'.repeat(this.rng.int(0, 64)) } };
  }
}
