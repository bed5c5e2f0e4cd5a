import type { Clock } from '../common/clock.js';
import type { Log, LogFields } from '../common/log.js';
import { RangeSet } from '../common/range-set.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { ackRangesMax, FrameType, protocolVersion, type Frame, type HelloFrame } from '../protocol/frames.js';
import { agentIdPattern, agentIdRule } from '../protocol/ids.js';
import { checkPacket, dataDepthMaxDefault, type PacketLimits } from '../protocol/limits.js';
import { packetCreditBytes, type Packet } from '../protocol/packet.js';
import type { PeerInfo, Transport } from '../protocol/transport.js';
import { agentMessage } from './agent-message.js';
import type { Credential } from './auth.js';
import type { DispatchLog } from './dispatch-log.js';
import type { DispatchPacket, Handler, HandlerResult } from './handlers/handler.js';
import { Lane, type LaneItem, type LaneOptions, type LaneRefusal } from './lane.js';
import type { LogSummary } from './log-summary.js';
import type { RouteTrouble } from './route-trouble.js';
import type { Router } from './routes.js';
import type { DownlinkQueues } from './downlink/queue.js';
import { DownlinkSender } from './downlink/sender.js';
import { transportKind, type GatewayObserver } from './admin/observer.js';

export interface SessionOptions {
  helloTimeoutMs: number;
  /** the session ends after this long without a frame from the agent */
  peerTimeoutMs: number;
  /** how often the agent should PING (told in WELCOME) */
  pingIntervalMs: number;
  /** packets received and not yet acked or nacked that one session may hold: the most credit it grants */
  queuePacketsMax: number;
  queueBytesMax: number;
  /** packets of one target waiting for its handler, at most; more are refused with TARGET_BUSY */
  targetQueuePacketsMax: number;
  /** a target whose oldest packet waited longer than this is slow: its packets no longer count as free credit */
  targetSlowMs: number;
  /** retry-after of TARGET_BUSY */
  busyRetryAfterMs: number;
  /** a packet whose data is larger is rejected for good (NACK DATA_TOO_LARGE) */
  packetBytesMax: number;
  /** a packet whose data is nested deeper is rejected for good (NACK DATA_TOO_DEEP); default protocol/limits.ts dataDepthMaxDefault */
  packetDepthMax?: number;
  /** the transport's frame limit, told to the agent in WELCOME so it sizes its DATA frames to it */
  frameBytesMax?: number;
  /** a retryable failure with a retry-after up to retryInPlaceMsMax is retried in the gateway this many times before the agent gets it back */
  retriesInPlace: number;
  retryInPlaceMsMax: number;
}

/** A seq some session handed to a handler and whose outcome is not settled yet. */
export interface InDispatch {
  session: Session;
  target: string;
  /** settles once the outcome is known (and, on success, recorded) */
  done: Promise<void>;
}

export type Admission = { ok: true } | { ok: false; code: ErrorCode; message: string; retryAfterMs?: number };

export interface SessionDeps {
  clock: Clock;
  log: Log;
  dispatchLog: DispatchLog;
  router: Router<Handler>;
  /** Checks the agent's credentials (token, client certificate); absent: everyone is let in. */
  authenticate?(hello: HelloFrame, peer: PeerInfo | undefined): Admission & { credential?: Credential };
  /** Called once the agent said HELLO and was authenticated; may refuse (too many agents). */
  register(agent: string, session: Session): Admission;
  unregister(agent: string, session: Session): void;
  newSessionId(): string;
  /** Per agent, the seqs some session has handed to a handler and not yet settled: a resend waits for that outcome. */
  inDispatch: Map<string, Map<number, InDispatch>>;
  counters: { dispatched: number; rejected: number; duplicates: number; retried: number };
  /** Where refusals and session ends are logged: the first of a code whole, then summaries (a stranger can cause any number); absent: a line each. */
  summary?: LogSummary;
  /** the downlink queues; absent: no DOWN is ever sent */
  downlink?: DownlinkQueues;
  /** where a route's repeated failures are logged (once, then summaries, then cleared); absent: a line per failure */
  trouble?: RouteTrouble;
  /** told of this session's start and end, its packets and PINGs (status, metrics) */
  observer?: GatewayObserver;
}

/** The body of a frame the transport takes when it names no limit of its own (the agent's default decoder limit). */
const downFrameBytesMaxDefault = 1024 * 1024;

/**
 * One agent's session on one transport. Packets go to a lane per target (see Lane), so a failing
 * target never stalls another. A dispatched packet is recorded durably in the dispatch log
 * before its ACK is sent (write first, ack second); a packet seen again is acked without being
 * dispatched twice. ACKs carry the cumulative seq, the seqs dispatched above it since the last
 * ACK, and the credit: free room in this session's queue, minus what slow targets hold.
 */
export class Session {
  agent: string | null = null;
  /** the session ID told in WELCOME, once the agent is admitted */
  private sessionId = '';
  /** How the agent proved who it is (set with `agent`; absent without authenticate): checked again when the registry changes. */
  credential: Credential | undefined = undefined;
  private readonly lanes = new Map<string, Lane>();
  /** per target: the handler its lane hands packets to (another after a reload, once the lane is empty) */
  private readonly laneHandlers = new Map<string, Handler>();
  /** the gateway is stopping: no new packet is taken */
  private draining = false;
  private queuedPackets = 0;
  private queuedBytes = 0;
  private closed = false;
  private lastRxMs: number;
  private timer: unknown = null;
  /** dispatched since the last ACK */
  private newlyDone = new RangeSet();
  private ackScheduled = false;
  private shedTimer: unknown = null;
  /** per target: settles once the packet last handed to `run` reached its handler (true) or gave up before it (false) */
  private readonly handOvers = new Map<string, Promise<boolean>>();
  /** a handler failure's own message, for the gateway's log only: the agent is told agentMessage() instead */
  private readonly causes = new WeakMap<HandlerResult, string>();
  /** this session's downlink, once the agent said HELLO with a downlink window */
  private downlink: DownlinkSender | null = null;

  /** What every lane of this session gets (a slow target keeps at most a quarter of the credit: the rest stays for the others). */
  private readonly laneShare: Omit<LaneOptions, 'inflightMax'>;

  /** What each packet is checked against; told to the agent in WELCOME. */
  private readonly packetLimits: PacketLimits;

  constructor(private readonly t: Transport, private readonly opts: SessionOptions, private readonly deps: SessionDeps) {
    this.packetLimits = { dataBytesMax: opts.packetBytesMax, dataDepthMax: opts.packetDepthMax ?? dataDepthMaxDefault };
    this.laneShare = {
      busyRetryAfterMs: opts.busyRetryAfterMs, slowMs: opts.targetSlowMs,
      queuePacketsMax: Math.max(1, Math.min(opts.targetQueuePacketsMax, Math.floor(opts.queuePacketsMax / 4))),
      bytesMax: Math.floor(opts.queueBytesMax / 4),
      retriesInPlace: opts.retriesInPlace, retryInPlaceMsMax: opts.retryInPlaceMsMax,
    };
    this.lastRxMs = deps.clock.now();
    this.timer = deps.clock.setTimeout(() => this.bye(ErrorCode.PEER_TIMEOUT, 'no HELLO in time'), opts.helloTimeoutMs);
    t.onFrame((f) => this.onFrame(f));
    void t.closed.then((err) => {
      this.closed = true;
      // Packets still waiting in a lane go to no handler now: the agent sends them again.
      for (const lane of this.lanes.values()) lane.close();
      if (this.timer !== null) deps.clock.clearTimeout(this.timer);
      if (this.shedTimer !== null) deps.clock.clearTimeout(this.shedTimer);
      this.downlink?.close();
      if (this.agent) {
        deps.unregister(this.agent, this);
        deps.observer?.sessionClosed(this.agent, this.sessionId);
      }
      if (err) this.note('info', 'session: closed', (err as FerryError).code ?? 'UNKNOWN', { agent: this.agent, address: this.t.peer?.address, error: err.message });
    });
  }

  bye(code: ErrorCode, reason: string, retryAfterMs?: number): void {
    this.t.send({ t: FrameType.BYE, code, reason, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    this.t.close(new FerryError(code, reason));
  }

  /**
   * Moves the agent's dispatch floor to its `ackedSeq`, but no higher than the highest seq this
   * gateway recorded as dispatched for it: the floor is what the gateway acks and tells in WELCOME,
   * so a floor past anything it saw would ack the agent's next packets undispatched. One HELLO
   * with ackedSeq 2^53-1 did that for good (issue 10, case 2). A gap the clamp leaves (seqs
   * rejected above the last dispatch) closes at the first PING after the next dispatch.
   */
  private raiseFloor(ackedSeq: number): void {
    const { dispatchLog } = this.deps;
    const agent = this.agent!;
    dispatchLog.raiseFloor(agent, Math.min(ackedSeq, dispatchLog.dispatchedMax(agent)));
  }

  private note(level: 'info' | 'warn', msg: string, code: string, fields: LogFields): void {
    if (this.deps.summary) this.deps.summary.note(level, msg, code, fields);
    else this.deps.log[level](msg, { code, ...fields });
  }

  /** Packets handed to a handler (or on their way to it) whose verdict has not come. */
  get inHandlers(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.size;
    return n;
  }

  /** Whether a lane of this session has packets waiting for or in `handler`. */
  holds(handler: Handler): boolean {
    for (const [target, lane] of this.lanes) if (lane.size > 0 && this.laneHandlers.get(target) === handler) return true;
    return false;
  }

  /**
   * The gateway is stopping: packets waiting in a lane go to no handler (the agent sends them
   * again after it reconnects) and new ones are refused with SHUTDOWN; resolves once every packet
   * already in a handler has its verdict, recorded and acked (or the session ended). `pollMs` is
   * how often it looks.
   */
  drain(pollMs = 10): Promise<void> {
    this.draining = true;
    for (const lane of this.lanes.values()) lane.close();
    return new Promise((resolve) => {
      const look = (): void => {
        if (this.closed || (this.inHandlers === 0 && !this.ackScheduled)) return resolve();
        this.deps.clock.setTimeout(look, pollMs);
      };
      look();
    });
  }

  /** Packets this session holds (received, not yet acked or nacked). */
  get queued(): number {
    return this.queuedPackets;
  }

  private onFrame(f: Frame): void {
    this.lastRxMs = this.deps.clock.now();
    if (this.agent === null) {
      if (f.t !== FrameType.HELLO) return this.bye(ErrorCode.PROTOCOL_STATE, `expected HELLO, got frame type ${f.t}`);
      return this.onHello(f);
    }
    switch (f.t) {
      case FrameType.DATA:
        this.deps.observer?.packetsReceived(this.agent, f.packets.length);
        for (const p of f.packets) {
          if (this.closed) return;
          this.onPacket(p);
        }
        return;
      case FrameType.PING:
        if (f.ackedSeq !== undefined) this.agentLetGo(f.ackedSeq);
        this.deps.observer?.pinged(this.agent, { ...(f.backlogPackets !== undefined ? { backlogPackets: f.backlogPackets } : {}), ...(f.backlogBytes !== undefined ? { backlogBytes: f.backlogBytes } : {}), ...(f.oldestAgeMs !== undefined ? { oldestAgeMs: f.oldestAgeMs } : {}) });
        return this.t.send({ t: FrameType.PONG, id: f.id });
      case FrameType.PONG:
        return;
      case FrameType.BYE:
        this.deps.log.info('session: agent said BYE', { agent: this.agent, code: f.code, reason: f.reason });
        return this.t.close();
      case FrameType.DOWN_ACK:
        if (!this.downlink) return this.bye(ErrorCode.PROTOCOL_STATE, 'DOWN_ACK in a session without downlink');
        return this.downlink.onAck(f);
      default:
        return this.bye(ErrorCode.PROTOCOL_STATE, `unexpected frame type ${f.t}`);
    }
  }

  private onHello(h: HelloFrame): void {
    const { clock, dispatchLog, log } = this.deps;
    if (h.version !== protocolVersion) return this.bye(ErrorCode.PROTOCOL_VERSION, `protocol version ${h.version} is not supported; this gateway speaks ${protocolVersion}`);
    if (!agentIdPattern.test(h.agent)) return this.bye(ErrorCode.FRAME_MALFORMED, `agent ID must be ${agentIdRule}`);
    const auth: Admission & { credential?: Credential } = this.deps.authenticate?.(h, this.t.peer) ?? { ok: true };
    if (!auth.ok) {
      this.note('warn', 'session: authentication failed', auth.code, { agent: h.agent, address: this.t.peer?.address, error: auth.message });
      return this.bye(auth.code, auth.message, auth.retryAfterMs);
    }
    const admitted = this.deps.register(h.agent, this);
    if (!admitted.ok) {
      this.note('warn', 'session: refused', admitted.code, { agent: h.agent, address: this.t.peer?.address, error: admitted.message });
      return this.bye(admitted.code, admitted.message, admitted.retryAfterMs);
    }
    clock.clearTimeout(this.timer);
    this.agent = h.agent;
    this.credential = auth.credential;
    this.raiseFloor(h.ackedSeq);
    const session = this.deps.newSessionId();
    this.sessionId = session;
    this.deps.observer?.sessionOpened({ agent: h.agent, session, transport: transportKind(this.t.peer), address: this.t.peer?.address });
    const dispatchedSeq = dispatchLog.floor(h.agent);
    const ranges = dispatchLog.ranges(h.agent, ackRangesMax);
    log.info('session: agent connected', { agent: h.agent, session, dispatchedSeq, gaps: dispatchLog.gaps(h.agent), agentAckedSeq: h.ackedSeq });
    this.t.send({
      t: FrameType.WELCOME, session, dispatchedSeq, creditPackets: this.opts.queuePacketsMax, creditBytes: this.opts.queueBytesMax,
      pingIntervalMs: this.opts.pingIntervalMs, ...(ranges.length > 0 ? { ranges } : {}), seenSeq: dispatchLog.seen(h.agent),
      // The agent holds its packets to the same limits, so it never sends one this gateway would refuse.
      ...(this.opts.frameBytesMax !== undefined ? { frameBytesMax: this.opts.frameBytesMax } : {}),
      dataBytesMax: this.packetLimits.dataBytesMax, dataDepthMax: this.packetLimits.dataDepthMax,
    });
    this.startDownlink(h);
    const tick = (): void => {
      if (this.closed) return;
      if (clock.now() - this.lastRxMs > this.opts.peerTimeoutMs) return this.bye(ErrorCode.PEER_TIMEOUT, `nothing from agent for ${this.opts.peerTimeoutMs} ms`);
      this.timer = clock.setTimeout(tick, Math.max(100, this.opts.peerTimeoutMs / 4));
    };
    this.timer = clock.setTimeout(tick, Math.max(100, this.opts.peerTimeoutMs / 4));
  }

  /** An agent that named a downlink window gets its queued messages, from now on, within it. */
  private startDownlink(h: HelloFrame): void {
    const queues = this.deps.downlink;
    if (!queues || !h.downMessagesMax || !h.downBytesMax) return;
    this.downlink = new DownlinkSender(h.agent, { messages: h.downMessagesMax, bytes: h.downBytesMax }, {
      queues, clock: this.deps.clock, log: this.deps.log,
      send: (f) => {
        if (!this.closed) this.t.send(f);
      },
      bye: (code, reason) => this.bye(code, reason),
      note: (level, msg, code, fields) => this.note(level, msg, code, fields),
      frameBytesMax: this.t.frameBytesMax ?? downFrameBytesMaxDefault,
    });
  }

  /** The agent's store let go of every seq up to `seq`. */
  private agentLetGo(seq: number): void {
    this.raiseFloor(seq);
    for (const lane of this.lanes.values()) lane.forgetThrough(seq);
  }

  private onPacket(p: Packet): void {
    const agent = this.agent!;
    const { dispatchLog, counters, router } = this.deps;
    const bytes = packetCreditBytes(p);
    // A packet larger than the byte credit may go alone, when nothing else is in flight.
    const overBytes = this.queuedBytes > 0 && this.queuedBytes + bytes > this.opts.queueBytesMax;
    this.queuedPackets++;
    this.queuedBytes += bytes;
    if (this.queuedPackets > this.opts.queuePacketsMax || overBytes) {
      return this.bye(ErrorCode.CREDIT_EXCEEDED, `more than ${this.opts.queuePacketsMax} packets or ${this.opts.queueBytesMax} bytes in flight: the agent ignored its credit`);
    }
    const item: LaneItem = { packet: { ...p, agent }, bytes };
    try {
      checkPacket(p, this.packetLimits);
    } catch (err) {
      // One packet over a limit, in a frame that could be read: refused alone, for good; the session goes on.
      const e = err as FerryError;
      return this.reject(item, e.code, `${e.message} (this gateway's limit)`);
    }
    if (dispatchLog.has(agent, p.seq)) {
      counters.duplicates++;
      this.lanes.get(p.target)?.settledElsewhere(p.seq);
      return this.done(item);
    }
    if (this.draining) return this.refuse(item, { code: ErrorCode.SHUTDOWN, message: 'the gateway is stopping', retryAfterMs: 1000 });
    const handler = router.route(p.target);
    let lane = this.lanes.get(p.target);
    if (lane && this.laneHandlers.get(p.target) !== handler) {
      // The routes were reloaded: this target's earlier packets finish with the handler they went
      // to, and later ones wait behind them (held in seq order) before the new handler gets any.
      if (lane.size > 0) {
        const why = { code: ErrorCode.TARGET_BUSY, message: `the routes changed: earlier packets of ${p.target} are still with the previous handler`, retryAfterMs: this.opts.busyRetryAfterMs };
        return this.refuse(item, lane.refuseNow(item, why));
      }
      if (handler) {
        this.laneHandlers.set(p.target, handler);
        lane.setInflightMax(handler.inflightMax ?? 1);
      } else {
        this.lanes.delete(p.target);
        this.laneHandlers.delete(p.target);
        lane = undefined;
      }
    }
    if (!handler) return this.reject(item, ErrorCode.UNKNOWN_TARGET, `no route for target ${p.target}`);
    if (!lane) {
      const target = p.target;
      lane = new Lane({ ...this.laneShare, inflightMax: handler.inflightMax ?? 1 }, {
        run: (i) => this.run(this.laneHandlers.get(target) ?? handler, i), settled: (i, r) => this.settled(i, r), refused: (i, r) => this.refuse(i, r),
        now: () => this.deps.clock.now(), later: (fn, ms) => void this.deps.clock.setTimeout(() => !this.closed && fn(), ms),
      });
      this.lanes.set(target, lane);
      this.laneHandlers.set(target, handler);
    }
    // The dispatch log bounds what it remembers per agent: past that, the packet waits its turn.
    const admitted = dispatchLog.admit(agent, p.seq);
    const refusal = admitted.ok ? lane.offer(item) : lane.refuseNow(item, admitted);
    if (refusal) this.refuse(item, refusal);
    else this.armShed();
  }

  /** While lanes hold packets, looks every targetSlowMs for slow ones to give back what they hold beyond their share. */
  private armShed(): void {
    if (this.shedTimer !== null || this.closed) return;
    this.shedTimer = this.deps.clock.setTimeout(() => {
      this.shedTimer = null;
      if (this.closed) return;
      let busy = false;
      for (const [target, lane] of this.lanes) {
        lane.shed();
        if (lane.idle) {
          this.lanes.delete(target);
          this.laneHandlers.delete(target);
        }
        else busy ||= lane.size > 0;
      }
      if (busy) this.armShed();
    }, this.opts.targetSlowMs + 1);
  }

  /**
   * Runs the handler for `item` once the packets the lane handed over before it (same target)
   * reached their handler: waits below (another session's dispatch, the handed-over mark) may
   * end in any order, the hand-overs may not.
   */
  private async run(handler: Handler, item: LaneItem): Promise<HandlerResult> {
    const target = item.packet.target;
    const before = this.handOvers.get(target);
    let settle!: (went: boolean) => void;
    const mine = new Promise<boolean>((resolve) => (settle = resolve));
    this.handOvers.set(target, mine);
    let went = false;
    try {
      // The packet before this one failed before it reached the handler: this one must not pass it.
      if (before && !(await before)) return { ok: false, retryable: true, code: ErrorCode.TARGET_BUSY, message: 'an earlier packet of this target could not be handed to its handler', retryAfterMs: 1000 };
      return await this.runInOrder(handler, item, () => {
        went = true;
        settle(true);
      });
    } finally {
      settle(went);
      if (this.handOvers.get(target) === mine) this.handOvers.delete(target);
    }
  }

  private async runInOrder(handler: Handler, item: LaneItem, handedOver: () => void): Promise<HandlerResult> {
    const agent = item.packet.agent;
    const seq = item.packet.seq;
    // Look in the dispatch log first (another session may have recorded this seq since it was
    // offered), and wait out every dispatch of it still open in other sessions, looking again after each wait.
    for (;;) {
      if (this.closed) return { ok: false, retryable: true, code: ErrorCode.SHUTDOWN, message: 'the session ended before its handler ran', retryAfterMs: 0 };
      if (this.deps.dispatchLog.has(agent, seq)) {
        handedOver(); // done before: the packets after it may go
        return { ok: true };
      }
      const open = this.deps.inDispatch.get(agent);
      const earlier = open?.get(seq);
      if (earlier) {
        await earlier.done;
        continue;
      }
      // A session this one replaced may still have a packet of this target in the handler: one
      // session's packets of a target follow the other's, as they would within one session.
      let other: InDispatch | undefined;
      for (const x of open?.values() ?? []) if (x.session !== this && x.target === item.packet.target) other = x;
      if (!other) break;
      await other.done;
    }
    // A handler may remember what it was handed even if the dispatch is never recorded (a crash
    // in between): the gateway first makes a mark above this seq durable, so an agent whose store
    // was wiped renumbers above it (WELCOME seenSeq) instead of reusing it.
    const mark = this.deps.dispatchLog.noteHandedOver(agent, seq);
    if (mark) {
      try {
        await mark;
      } catch (err) {
        this.deps.log.error('session: the dispatch log could not record a handed-over mark', { agent, seq, err });
        return { ok: false, retryable: true, code: ErrorCode.INTERNAL, message: 'the dispatch log could not record the handed-over mark', retryAfterMs: 1000 };
      }
      return this.runInOrder(handler, item, handedOver);
    }
    let perAgent = this.deps.inDispatch.get(agent);
    if (!perAgent) this.deps.inDispatch.set(agent, (perAgent = new Map()));
    const result = this.handled(handler, item.packet);
    handedOver();
    const recorded = result.then((r) => (r.ok ? this.deps.dispatchLog.record(agent, seq) : undefined)).catch(() => undefined);
    const entry: InDispatch = { session: this, target: item.packet.target, done: recorded };
    perAgent.set(seq, entry);
    await recorded;
    if (perAgent.get(seq) === entry) perAgent.delete(seq);
    if (perAgent.size === 0 && this.deps.inDispatch.get(agent) === perAgent) this.deps.inDispatch.delete(agent);
    const r = await result;
    if (r.ok && !this.deps.dispatchLog.has(agent, seq)) {
      return { ok: false, retryable: true, code: ErrorCode.INTERNAL, message: 'the dispatch log could not record the packet', retryAfterMs: 1000 };
    }
    return r;
  }

  /** Runs the handler; a failure's message is replaced by what the agent may be told, and kept for the log. */
  private handled(handler: Handler, p: DispatchPacket): Promise<HandlerResult> {
    return handle(handler, p).then((r) => {
      if (r.ok) {
        this.deps.trouble?.delivered(handler);
        return r;
      }
      if (r.retryable) this.deps.trouble?.failed(handler, p, r, r.message);
      const told: HandlerResult = { ...r, message: agentMessage(String(handler.kind), p.target, r.code, r.retryable) };
      this.causes.set(told, r.message);
      return told;
    });
  }

  private settled(item: LaneItem, r: HandlerResult): void {
    if (r.ok) {
      this.deps.counters.dispatched++;
      return this.done(item);
    }
    const { seq, target } = item.packet;
    const cause = this.causes.get(r) ?? r.message;
    if (!r.retryable) {
      // A summary, not a line per packet: an agent can send any number of packets a handler refuses.
      this.note('warn', 'session: handler rejected the packet for good; agent keeps it as a dead letter', r.code, { agent: this.agent, seq, target, cause });
      return this.reject(item, r.code, r.message);
    }
    // A handler's own failure was counted as its route's trouble already (RouteTrouble).
    if (!(this.deps.trouble && this.causes.has(r))) this.note('warn', 'session: handler failed; agent retries later', r.code, { agent: this.agent, seq, target, retryAfterMs: r.retryAfterMs, cause });
    this.refuse(item, r);
  }

  private done(item: LaneItem): void {
    this.release(item);
    this.newlyDone.add(item.packet.seq);
    this.scheduleAck();
  }

  private reject(item: LaneItem, code: string, message: string): void {
    this.release(item);
    this.deps.counters.rejected++;
    this.t.send({ t: FrameType.NACK, seq: item.packet.seq, code, message });
    this.scheduleAck();
  }

  private refuse(item: LaneItem, r: LaneRefusal): void {
    this.release(item);
    this.deps.counters.retried++;
    this.t.send({ t: FrameType.NACK, seq: item.packet.seq, code: r.code, message: r.message, retryAfterMs: r.retryAfterMs });
    this.scheduleAck();
  }

  private release(item: LaneItem): void {
    this.queuedPackets--;
    this.queuedBytes -= item.bytes;
  }

  /** One ACK for everything that settled in the same turn of the event loop. */
  private scheduleAck(): void {
    if (this.ackScheduled || this.closed) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      if (this.closed) return;
      this.sendAck();
    });
  }

  private sendAck(): void {
    const agent = this.agent!;
    const floor = this.deps.dispatchLog.floor(agent);
    this.newlyDone.dropThrough(floor);
    const all = this.newlyDone.toArray();
    // More ranges than one ACK carries: the rest go in the next one.
    const ranges = all.slice(0, ackRangesMax);
    this.newlyDone = new RangeSet(all.slice(ackRangesMax));
    if (all.length > ackRangesMax) this.scheduleAck();
    const slow = this.slowHeld();
    this.t.send({
      t: FrameType.ACK, seq: floor, ...(ranges.length > 0 ? { ranges } : {}),
      creditPackets: Math.max(0, this.opts.queuePacketsMax - slow.packets),
      creditBytes: Math.max(0, this.opts.queueBytesMax - slow.bytes),
    });
  }

  /** What slow targets hold: credit the agent cannot use for the others. */
  private slowHeld(): { packets: number; bytes: number } {
    let packets = 0;
    let bytes = 0;
    const now = this.deps.clock.now();
    for (const lane of this.lanes.values()) {
      if (lane.isSlow(now)) {
        packets += lane.size;
        bytes += lane.bytes;
      }
    }
    return { packets, bytes };
  }
}

function handle(handler: Handler, p: DispatchPacket): Promise<HandlerResult> {
  // A handler that throws (even synchronously) is a retryable failure, never a dead session.
  return Promise.resolve()
    .then(() => handler.handle(p))
    .catch((err: unknown) => ({ ok: false as const, retryable: true as const, code: ErrorCode.HANDLER_FAILED, message: String((err as Error)?.message ?? err), retryAfterMs: 1000 }));
}
