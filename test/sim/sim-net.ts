/**
 * A simulated network between agents and one gateway: connections are pairs of `Transport`s
 * (protocol/transport.ts) whose frames are encoded with the real codec on one side and decoded
 * by a `FrameDecoder` on the other (sometimes split in two chunks), so frame limits and encodings
 * are exercised. Delivery happens on simulated time (SimTime), in order per direction.
 *
 * Faults, per connection or per agent:
 * - delay: each frame takes latency (order kept per direction);
 * - stall: nothing is delivered until a moment, then everything in order;
 * - cut: both ends close with an error, frames in flight are lost;
 * - black hole: frames are silently dropped, both ends look open (time-outs must find it);
 * - half open: the agent's end fails (it noticed) while the gateway's stays open and hears
 *   nothing; the agent dials again, so the gateway holds two sessions of one agent at once;
 * - partition: an agent's connections black-holed and its dials time out, until healed;
 * - hijack: an agent's dials reach a fake gateway instead (a spoofed address on a plaintext link),
 *   until healed.
 * A process kill closes the dead side's ends silently; the peer sees a reset. A power cut of a
 * host is silence: the peer sees nothing.
 */
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import type { Transport } from '../../protocol/transport.js';
import type { Rng } from './rng.js';
import type { SimTime } from './sim-clock.js';
import type { Trace } from './trace.js';

export interface NetOptions {
  latencyMsMin: number;
  latencyMsMax: number;
  frameBytesMax: number;
  /** how long a dial waits before it fails, when nothing answers */
  connectTimeoutMs: number;
}

export const netError = (code: string, message: string): Error => Object.assign(new Error(message), { code });

type Item = { bytes: Buffer; readyAt: number } | { fin: Error | undefined; readyAt: number };

/** One direction of a connection: a queue delivered in order to the receiving end. */
class Pipe {
  readonly queue: Item[] = [];
  lastReadyAt = 0;
  timer: ReturnType<SimTime['at']> | null = null;
  blackHole = false;

  constructor(readonly conn: SimConnection, readonly to: SimEnd) {}
}

export class SimEnd implements Transport {
  readonly closed: Promise<Error | undefined>;
  private resolveClosed!: (e: Error | undefined) => void;
  private listeners: ((f: Frame) => void)[] = [];
  done = false;
  /** the process holding this end died: nothing reaches its code any more */
  dead = false;
  readonly decoder: FrameDecoder;

  constructor(readonly conn: SimConnection, readonly side: 'agent' | 'gateway', frameBytesMax: number) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.decoder = new FrameDecoder({ frameBytesMax });
  }

  send(frame: Frame): void {
    if (this.done || this.dead) return;
    this.conn.transmit(this, frame);
  }

  onFrame(listener: (frame: Frame) => void): void {
    this.listeners.push(listener);
  }

  /** As a socket's end(): frames sent before still reach the peer, then it sees the close. */
  close(err?: Error): void {
    if (this.done) return;
    this.finish(err);
    this.conn.finFrom(this);
  }

  /** Ends this side now, as the network or a dead peer did it. */
  finish(err: Error | undefined): void {
    if (this.done) return;
    this.done = true;
    if (!this.dead) this.resolveClosed(err);
  }

  receive(bytes: Buffer): void {
    if (this.done || this.dead) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(bytes);
    } catch (err) {
      this.close(err as Error);
      return;
    }
    for (const f of frames) {
      if (this.done || this.dead) return;
      for (const l of this.listeners) l(f);
    }
  }
}

export class SimConnection {
  readonly agentEnd: SimEnd;
  readonly gatewayEnd: SimEnd;
  private readonly up: Pipe;
  private readonly down: Pipe;
  /** nothing is delivered before this moment */
  stallUntil = 0;

  /** @param toFake the agent's dial reached a fake gateway (hijack), not the gateway process */
  constructor(private readonly net: SimNet, readonly id: number, readonly agent: string, readonly toFake = false) {
    this.agentEnd = new SimEnd(this, 'agent', net.opts.frameBytesMax);
    this.gatewayEnd = new SimEnd(this, 'gateway', net.opts.frameBytesMax);
    this.up = new Pipe(this, this.gatewayEnd);
    this.down = new Pipe(this, this.agentEnd);
  }

  get open(): boolean {
    return !this.agentEnd.done || !this.gatewayEnd.done;
  }

  private pipeFrom(end: SimEnd): Pipe {
    return end === this.agentEnd ? this.up : this.down;
  }

  transmit(from: SimEnd, frame: Frame): void {
    const pipe = this.pipeFrom(from);
    this.net.trace.event('frame', `c${this.id} ${from.side === 'agent' ? '>' : '<'} ${describe(frame)}${pipe.blackHole ? ' (black hole)' : ''}`);
    if (pipe.blackHole) return;
    if (from.side === 'agent' && !this.toFake && frame.t === FrameType.DATA) this.net.noteSent(this.agent, frame.packets);
    this.enqueue(pipe, { bytes: encodeFrame(frame), readyAt: 0 });
  }

  finFrom(from: SimEnd): void {
    const pipe = this.pipeFrom(from);
    if (pipe.blackHole) return;
    this.enqueue(pipe, { fin: undefined, readyAt: 0 });
  }

  private enqueue(pipe: Pipe, item: Item): void {
    const now = this.net.time.now();
    // Order per direction: a frame is never ready before the one sent before it.
    item.readyAt = Math.max(now + this.net.rng.int(this.net.opts.latencyMsMin, this.net.opts.latencyMsMax), pipe.lastReadyAt);
    pipe.lastReadyAt = item.readyAt;
    pipe.queue.push(item);
    this.arm(pipe);
  }

  private arm(pipe: Pipe): void {
    if (pipe.timer !== null) this.net.time.cancel(pipe.timer);
    pipe.timer = null;
    const head = pipe.queue[0];
    if (!head) return;
    pipe.timer = this.net.time.at(Math.max(head.readyAt, this.stallUntil), () => this.deliver(pipe), 'net');
  }

  private deliver(pipe: Pipe): void {
    pipe.timer = null;
    const now = this.net.time.now();
    while (pipe.queue.length > 0 && pipe.queue[0]!.readyAt <= now && this.stallUntil <= now) {
      const item = pipe.queue.shift()!;
      if ('fin' in item) {
        pipe.to.finish(item.fin);
        continue;
      }
      // Sometimes in two chunks: the decoder must not care where reads split a frame.
      const b = item.bytes;
      if (b.length > 1 && this.net.rng.chance(0.2)) {
        const at = this.net.rng.int(1, b.length - 1);
        pipe.to.receive(b.subarray(0, at));
        pipe.to.receive(b.subarray(at));
      } else {
        pipe.to.receive(b);
      }
    }
    this.arm(pipe);
  }

  /** Both ends fail now; whatever was in flight is lost. */
  cut(why: string): void {
    this.net.trace.event('net', `c${this.id} cut (${why})`);
    this.drop();
    const err = netError('ECONNRESET', `simulated network: ${why}`);
    this.agentEnd.finish(err);
    this.gatewayEnd.finish(err);
  }

  /** Frames vanish both ways from now on; both ends look open. */
  blackHole(why: string): void {
    this.net.trace.event('net', `c${this.id} black hole (${why})`);
    this.drop();
    this.up.blackHole = true;
    this.down.blackHole = true;
  }

  /** Nothing is delivered until `untilMs`, then everything in order. */
  stall(untilMs: number): void {
    this.net.trace.event('net', `c${this.id} stall until ${untilMs}`);
    this.stallUntil = Math.max(this.stallUntil, untilMs);
    this.arm(this.up);
    this.arm(this.down);
  }

  /** The agent noticed the connection is dead; the gateway did not (and hears nothing more). */
  halfOpen(): void {
    this.net.trace.event('net', `c${this.id} half open (agent side failed)`);
    this.blackHole('half open');
    this.agentEnd.finish(netError('ETIMEDOUT', 'simulated network: connection timed out'));
  }

  /** The process on `side` died: its end goes silent, the peer sees a reset (a kill) or nothing (a power cut). */
  processDied(side: 'agent' | 'gateway', peerSees: 'reset' | 'nothing'): void {
    const end = side === 'agent' ? this.agentEnd : this.gatewayEnd;
    const peer = side === 'agent' ? this.gatewayEnd : this.agentEnd;
    end.dead = true;
    end.finish(undefined);
    if (peerSees === 'reset') {
      this.drop();
      this.net.trace.event('net', `c${this.id} ${side} died, peer reset`);
      const pipe = this.pipeFrom(end);
      this.enqueue(pipe, { fin: netError('ECONNRESET', `simulated network: the ${side} process died`), readyAt: 0 });
    } else {
      this.net.trace.event('net', `c${this.id} ${side} lost power, peer hears nothing`);
      this.up.blackHole = true;
      this.down.blackHole = true;
      this.drop();
      void peer;
    }
  }

  private drop(): void {
    for (const pipe of [this.up, this.down]) {
      pipe.queue.length = 0;
      if (pipe.timer !== null) this.net.time.cancel(pipe.timer);
      pipe.timer = null;
    }
  }
}

export type GatewayState = 'up' | 'down' | 'off';

export class SimNet {
  private nextId = 1;
  readonly connections: SimConnection[] = [];
  /** agents whose network is partitioned from the gateway */
  readonly partitioned = new Set<string>();
  /** agents behind a firewall that drops the TCP tunnel port (HTTP still passes: sim-http.ts) */
  readonly tcpBlocked = new Set<string>();
  /** 'down': the process is dead, dials are refused; 'off': the host has no power, dials time out */
  gatewayState: GatewayState = 'down';
  private accept: ((t: Transport) => void) | null = null;
  /** agents whose dials reach a fake gateway: its accept */
  private readonly hijacked = new Map<string, (t: Transport) => void>();
  /** per agent, the highest seq it ever sent towards the gateway process, in any store life */
  private readonly highestSent = new Map<string, number>();

  constructor(readonly time: SimTime, readonly rng: Rng, readonly trace: Trace, readonly opts: NetOptions) {}

  /** The gateway process listens (after a start or restart). */
  listen(accept: (t: Transport) => void): void {
    this.accept = accept;
    this.gatewayState = 'up';
  }

  noteSent(agent: string, packets: readonly { seq: number }[]): void {
    let high = this.highestSent.get(agent) ?? 0;
    for (const p of packets) high = Math.max(high, p.seq);
    this.highestSent.set(agent, high);
  }

  /** The highest seq `agent` ever sent towards the gateway: the most the gateway can know of it. */
  highestSentSeq(agent: string): number {
    return this.highestSent.get(agent) ?? 0;
  }

  /** From now on `agent`'s dials reach `accept` (a fake gateway); its open connections are cut, so it dials again soon. */
  hijack(agent: string, accept: (t: Transport) => void): void {
    this.trace.event('net', `${agent}'s dials go to a fake gateway`);
    this.hijacked.set(agent, accept);
    for (const c of this.openConnections(agent)) c.cut('a fake gateway takes over');
  }

  /** `agent`'s dials reach the gateway again; its connections to the fake are cut. */
  unhijack(agent: string): void {
    if (!this.hijacked.delete(agent)) return;
    this.trace.event('net', `${agent}'s dials reach the gateway again`);
    for (const c of this.openConnections(agent)) if (c.toFake) c.cut('the fake gateway is gone');
  }

  /** Connections of one agent (or all) still open on some side. */
  openConnections(agent?: string): SimConnection[] {
    const live = this.connections.filter((c) => c.open);
    this.connections.length = 0;
    this.connections.push(...live);
    return agent === undefined ? live : live.filter((c) => c.agent === agent);
  }

  /**
   * The agent's dialer (protocol/transport.ts Dialer). Its timers run on the agent's clock, so a
   * killed agent's dial never completes.
   */
  dialer(agent: string, clock: { setTimeout(fn: () => void, ms: number): unknown }): () => Promise<Transport> {
    return () =>
      new Promise<Transport>((resolve, reject) => {
        const latency = this.rng.int(this.opts.latencyMsMin, this.opts.latencyMsMax) * 2;
        const fake = this.hijacked.get(agent);
        if (fake && !this.partitioned.has(agent)) {
          const conn = new SimConnection(this, this.nextId++, agent, true);
          this.connections.push(conn);
          this.trace.event('dial', `${agent} connected c${conn.id} (to a fake gateway)`);
          fake(conn.gatewayEnd);
          clock.setTimeout(() => resolve(conn.agentEnd), latency);
          return;
        }
        if (this.partitioned.has(agent) || this.tcpBlocked.has(agent) || this.gatewayState === 'off') {
          this.trace.event('dial', `${agent} times out`);
          clock.setTimeout(() => reject(netError('ETIMEDOUT', 'simulated network: connect timed out')), this.opts.connectTimeoutMs);
          return;
        }
        if (this.gatewayState === 'down' || !this.accept) {
          this.trace.event('dial', `${agent} refused`);
          clock.setTimeout(() => reject(netError('ECONNREFUSED', 'simulated network: connection refused')), latency);
          return;
        }
        const conn = new SimConnection(this, this.nextId++, agent);
        this.connections.push(conn);
        this.trace.event('dial', `${agent} connected c${conn.id}`);
        this.accept(conn.gatewayEnd);
        clock.setTimeout(() => resolve(conn.agentEnd), latency);
      });
  }

  /** The gateway process died (kill: agents see resets; power cut: they see nothing). */
  gatewayDied(how: 'kill' | 'power'): void {
    this.accept = null;
    this.gatewayState = how === 'kill' ? 'down' : 'off';
    for (const c of this.openConnections()) if (!c.toFake) c.processDied('gateway', how === 'kill' ? 'reset' : 'nothing');
  }

  /** An agent process died. */
  agentDied(agent: string, how: 'kill' | 'power'): void {
    for (const c of this.openConnections(agent)) c.processDied('agent', how === 'kill' ? 'reset' : 'nothing');
  }

  /** Heals every partition and hijack; stalls end now. */
  heal(): void {
    this.partitioned.clear();
    this.tcpBlocked.clear();
    for (const agent of [...this.hijacked.keys()]) this.unhijack(agent);
    for (const c of this.openConnections()) if (c.stallUntil > this.time.now()) c.stall(this.time.now());
  }
}

/** A short description of a frame for the trace. */
export function describe(f: Frame): string {
  switch (f.t) {
    case FrameType.DATA:
      return `DATA ${f.packets.map((p) => `${p.seq}:${p.target}`).join(',')}`;
    case FrameType.ACK:
      return `ACK ${f.seq}${f.ranges ? ` +${JSON.stringify(f.ranges)}` : ''} credit ${f.creditPackets}`;
    case FrameType.NACK:
      return `NACK ${f.seq} ${f.code}${f.retryAfterMs !== undefined ? ` retry ${f.retryAfterMs}` : ''}`;
    case FrameType.HELLO:
      return `HELLO ${f.agent} acked ${f.ackedSeq}${f.token !== undefined ? ' with a token' : ''}`;
    case FrameType.WELCOME:
      return `WELCOME dispatched ${f.dispatchedSeq}${f.ranges ? ` +${JSON.stringify(f.ranges)}` : ''}${f.seenSeq ? ` seen ${f.seenSeq}` : ''}`;
    case FrameType.BYE:
      return `BYE ${f.code}`;
    case FrameType.PING:
      return `PING ${f.id}${f.ackedSeq !== undefined ? ` acked ${f.ackedSeq}` : ''}`;
    case FrameType.PONG:
      return `PONG ${f.id}`;
    default:
      return `frame ${(f as { t: number }).t}`;
  }
}
