import { EventEmitter } from 'node:events';
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, protocolVersion, seqRenumberTopMax, type AckFrame, type DownFrame, type Frame, type NackFrame, type PingFrame, type SeqRange, type WelcomeFrame } from '../../protocol/frames.js';
import { dataFrameOverheadBytes } from '../../protocol/codec.js';
import { packetCreditBytes, type Packet } from '../../protocol/packet.js';
import type { Dialer, Transport } from '../../protocol/transport.js';
import type { PacketStore } from '../store/store.js';
import type { StuckLog } from '../../common/stuck-log.js';
import { backoffDelayMs } from './backoff.js';
import { GatewayLimits } from './gateway-limits.js';
import { Liveness } from './liveness.js';
import { RetryQueue } from './retry-queue.js';
import { InflightWindow, type Inflight } from './window.js';

export interface LinkOptions {
  agentId: string;
  token?: string;
  /** un-acked packets in flight, at most, whatever credit the gateway grants */
  inflightPacketsMax: number;
  framePacketsMax: number;
  /** a DATA frame's packets, at most this many bytes (as credit counts them); keep it under the gateway's frameBytesMax */
  frameBytesMax: number;
  /** packets refused for now (NACK with retry-after) kept in memory; while full, no new packets are read */
  retryPacketsMax: number;
  retryBytesMax: number;
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
  helloTimeoutMs: number;
  /** used until the gateway's WELCOME names its own interval */
  pingIntervalMs: number;
  peerTimeoutMs: number;
}

/** The downlink's end in the agent (agent/downlink/inbox.ts), as the link sees it. */
export interface LinkDownlink {
  /** the window HELLO names */
  hello(): { downMessagesMax: number; downBytesMax: number };
  /** a session was welcomed: DOWN frames arrive on it, verdicts go back on it */
  open(session: { send(f: Frame): void; close(err: Error): void }): void;
  onDown(f: DownFrame): void;
  sessionEnded(): void;
}

export interface LinkDeps {
  store: PacketStore;
  dial: Dialer;
  clock: Clock;
  rng: () => number;
  log: Log;
  /** absent: the agent takes no downlink (HELLO names no window, a DOWN breaks the protocol) */
  downlink?: LinkDownlink;
  /** where failed dials are logged: once, then summaries, then when a session opens; absent: a line each */
  stuck?: StuckLog;
}

/** The stuck-cause scope of failed dials (common/stuck-log.ts). */
const dialScope = 'link';

export type LinkStatus =
  | { state: 'connecting' }
  | { state: 'connected'; session: string }
  | { state: 'backoff'; delayMs: number; error: string }
  | { state: 'stopped' };

export interface LinkStats {
  state: LinkStatus['state'];
  inflightPackets: number;
  retryPackets: number;
  creditPackets: number;
  creditBytes: number;
  deadLetters: number;
  /** NACKs with retry-after received */
  retries: number;
  connects: number;
  rttMs: number | null;
  /** NACKs received, by code (those with retry-after too) */
  nacked: Record<string, number>;
  /** why the last session or dial ended, while backing off; else null */
  error: string | null;
}

/** Why a session ended, and how long the gateway asked us to stay away. */
interface SessionEnd {
  error: Error | undefined;
  retryAfterMs: number;
  /** the session opened (WELCOME taken): unless the gateway then broke the protocol, the back-off starts again from its minimum */
  opened?: boolean;
}

/** The session ended because a frame broke the protocol (either side's verdict). */
function brokeProtocol(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('FRAME_') || code === ErrorCode.PROTOCOL_STATE || code === ErrorCode.GATEWAY_PROTOCOL_VIOLATION);
}

/** The highest seq a cumulative seq and its ranges (ascending) name. */
function highestNamed(seq: number, ranges: SeqRange[] | undefined): number {
  return ranges?.length ? Math.max(seq, ranges[ranges.length - 1]![1]) : seq;
}

/**
 * The connection manager: keeps one session with the gateway, sends stored packets within the
 * gateway's credit (packets and bytes in flight), applies acks to the store, keeps packets the
 * gateway refused for now and resends them when due, and reconnects with back-off. Reconnects
 * are hidden here: producers only ever talk to the store.
 */
export class Link extends EventEmitter<{ status: [LinkStatus] }> {
  private status: LinkStatus = { state: 'connecting' };
  private transport: Transport | null = null;
  private stopped = false;
  private attempt = 0;
  /** highest seq read from the store and sent in this session */
  private sentSeq = 0;
  private readonly inflight: InflightWindow;
  private readonly retry: RetryQueue;
  private retryTimer: unknown = null;
  private byeRetryAfterMs = 0;
  private counters = { deadLetters: 0, retries: 0, connects: 0 };
  private readonly nacked: Record<string, number> = {};
  private liveness: Liveness | null = null;
  private wakeBackoff: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private pumping = false;
  private pumpAgain = false;
  /** store reads that failed in a row, and the timer that tries again after a back-off */
  private readFailures = 0;
  private readRetryTimer: unknown = null;
  /** what the gateway's WELCOME said it takes */
  private gateway = new GatewayLimits();
  /** the current session is open (WELCOME taken, renumbering done): DATA may go and ACKs apply */
  private sessionOpen = false;
  /** the current session broke the trust rule: it is closing, and nothing more it says is taken */
  private violated = false;
  /** stopping: nothing new is sent; resolved once nothing is in flight or the session ended */
  private draining: (() => void) | null = null;

  constructor(private readonly opts: LinkOptions, private readonly deps: LinkDeps) {
    super();
    this.retry = new RetryQueue(opts.retryPacketsMax, opts.retryBytesMax);
    this.inflight = new InflightWindow(opts.inflightPacketsMax);
    deps.store.onAppend(() => this.pump());
  }

  start(): void {
    this.running ??= this.loop();
  }

  /**
   * Sends nothing more (no store reads, no retries) and resolves once every packet in flight was
   * acked or refused, or the session ended; at once when no session is open. What is not acked
   * stays in the store. The caller bounds the wait, then calls stop().
   */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      this.draining = resolve;
      this.checkDrained();
    });
  }

  private checkDrained(): void {
    if (this.draining && (this.inflight.size === 0 || !this.sessionOpen)) this.draining();
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
    return {
      state: this.status.state, inflightPackets: this.inflight.size, retryPackets: this.retry.size,
      creditPackets: this.inflight.creditPackets, creditBytes: this.inflight.creditBytes, ...this.counters, rttMs: this.liveness?.rttMs ?? null,
      nacked: { ...this.nacked }, error: this.status.state === 'backoff' ? this.status.error : null,
    };
  }

  private setStatus(s: LinkStatus): void {
    this.status = s;
    this.emit('status', s);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.setStatus({ state: 'connecting' });
      let end: SessionEnd;
      try {
        const t = await this.deps.dial();
        end = await this.runSession(t);
      } catch (err) {
        // A dial the gateway refused with a retry-after (a long-poll 429/503) waits at least that long.
        const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs;
        end = { error: err as Error, retryAfterMs: typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? retryAfterMs : 0 };
      }
      if (this.stopped) break;
      const error = end.error;
      const code = (error as FerryError | undefined)?.code;
      // A session that opened starts the back-off again, unless it ended in a broken protocol (a
      // frame that does not decode, one out of turn, seqs this agent never issued): a gateway that
      // WELCOMEs and then breaks the rules is dialed ever less often, not every few milliseconds.
      if (end.opened && !brokeProtocol(code)) this.attempt = 0;
      const backoffMs = backoffDelayMs(this.attempt++, this.opts.reconnectDelayMsMin, this.opts.reconnectDelayMsMax, this.deps.rng);
      // The gateway paces reconnect storms: never dial sooner than it asked. A refusal that a
      // retry cannot fix soon (credentials, TLS set-up, version) waits the longest back-off at once.
      const refused = code !== undefined && (code.startsWith('AUTH_') || code.startsWith('TLS_') || code === ErrorCode.PROTOCOL_VERSION);
      const delayMs = Math.max(backoffMs, end.retryAfterMs, refused ? this.opts.reconnectDelayMsMax : 0);
      const fields = { delayMs, error: error?.message, code };
      // A gateway that cannot be reached is one cause, however many dials fail; a session that ends is news each time.
      if (this.deps.stuck && !end.opened) this.deps.stuck.fail(dialScope, code ?? 'UNKNOWN', { msg: 'link: disconnected; reconnecting', fields });
      else this.deps.log.info('link: disconnected; reconnecting', fields);
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

  /** What a PING tells the gateway: the store's durable ack point, and the backlog for the gateway's status. */
  private pingState(): Pick<PingFrame, 'ackedSeq' | 'backlogPackets' | 'backlogBytes' | 'oldestAgeMs'> {
    const s = this.deps.store.stats();
    const times = [this.inflight.oldestTs(), this.retry.oldestTs()].filter((x): x is number => x !== undefined);
    const oldestAgeMs = times.length > 0 ? Math.max(0, this.deps.clock.now() - Math.min(...times)) : undefined;
    // No backlog is no bytes: the store's own size counts acked records its segments still hold.
    const backlogBytes = s.backlogPackets === 0 ? 0 : (this.deps.store.backlogBytes?.() ?? s.storeBytes);
    return { ackedSeq: s.durableAckedSeq, backlogPackets: s.backlogPackets, backlogBytes, ...(oldestAgeMs !== undefined ? { oldestAgeMs } : {}) };
  }

  /** One session on one transport; resolves with why it ended. */
  private async runSession(t: Transport): Promise<SessionEnd> {
    const { clock } = this.deps;
    this.transport = t;
    this.byeRetryAfterMs = 0;
    this.sessionOpen = false;
    this.violated = false;
    let opened = false;
    let welcomed = false;
    const liveness = new Liveness(clock, this.opts.peerTimeoutMs, {
      ping: (id) => t.send({ t: FrameType.PING, id, ...this.pingState() }),
      dead: () => t.close(new FerryError(ErrorCode.PEER_TIMEOUT, `nothing from gateway for ${this.opts.peerTimeoutMs} ms`)),
    });
    this.liveness = liveness;
    const helloTimer = clock.setTimeout(() => t.close(new FerryError(ErrorCode.PEER_TIMEOUT, 'no WELCOME from gateway')), this.opts.helloTimeoutMs);

    t.onFrame((f: Frame) => {
      if (this.violated) return;
      liveness.heard();
      if (!welcomed) {
        if (f.t === FrameType.WELCOME) {
          welcomed = true;
          clock.clearTimeout(helloTimer);
          this.gateway = new GatewayLimits(f, t.frameBytesMax);
          this.onWelcome(t, f);
          // Downlink does not wait for the uplink's renumbering: it shares no seqs with it.
          if (!this.violated) this.deps.downlink?.open({ send: (x) => t.send(x), close: (err) => t.close(err) });
          liveness.start(f.pingIntervalMs ? Math.max(100, f.pingIntervalMs) : this.opts.pingIntervalMs);
        } else if (f.t === FrameType.BYE) {
          this.onBye(t, f.code, f.reason, f.retryAfterMs);
        } else {
          t.close(new FerryError(ErrorCode.PROTOCOL_STATE, `expected WELCOME, got frame type ${f.t}`));
        }
        return;
      }
      this.onFrame(t, f);
    });

    t.send({
      t: FrameType.HELLO, version: protocolVersion, agent: this.opts.agentId, ackedSeq: this.deps.store.stats().durableAckedSeq,
      ...(this.opts.token ? { token: this.opts.token } : {}), ...this.deps.downlink?.hello(),
    });
    const error = await t.closed;
    if (welcomed) this.deps.downlink?.sessionEnded();
    opened = this.sessionOpen;
    clock.clearTimeout(helloTimer);
    liveness.stop();
    this.transport = null;
    this.sessionOpen = false;
    this.resetSessionState();
    this.checkDrained();
    return { error, retryAfterMs: this.byeRetryAfterMs, opened };
  }

  private resetSessionState(): void {
    this.inflight.clear();
    this.retry.clear();
    if (this.retryTimer !== null) this.deps.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.readRetryTimer !== null) this.deps.clock.clearTimeout(this.readRetryTimer);
    this.readRetryTimer = null;
  }

  private onBye(t: Transport, code: string, reason: string, retryAfterMs: number | undefined): void {
    this.byeRetryAfterMs = retryAfterMs ?? 0;
    t.close(new FerryError(code as ErrorCode, `gateway said BYE: ${reason}`));
  }

  /**
   * The trust rule (docs/protocol.md): the gateway's word counts only within the seqs this agent
   * issued. A store that is not fresh has issued every seq a gateway can know of this agent, so a
   * WELCOME naming a higher one is a violation, never a reason to renumber or delete. Only a fresh
   * store (made empty: new or wiped, its seqs may repeat an earlier life's that the gateway knows)
   * renumbers above the gateway's seqs, which deletes nothing, and only up to seqRenumberTopMax.
   */
  private onWelcome(t: Transport, w: WelcomeFrame): void {
    const { store, log } = this.deps;
    const { lastSeq, fresh } = store.stats();
    const dispatched = highestNamed(w.dispatchedSeq, w.ranges);
    if (!fresh) {
      if (dispatched > lastSeq) return this.violation(t, `WELCOME names seq ${dispatched} as dispatched; this agent has issued seqs up to ${lastSeq} only`, { gatewaySeq: dispatched, lastSeq });
      return this.openSession(w);
    }
    // A fresh store also steers clear of seqs handed to a handler and never recorded as dispatched.
    const highest = Math.max(dispatched, w.seenSeq ?? 0);
    // Renumbered, the packets end at max(highest, lastSeq) + lastSeq (SegmentStore.renumberAbove).
    if (Math.max(highest, lastSeq) + lastSeq > seqRenumberTopMax) {
      return this.violation(t, `WELCOME names seq ${highest}; this fresh store renumbers its packets to end at seq ${seqRenumberTopMax} at most`, { gatewaySeq: highest, lastSeq });
    }
    // The stored packets' seqs may name other packets there: renumber them above, then resume;
    // until then nothing is sent and an ACK is a violation (nothing was sent for it to ack).
    if (highest > 0) log.warn('link: the store is new (made empty: perhaps wiped or replaced); renumbering its packets above the seqs the gateway knows', { gatewaySeq: highest, lastSeq, fresh });
    store.renumberAbove(highest).then(
      () => {
        if (this.transport === t) this.openSession(w);
      },
      (err: unknown) => t.close(new FerryError(ErrorCode.STORE_IO, `could not renumber the store: ${(err as Error).message}`, { cause: err })),
    );
  }

  /**
   * The gateway broke the trust rule: it named seqs this agent never issued or sent. Logged once
   * (this session takes nothing more from it), told to the gateway, and the session is closed;
   * every stored packet stays, and the link dials again after its growing back-off.
   */
  private violation(t: Transport, what: string, fields: Record<string, unknown>): void {
    if (this.violated) return;
    this.violated = true;
    const err = new FerryError(ErrorCode.GATEWAY_PROTOCOL_VIOLATION, `gateway protocol violation: ${what}; keeping every stored packet`);
    this.deps.log.error('link: gateway protocol violation; the session is refused and every stored packet kept', { code: err.code, error: err.message, ...fields });
    t.send({ t: FrameType.BYE, code: err.code, reason: err.message });
    t.close(err);
  }

  private openSession(w: WelcomeFrame): void {
    const { store, log } = this.deps;
    this.sessionOpen = true;
    this.counters.connects++;
    // Everything the gateway dispatched is done here too; the store's reads skip it from now on.
    this.applyAcks(w.dispatchedSeq, w.ranges);
    this.resetSessionState();
    this.sentSeq = store.stats().ackedSeq;
    this.inflight.setCredit(w.creditPackets, w.creditBytes);
    this.deps.stuck?.clear(dialScope);
    log.info('link: session open', { session: w.session, dispatchedSeq: w.dispatchedSeq, gaps: w.ranges?.length ?? 0, backlog: store.stats().backlogPackets });
    this.setStatus({ state: 'connected', session: w.session });
    this.pump();
  }

  private onFrame(t: Transport, f: Frame): void {
    switch (f.t) {
      case FrameType.ACK:
        return this.onAck(t, f);
      case FrameType.NACK:
        return this.onNack(f);
      case FrameType.PING:
        return t.send({ t: FrameType.PONG, id: f.id });
      case FrameType.PONG:
        return this.liveness?.pong(f.id);
      case FrameType.BYE:
        return this.onBye(t, f.code, f.reason, f.retryAfterMs);
      case FrameType.DOWN:
        if (this.deps.downlink) return this.deps.downlink.onDown(f);
        return t.close(new FerryError(ErrorCode.PROTOCOL_STATE, 'DOWN from a gateway this agent named no downlink window to'));
      default:
        t.close(new FerryError(ErrorCode.PROTOCOL_STATE, `unexpected frame type ${f.t} from gateway`));
    }
  }

  /** An ACK counts only for seqs this agent issued, and only once the session is open (something was sent); else nothing of it is applied. */
  private onAck(t: Transport, f: AckFrame): void {
    const named = highestNamed(f.seq, f.ranges);
    if (!this.sessionOpen) return this.violation(t, `ACK of seq ${named} before this session sent anything`, { gatewaySeq: f.seq });
    const lastSeq = this.deps.store.highestIssuedSeq();
    if (named > lastSeq) return this.violation(t, `ACK names seq ${named}; this agent has issued seqs up to ${lastSeq} only`, { gatewaySeq: named, lastSeq });
    this.inflight.setCredit(f.creditPackets, f.creditBytes);
    this.applyAcks(f.seq, f.ranges);
    this.checkDrained();
    this.pump();
  }

  private onNack(f: NackFrame): void {
    const entry = this.inflight.take(f.seq);
    if (!entry) return;
    this.nacked[f.code] = (this.nacked[f.code] ?? 0) + 1;
    if (f.retryAfterMs !== undefined) {
      // Refused for now: keep it and offer it again when due; the session and other targets go on.
      this.counters.retries++;
      this.retry.add(entry.packet, entry.bytes, this.deps.clock.now() + f.retryAfterMs);
      this.armRetryTimer();
    } else {
      this.deps.log.warn('link: packet rejected; moved to dead letters', { seq: f.seq, target: entry.packet.target, code: f.code, message: f.message });
      this.counters.deadLetters++;
      this.deps.store.deadLetter(entry.packet, f.code, f.message).catch((err) => this.deps.log.error('store: dead letter write failed', { err }));
    }
    this.checkDrained();
    this.pump();
  }

  /** Applies a cumulative seq and selective ranges to what is in flight and to the store. */
  private applyAcks(seq: number, ranges: [number, number][] | undefined): void {
    const { store, log } = this.deps;
    const done = (s: number): boolean => s <= seq || (ranges?.some(([a, b]) => s >= a && s <= b) ?? false);
    this.inflight.settle(done);
    this.retry.remove(done);
    // The store ignores acks at or below its cumulative point; no need to ask it first.
    store.ack(seq).catch((err) => log.error('store: ack failed', { err }));
    for (const [a, b] of ranges ?? []) store.ackOne(a, b).catch((err) => log.error('store: ack failed', { err }));
  }

  private armRetryTimer(): void {
    const due = this.retry.nextDueMs(this.deps.clock.now());
    if (due === null) return;
    if (this.retryTimer !== null) this.deps.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.deps.clock.setTimeout(() => {
      this.retryTimer = null;
      this.pump();
      this.armRetryTimer();
    }, Math.max(0, due - this.deps.clock.now()));
  }

  /** Sends due retries and stored packets while the credit has room; one read from the store at a time. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.pumpAgain = false;
    void this.fill()
      .then(() => {
        this.readFailures = 0;
      })
      .catch((err) => this.readFailed(err))
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) this.pump();
      });
  }

  /**
   * A store read failed (EIO, say): nothing else may come to pump again (no append, no ACK while
   * nothing is in flight), so try again after a back-off, from the same point.
   */
  private readFailed(err: unknown): void {
    const delayMs = backoffDelayMs(this.readFailures++, this.opts.reconnectDelayMsMin, this.opts.reconnectDelayMsMax, this.deps.rng);
    this.deps.log.error('link: reading the store failed; trying again', { err, delayMs });
    if (this.readRetryTimer !== null || this.stopped) return;
    this.readRetryTimer = this.deps.clock.setTimeout(() => {
      this.readRetryTimer = null;
      this.pump();
    }, delayMs);
  }

  private async fill(): Promise<void> {
    for (;;) {
      const t = this.transport;
      if (!t || this.status.state !== 'connected' || this.draining) return;
      this.sendFrames(t, this.retry.takeDue(this.deps.clock.now(), this.inflight.room()));
      const packetsRoom = this.inflight.packetsRoom;
      if (this.retry.full || packetsRoom <= 0) return;
      const from = this.sentSeq;
      const packets = await this.deps.store.readAfter(from, Math.min(packetsRoom, this.opts.framePacketsMax));
      // The session may have ended, or restarted from another point, while the store read.
      if (this.transport !== t || this.sentSeq !== from) return;
      const admit = this.inflight.room();
      const batch: Inflight[] = [];
      let last = from;
      for (const packet of packets) {
        const refusal = this.gateway.refusal(packet);
        if (refusal) {
          this.deadLetter(packet, refusal.code, `not sent: ${refusal.message}`);
          last = packet.seq;
          continue;
        }
        const bytes = packetCreditBytes(packet);
        if (!admit(bytes)) break;
        batch.push({ packet, bytes });
        last = packet.seq;
      }
      if (last === from) return;
      if (batch.length > 0) this.sendFrames(t, batch);
      this.sentSeq = last;
    }
  }

  /** A stored packet the gateway could never take: kept as a dead letter (and so acked in the store) without sending it. */
  private deadLetter(packet: Packet, code: string, message: string): void {
    this.deps.log.warn('link: packet not sent; moved to dead letters', { seq: packet.seq, target: packet.target, code, message });
    this.counters.deadLetters++;
    this.deps.store.deadLetter(packet, code, message).catch((err) => this.deps.log.error('store: dead letter write failed', { err }));
  }

  /** Sends packets as DATA frames of at most framePacketsMax packets and frameBytesMax bytes, each within the gateway's frameBytesMax once encoded. */
  private sendFrames(t: Transport, entries: Inflight[]): void {
    const wireMax = this.gateway.frameBytesMax;
    let frame: Packet[] = [];
    let frameBytes = 0;
    let frameWire = dataFrameOverheadBytes;
    for (const e of entries) {
      const wire = this.gateway.wireBytes(e.packet);
      if (frame.length > 0 && (frame.length >= this.opts.framePacketsMax || frameBytes + e.bytes > this.opts.frameBytesMax || (wireMax !== undefined && frameWire + wire > wireMax))) {
        t.send({ t: FrameType.DATA, packets: frame });
        frame = [];
        frameBytes = 0;
        frameWire = dataFrameOverheadBytes;
      }
      frame.push(e.packet);
      frameBytes += e.bytes;
      frameWire += wire;
      this.inflight.add(e);
    }
    if (frame.length > 0) t.send({ t: FrameType.DATA, packets: frame });
  }
}

