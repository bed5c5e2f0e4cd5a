import { EventEmitter } from 'node:events';
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type Frame, type WelcomeFrame } from '../../protocol/frames.js';
import type { Packet } from '../../protocol/packet.js';
import type { Dialer, Transport } from '../../protocol/transport.js';
import type { PacketStore } from '../store/store.js';
import { backoffDelayMs } from './backoff.js';

export interface LinkOptions {
  agentId: string;
  token?: string;
  inflightPacketsMax: number;
  framePacketsMax: number;
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
  helloTimeoutMs: number;
  pingIntervalMs: number;
  peerTimeoutMs: number;
}

export interface LinkDeps {
  store: PacketStore;
  dial: Dialer;
  clock: Clock;
  rng: () => number;
  log: Log;
}

export type LinkStatus =
  | { state: 'connecting' }
  | { state: 'connected'; session: string }
  | { state: 'backoff'; delayMs: number; error: string }
  | { state: 'stopped' };

export interface LinkStats {
  state: LinkStatus['state'];
  inflightPackets: number;
  deadLetters: number;
  connects: number;
  rttMs: number | null;
}

/**
 * The connection manager: keeps one session with the gateway, sends stored packets within the
 * credit window, applies acks to the store, and reconnects with back-off. Reconnects are hidden
 * here: producers only ever talk to the store.
 */
export class Link extends EventEmitter<{ status: [LinkStatus] }> {
  private status: LinkStatus = { state: 'connecting' };
  private transport: Transport | null = null;
  private stopped = false;
  private attempt = 0;
  private sentSeq = 0;
  private inflight: Packet[] = [];
  private creditPackets = 0;
  private counters = { deadLetters: 0, connects: 0 };
  private rttMs: number | null = null;
  private wakeBackoff: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private pumping = false;
  private pumpAgain = false;

  constructor(private readonly opts: LinkOptions, private readonly deps: LinkDeps) {
    super();
    deps.store.onAppend(() => this.pump());
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.transport?.send({ t: FrameType.BYE, code: ErrorCode.SHUTDOWN, reason: 'agent stopping' });
    this.transport?.close();
    this.wakeBackoff?.();
    await this.running;
    this.setStatus({ state: 'stopped' });
  }

  stats(): LinkStats {
    return { state: this.status.state, inflightPackets: this.inflight.length, ...this.counters, rttMs: this.rttMs };
  }

  private setStatus(s: LinkStatus): void {
    this.status = s;
    this.emit('status', s);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.setStatus({ state: 'connecting' });
      let error: Error | undefined;
      try {
        const t = await this.deps.dial();
        error = await this.runSession(t);
      } catch (err) {
        error = err as Error;
      }
      if (this.stopped) break;
      const delayMs = backoffDelayMs(this.attempt++, this.opts.reconnectDelayMsMin, this.opts.reconnectDelayMsMax, this.deps.rng);
      this.deps.log.info('link: disconnected; reconnecting', { delayMs, error: error?.message, code: (error as FerryError | undefined)?.code });
      this.setStatus({ state: 'backoff', delayMs, error: error?.message ?? 'closed' });
      await new Promise<void>((resolve) => {
        const h = this.deps.clock.setTimeout(resolve, delayMs);
        this.wakeBackoff = () => {
          this.deps.clock.clearTimeout(h);
          resolve();
        };
      });
      this.wakeBackoff = null;
    }
  }

  /** One session on one transport; resolves with why it ended. */
  private async runSession(t: Transport): Promise<Error | undefined> {
    const { clock } = this.deps;
    this.transport = t;
    let welcomed = false;
    let lastRxMs = clock.now();
    let pingId = 0;
    const pingSentAt = new Map<number, number>();
    const helloTimer = clock.setTimeout(() => t.close(new FerryError(ErrorCode.PEER_TIMEOUT, 'no WELCOME from gateway')), this.opts.helloTimeoutMs);
    let pingTimer: unknown = null;
    const pingTick = (): void => {
      if (clock.now() - lastRxMs > this.opts.peerTimeoutMs) {
        t.close(new FerryError(ErrorCode.PEER_TIMEOUT, `nothing from gateway for ${this.opts.peerTimeoutMs} ms`));
        return;
      }
      pingSentAt.set(++pingId, clock.now());
      if (pingSentAt.size > 8) pingSentAt.delete(pingId - 8);
      t.send({ t: FrameType.PING, id: pingId });
      pingTimer = clock.setTimeout(pingTick, this.opts.pingIntervalMs);
    };

    t.onFrame((f: Frame) => {
      lastRxMs = clock.now();
      if (!welcomed) {
        if (f.t === FrameType.WELCOME) {
          welcomed = true;
          clock.clearTimeout(helloTimer);
          this.onWelcome(f);
          pingTimer = clock.setTimeout(pingTick, this.opts.pingIntervalMs);
        } else if (f.t === FrameType.BYE) {
          t.close(new FerryError(f.code as ErrorCode, `gateway said BYE: ${f.reason}`));
        } else {
          t.close(new FerryError(ErrorCode.PROTOCOL_STATE, `expected WELCOME, got frame type ${f.t}`));
        }
        return;
      }
      this.onFrame(t, f, pingSentAt);
    });

    t.send({ t: FrameType.HELLO, version: protocolVersion, agent: this.opts.agentId, ackedSeq: this.deps.store.stats().ackedSeq, ...(this.opts.token ? { token: this.opts.token } : {}) });
    const err = await t.closed;
    clock.clearTimeout(helloTimer);
    if (pingTimer !== null) clock.clearTimeout(pingTimer);
    this.transport = null;
    this.inflight = [];
    return err;
  }

  private onWelcome(w: WelcomeFrame): void {
    const { store, log } = this.deps;
    this.attempt = 0;
    this.counters.connects++;
    const stats = store.stats();
    if (w.dispatchedSeq > stats.lastSeq) {
      // The gateway has seen seqs this store never issued (the store was wiped): never reuse them.
      log.warn('link: gateway knows higher seqs than the store; skipping ahead', { dispatchedSeq: w.dispatchedSeq, lastSeq: stats.lastSeq });
      store.advanceSeq(w.dispatchedSeq).catch((err) => log.error('store: could not advance seq', { err }));
    }
    // Everything up to dispatchedSeq reached its handler: drop it here too.
    this.applyAck(Math.min(w.dispatchedSeq, store.stats().lastSeq));
    this.sentSeq = Math.max(store.stats().ackedSeq, w.dispatchedSeq);
    this.inflight = [];
    this.creditPackets = w.creditPackets;
    log.info('link: session open', { session: w.session, dispatchedSeq: w.dispatchedSeq, backlog: store.stats().backlogPackets });
    this.setStatus({ state: 'connected', session: w.session });
    this.pump();
  }

  private onFrame(t: Transport, f: Frame, pingSentAt: Map<number, number>): void {
    switch (f.t) {
      case FrameType.ACK:
        this.creditPackets = f.creditPackets;
        this.applyAck(f.seq);
        this.pump();
        return;
      case FrameType.NACK:
        this.onNack(t, f.seq, f.code, f.message, f.retryAfterMs);
        return;
      case FrameType.PING:
        t.send({ t: FrameType.PONG, id: f.id });
        return;
      case FrameType.PONG: {
        const sentAt = pingSentAt.get(f.id);
        if (sentAt !== undefined) this.rttMs = this.deps.clock.now() - sentAt;
        return;
      }
      case FrameType.BYE:
        t.close(new FerryError(f.code as ErrorCode, `gateway said BYE: ${f.reason}`));
        return;
      default:
        t.close(new FerryError(ErrorCode.PROTOCOL_STATE, `unexpected frame type ${f.t} from gateway`));
    }
  }

  private onNack(t: Transport, seq: number, code: string, message: string, retryAfterMs: number | undefined): void {
    const packet = this.inflight.find((p) => p.seq === seq);
    if (retryAfterMs !== undefined) {
      // Retryable: end the session and resend from the store after the pause the gateway asked for.
      this.deps.log.warn('link: packet refused for now', { seq, code, retryAfterMs });
      t.close(new FerryError(ErrorCode.HANDLER_FAILED, `gateway asks to retry seq ${seq} after ${retryAfterMs} ms`));
      return;
    }
    if (!packet) return;
    this.deps.log.warn('link: packet rejected; moved to dead letters', { seq, target: packet.target, code, message });
    this.counters.deadLetters++;
    this.deps.store.deadLetter(packet, code, message).catch((err) => this.deps.log.error('store: dead letter write failed', { err }));
  }

  private applyAck(seq: number): void {
    let n = 0;
    while (n < this.inflight.length && this.inflight[n]!.seq <= seq) n++;
    this.inflight.splice(0, n);
    // The store ignores an ack at or below its cumulative point; no need to ask it first.
    this.deps.store.ack(seq).catch((err) => this.deps.log.error('store: ack failed', { err }));
  }

  /** Sends stored packets while the window has room; one read from the store at a time. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.pumpAgain = false;
    void this.fill()
      .catch((err) => this.deps.log.error('link: reading the store failed', { err }))
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) this.pump();
      });
  }

  private async fill(): Promise<void> {
    for (;;) {
      const t = this.transport;
      if (!t || this.status.state !== 'connected') return;
      const window = Math.min(this.opts.inflightPacketsMax, Math.max(this.creditPackets, 1));
      if (this.inflight.length >= window) return;
      const from = this.sentSeq;
      const packets = await this.deps.store.readAfter(from, Math.min(window - this.inflight.length, this.opts.framePacketsMax));
      // The session may have ended, or restarted from another point, while the store read.
      if (this.transport !== t || this.sentSeq !== from) return;
      if (packets.length === 0) return;
      t.send({ t: FrameType.DATA, packets });
      this.sentSeq = packets[packets.length - 1]!.seq;
      this.inflight.push(...packets);
    }
  }
}
