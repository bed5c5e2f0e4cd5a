import type { Clock } from '../common/clock.js';
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { FrameType, protocolVersion, type Frame, type HelloFrame } from '../protocol/frames.js';
import type { Packet } from '../protocol/packet.js';
import type { Transport } from '../protocol/transport.js';
import type { DispatchLog } from './dispatch-log.js';
import type { DispatchPacket, Handler, HandlerResult } from './handlers/handler.js';
import type { Router } from './routes.js';

export interface SessionOptions {
  helloTimeoutMs: number;
  peerTimeoutMs: number;
  /** packets received and not yet acked that one session may hold; also the credit it grants */
  queuePacketsMax: number;
  queueBytesMax: number;
}

export interface SessionDeps {
  clock: Clock;
  log: Log;
  dispatchLog: DispatchLog;
  router: Router<Handler>;
  /** Called once the agent said HELLO; returns false to refuse it. */
  register(agent: string, session: Session): void;
  unregister(agent: string, session: Session): void;
  newSessionId(): string;
  counters: { dispatched: number; rejected: number; duplicates: number };
}

const agentIdPattern = /^[A-Za-z0-9._:-]{1,255}$/;

/**
 * One agent's session on one transport. Packets are handled in seq order, a DATA frame at a
 * time: every packet of the frame goes to its handler, then the highest seq is recorded durably,
 * and only then is the ACK sent (write first, ack second). A packet at or below the recorded seq
 * is acked without being dispatched again.
 */
export class Session {
  agent: string | null = null;
  private queue: Packet[][] = [];
  private queuedPackets = 0;
  private processing = false;
  private closed = false;
  private lastRxMs: number;
  private timer: unknown = null;

  constructor(private readonly t: Transport, private readonly opts: SessionOptions, private readonly deps: SessionDeps) {
    this.lastRxMs = deps.clock.now();
    this.timer = deps.clock.setTimeout(() => this.bye(ErrorCode.PEER_TIMEOUT, 'no HELLO in time'), opts.helloTimeoutMs);
    t.onFrame((f) => this.onFrame(f));
    void t.closed.then((err) => {
      this.closed = true;
      if (this.timer !== null) deps.clock.clearTimeout(this.timer);
      if (this.agent) deps.unregister(this.agent, this);
      if (err) deps.log.info('session: closed', { agent: this.agent, code: (err as FerryError).code, error: err.message });
    });
  }

  bye(code: ErrorCode, reason: string): void {
    this.t.send({ t: FrameType.BYE, code, reason });
    this.t.close(new FerryError(code, reason));
  }

  private onFrame(f: Frame): void {
    this.lastRxMs = this.deps.clock.now();
    if (this.agent === null) {
      if (f.t !== FrameType.HELLO) return this.bye(ErrorCode.PROTOCOL_STATE, `expected HELLO, got frame type ${f.t}`);
      return this.onHello(f);
    }
    switch (f.t) {
      case FrameType.DATA:
        this.queue.push(f.packets);
        this.queuedPackets += f.packets.length;
        if (this.queuedPackets > this.opts.queuePacketsMax) {
          return this.bye(ErrorCode.PROTOCOL_STATE, `more than ${this.opts.queuePacketsMax} packets in flight: the agent ignored its credit`);
        }
        if (!this.processing) void this.process();
        return;
      case FrameType.PING:
        return this.t.send({ t: FrameType.PONG, id: f.id });
      case FrameType.PONG:
        return;
      case FrameType.BYE:
        this.deps.log.info('session: agent said BYE', { agent: this.agent, code: f.code, reason: f.reason });
        return this.t.close();
      default:
        return this.bye(ErrorCode.PROTOCOL_STATE, `unexpected frame type ${f.t}`);
    }
  }

  private onHello(h: HelloFrame): void {
    const { clock, dispatchLog, log } = this.deps;
    if (h.version !== protocolVersion) return this.bye(ErrorCode.PROTOCOL_VERSION, `protocol version ${h.version} is not supported; this gateway speaks ${protocolVersion}`);
    if (!agentIdPattern.test(h.agent)) return this.bye(ErrorCode.FRAME_MALFORMED, 'agent ID must be 1-255 of letters, digits and . _ : -');
    clock.clearTimeout(this.timer);
    this.agent = h.agent;
    this.deps.register(h.agent, this);
    const session = this.deps.newSessionId();
    const dispatchedSeq = dispatchLog.get(h.agent);
    log.info('session: agent connected', { agent: h.agent, session, dispatchedSeq, agentAckedSeq: h.ackedSeq });
    this.t.send({ t: FrameType.WELCOME, session, dispatchedSeq, creditPackets: this.opts.queuePacketsMax, creditBytes: this.opts.queueBytesMax });
    const tick = (): void => {
      if (this.closed) return;
      if (clock.now() - this.lastRxMs > this.opts.peerTimeoutMs) return this.bye(ErrorCode.PEER_TIMEOUT, `nothing from agent for ${this.opts.peerTimeoutMs} ms`);
      this.timer = clock.setTimeout(tick, Math.max(100, this.opts.peerTimeoutMs / 4));
    };
    this.timer = clock.setTimeout(tick, Math.max(100, this.opts.peerTimeoutMs / 4));
  }

  private async process(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const packets = this.queue.shift()!;
        await this.dispatchFrame(packets);
        this.queuedPackets -= packets.length;
      }
    } catch (err) {
      this.deps.log.error('session: dispatch failed', { agent: this.agent, err });
      this.t.close(err as Error);
    } finally {
      this.processing = false;
    }
  }

  private async dispatchFrame(packets: Packet[]): Promise<void> {
    const agent = this.agent!;
    const { dispatchLog, counters } = this.deps;
    const recorded = dispatchLog.get(agent);
    let todo = packets.filter((p) => p.seq > recorded);
    counters.duplicates += packets.length - todo.length;
    const last = packets[packets.length - 1]!.seq;
    while (todo.length > 0) {
      // All packets of the frame go out at once; handlers apply them in call order.
      const results = await Promise.all(todo.map((p) => this.handle({ ...p, agent })));
      const retry: Packet[] = [];
      let retryAfterMs = 0;
      for (const [i, r] of results.entries()) {
        const p = todo[i]!;
        if (r.ok) counters.dispatched++;
        else if (!r.retryable) {
          counters.rejected++;
          this.t.send({ t: FrameType.NACK, seq: p.seq, code: r.code, message: r.message });
        } else {
          retry.push(p);
          retryAfterMs = Math.max(retryAfterMs, r.retryAfterMs);
        }
      }
      todo = retry;
      if (todo.length > 0) {
        this.deps.log.warn('session: handler failed; retrying', { agent, seq: todo[0]!.seq, retryAfterMs });
        await new Promise((r) => this.deps.clock.setTimeout(() => r(undefined), retryAfterMs));
        if (this.closed) return;
      }
    }
    if (last > recorded) await dispatchLog.record(agent, last);
    this.t.send({ t: FrameType.ACK, seq: last, creditPackets: Math.max(0, this.opts.queuePacketsMax - this.queuedPackets + packets.length), creditBytes: this.opts.queueBytesMax });
  }

  private handle(p: DispatchPacket): Promise<HandlerResult> {
    const handler = this.deps.router.route(p.target);
    if (!handler) return Promise.resolve({ ok: false, retryable: false, code: ErrorCode.UNKNOWN_TARGET, message: `no route for target ${p.target}` });
    // A handler that throws (even synchronously) is a retryable failure, never a dead session.
    return Promise.resolve().then(() => handler.handle(p)).catch((err: unknown) => ({ ok: false as const, retryable: true as const, code: ErrorCode.HANDLER_FAILED, message: String((err as Error)?.message ?? err), retryAfterMs: 1000 }));
  }
}
