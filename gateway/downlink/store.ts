/**
 * The gateway's durable downlink queues (the DownlinkQueues contract, gateway/downlink/queue.ts):
 * per agent, in memory (agent-queue.ts), and in one append-only file (journal.ts: CRC-framed
 * records, group commit across agents, compaction into a snapshot) whose records (records.ts) say
 * every change but one: `delivered` is memory only, so after a restart a message delivered and not
 * answered is queued again, in its place.
 *
 * Write first, answer second. `enqueue` resolves once its record is durable; until then the
 * message counts against the bounds but nothing shows it (take, get, list) and its listeners are
 * not called; if the write fails it is gone from memory too and `enqueue` rejects. `settle` writes
 * the verdicts and only then makes them final in memory (meanwhile the message stays `delivered`
 * and further results for it are ignored); a failed write leaves it delivered (queued again if its
 * session ended meanwhile). Expiries and drops are decided in memory at once and their records go
 * with the next write, again after a failed one; a drop goes in the same write as, or before, the
 * enqueue that caused it, so an enqueue that resolved never finds its drops undone.
 *
 * Order: ascending `n`, a per-agent counter kept in the records. `requeue` puts messages back at
 * their place, which is in front of every queued one taken after them.
 *
 * Expiry is lazy, no timers: `take` expires what it meets, `get`/`list` expire the queued messages
 * they show, and a full queue sweeps before it refuses or drops. A `delivered` message is not
 * expired here (its agent may have handed it on already: its verdict decides), nor is one that was
 * sent once and queued again when its session ended (records.ts `o`), nor is either dropped by
 * drop-oldest; an agent's refusal with DOWNLINK_EXPIRED makes it `expired`.
 *
 * `list` gives the live messages in queue order (delivered and queued, by `n`), then the history
 * oldest first (by when each became final; after a restart, by when its record was written, which
 * may swap messages that became final during one write).
 *
 * What a crash may leave: an enqueue or verdict in flight (never answered) may or may not be
 * there; an expiry or a drop whose record was not yet written is undone (an expired message is
 * found expired again; a dropped one is queued again, only if the enqueue it was dropped for never
 * resolved). A rejected enqueue is not there, with one exception (journal.ts): its write failed,
 * cutting it back failed too, and the power failed before the next write.
 *
 * Bounds. Memory holds at most, per agent, queueMessagesMax live messages (of at most
 * queueBytesMax bytes) and historyMessagesMax final ones (their data too: GET shows it); an agent
 * with neither is forgotten. A verdict's code and reason are cut to 64 and 1024 characters.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../common/clock.js';
import type { Files } from '../../common/files.js';
import type { Log } from '../../common/log.js';
import { realFiles } from '../../common/real-files.js';
import { recordBodyBytesMax } from '../../common/record.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { downIdPattern, type DownResult } from '../../protocol/frames.js';
import { packetCreditBytes } from '../../protocol/packet.js';
import { AgentQueue, type Msg, type Tally } from './agent-queue.js';
import { Journal } from './journal.js';
import { isFinalState, type DownlinkQueueLimits, type DownlinkQueues, type DownlinkStats, type EnqueueResult, type FinalState, type MessageState, type MessageView, type NewMessage, type TakenMessage } from './queue.js';
import { decodeRecord, encodeRecord } from './records.js';
import { applyRecord, queuedRecord, snapshotRecords } from './recovery.js';

export interface DownlinkStoreOptions {
  dir: string;
  /** default realFiles */
  files?: Files;
  clock: Clock;
  log: Log;
  limits: DownlinkQueueLimits;
  /** a new message ID (downIdPattern); default 16 random bytes as base64url */
  newId?: () => string;
  /** the file is compacted once past this (default 8 MiB) and grown by compactGrowthRatio × the last snapshot (default 1) */
  compactBytes?: number;
  compactGrowthRatio?: number;
  /** largest record body written and read (default common/record.ts recordBodyBytesMax; injectable for tests) */
  recordBodyBytesMax?: number;
  /** the file is read and the snapshot written in pieces of about this (default 1 MiB) */
  ioChunkBytes?: number;
}

/** A verdict's code and reason as kept (the frame decoder bounds them too; the history must not hold more). */
const codeCharsMax = 64;
const reasonCharsMax = 1024;
/** What a message's history record (a snapshot's) adds to its queued record, at most: state, time, code, reason. */
const historySlackBytes = 2048;

/** Records kept from a failed write are written again this long after, even with nothing new to write. */
const journalRetryMs = 1000;

const defaultNewId = (): string => randomBytes(16).toString('base64url');

export class DownlinkStore implements DownlinkQueues {
  private readonly agents = new Map<string, AgentQueue>();
  private readonly tally: Tally = { queued: 0, delivered: 0 };
  private readonly counts = { enqueued: 0, acked: 0, rejected: 0, expired: 0, dropped: 0, ignoredResults: 0 };
  private readonly listeners = new Set<(agent: string) => void>();
  private journal!: Journal;
  private closed = false;
  /** resolves once the `o` records of every take so far are durable */
  private sentPending: Promise<void> = Promise.resolve();

  private constructor(private readonly o: DownlinkStoreOptions, private readonly newId: () => string) {}

  static async open(o: DownlinkStoreOptions): Promise<DownlinkStore> {
    const s = new DownlinkStore(o, o.newId ?? defaultNewId);
    s.journal = await Journal.open({
      dir: o.dir, fileName: 'queue.log', files: o.files ?? realFiles, log: o.log,
      compactBytes: o.compactBytes ?? 8 * 1024 * 1024, compactGrowthRatio: o.compactGrowthRatio ?? 1,
      recordBodyBytesMax: o.recordBodyBytesMax ?? recordBodyBytesMax, ioChunkBytes: o.ioChunkBytes ?? 1024 * 1024,
      later: (fn) => void o.clock.setTimeout(() => !s.closed && fn(), journalRetryMs),
    }, (body) => {
      const r = decodeRecord(body);
      if (r) applyRecord(s.agents, r, (agent) => new AgentQueue(agent, o.limits.historyMessagesMax, s.tally));
    }, () => s.snapshot());
    for (const q of s.agents.values()) {
      q.afterRecovery();
      if (q.empty) s.agents.delete(q.agent);
    }
    o.log.info('downlink queue: opened', { agents: s.agents.size, queued: s.tally.queued, bytes: s.journal.bytes });
    return s;
  }

  async enqueue(agent: string, nm: NewMessage): Promise<EnqueueResult> {
    if (this.closed) throw new FerryError(ErrorCode.STORE_CLOSED, 'the downlink queue is closed');
    const { limits } = this.o;
    const now = this.o.clock.now();
    if (nm.ttlMs !== undefined && !(Number.isFinite(nm.ttlMs) && nm.ttlMs >= 0)) {
      return { ok: false, code: ErrorCode.DATA_INVALID, message: `ttlMs must be a number of milliseconds >= 0, got ${String(nm.ttlMs)}` };
    }
    const bytes = packetCreditBytes(nm);
    if (bytes > limits.queueBytesMax) {
      return { ok: false, code: ErrorCode.QUEUE_FULL, message: `the message takes ${bytes} bytes (target + data), more than the whole queue of agent ${agent} may hold (queueBytesMax ${limits.queueBytesMax})` };
    }
    const q = this.agents.get(agent) ?? new AgentQueue(agent, limits.historyMessagesMax, this.tally);
    const id = this.freshId(q);
    const m: Msg = {
      id, agent, n: q.nextN, target: nm.target, data: nm.data, bytes, queuedAt: now,
      ...(nm.ttlMs !== undefined ? { expiresAt: now + nm.ttlMs } : {}), ...(nm.from !== undefined ? { from: nm.from } : {}),
      state: 'queued', durable: false, settling: false, requeueAsked: false,
    };
    const body = encodeRecord(queuedRecord(m));
    const bodyMax = this.o.recordBodyBytesMax ?? recordBodyBytesMax;
    if (body.length + historySlackBytes > bodyMax) {
      return { ok: false, code: ErrorCode.DATA_TOO_LARGE, message: `the message's record takes ${body.length} bytes, more than the ${bodyMax - historySlackBytes} the queue's file holds in one record` };
    }
    const full = this.makeRoom(q, bytes, now);
    if (full !== undefined) return { ok: false, code: ErrorCode.QUEUE_FULL, message: full };
    this.agents.set(agent, q);
    q.add(m);
    return new Promise((resolve, reject) => {
      this.journal.append({
        bodies: [body],
        done: (err) => {
          if (err !== undefined) {
            if (isFinalState(m.state)) this.counts[m.state]--; // dropped while being written: that never happened either
            q.unadd(m);
            this.forgetIfEmpty(q);
            reject(err);
            return;
          }
          q.confirm(m);
          this.counts.enqueued++;
          resolve({ ok: true, id });
          // After the caller heard (a turn of the loop later): a listener takes it into a DOWN frame.
          setImmediate(() => this.notify(agent));
        },
      });
    });
  }

  get(agent: string, id: string): MessageView | undefined {
    const q = this.agents.get(agent);
    const m = q?.byId.get(id);
    if (!q || !m || !m.durable) return undefined;
    if (m.state === 'queued' && this.expired(m, this.o.clock.now())) this.finish(q, m, 'expired', ErrorCode.DOWNLINK_EXPIRED, 'its ttl ran out before it was delivered', true);
    return view(m);
  }

  list(agent: string, opts: { state?: MessageState; limit?: number } = {}): MessageView[] {
    const q = this.agents.get(agent);
    if (!q) return [];
    const now = this.o.clock.now();
    if (now >= q.earliestExpiry) {
      const expired = [...q.live()].filter((m) => m.state === 'queued' && this.expired(m, now));
      for (const m of expired) this.finish(q, m, 'expired', ErrorCode.DOWNLINK_EXPIRED, 'its ttl ran out before it was delivered', true);
    }
    const limit = opts.limit ?? Infinity;
    const out: MessageView[] = [];
    for (const part of [q.live(), q.finals()]) {
      for (const m of part) {
        if (out.length >= limit) return out;
        if (m.durable && (opts.state === undefined || m.state === opts.state)) out.push(view(m));
      }
    }
    return out;
  }

  take(agent: string, room: { messages: number; bytes: number; whole: boolean }): TakenMessage[] {
    const q = this.agents.get(agent);
    const out: TakenMessage[] = [];
    if (!q) return out;
    const now = this.o.clock.now();
    let bytes = 0;
    const sent: Buffer[] = [];
    while (out.length < room.messages) {
      const m = q.front();
      if (!m || !m.durable) break;
      if (this.expired(m, now)) {
        q.popFront();
        this.finish(q, m, 'expired', ErrorCode.DOWNLINK_EXPIRED, 'its ttl ran out before it was delivered');
        continue;
      }
      if (bytes + m.bytes > room.bytes && !(out.length === 0 && room.whole)) break;
      q.deliver(m);
      if (!m.sent) {
        m.sent = true;
        sent.push(encodeRecord({ k: 'o', a: q.agent, i: m.id, at: now }));
      }
      bytes += m.bytes;
      out.push({ id: m.id, target: m.target, data: m.data, queuedAt: m.queuedAt, bytes: m.bytes, ...(m.expiresAt !== undefined ? { expiresAt: m.expiresAt } : {}) });
    }
    this.forgetIfEmpty(q);
    // Durable before the frame goes (the sender waits for sentRecorded): kept for the next write if one fails.
    if (sent.length > 0) this.sentPending = new Promise((resolve) => this.journal.append({ bodies: sent, retry: true, done: () => resolve() }));
    return out;
  }

  sentRecorded(): Promise<void> {
    return this.sentPending;
  }

  requeue(agent: string, ids: readonly string[]): void {
    const q = this.agents.get(agent);
    if (!q) return;
    const back: Msg[] = [];
    for (const id of new Set(ids)) {
      const m = q.byId.get(id);
      if (m?.state !== 'delivered') continue;
      if (m.settling) m.requeueAsked = true;
      else back.push(m);
    }
    q.requeue(back);
    if (back.length > 0) setImmediate(() => this.notify(agent));
  }

  async settle(agent: string, results: readonly DownResult[]): Promise<{ applied: number; ignored: number }> {
    if (this.closed) throw new FerryError(ErrorCode.STORE_CLOSED, 'the downlink queue is closed');
    const q = this.agents.get(agent);
    const verdicts: { m: Msg; state: FinalState; code?: string; reason?: string }[] = [];
    for (const r of results) {
      const m = q?.byId.get(r.id);
      // Only a message delivered to this agent, and not being settled already, takes a verdict.
      if (!m || m.state !== 'delivered' || m.settling) continue;
      m.settling = true;
      m.requeueAsked = false;
      if (r.ok) verdicts.push({ m, state: 'acked' });
      else verdicts.push({ m, state: r.code === ErrorCode.DOWNLINK_EXPIRED ? 'expired' : 'rejected', code: String(r.code).slice(0, codeCharsMax), reason: String(r.reason).slice(0, reasonCharsMax) });
    }
    const ignored = results.length - verdicts.length;
    this.counts.ignoredResults += ignored;
    if (!q || verdicts.length === 0) return { applied: 0, ignored };
    const at = this.o.clock.now();
    const bodies = verdicts.map((v) => encodeRecord({ k: 'e', a: agent, i: v.m.id, s: v.state, at, ...(v.code !== undefined ? { c: v.code, r: v.reason } : {}) }));
    await new Promise<void>((resolve, reject) => {
      this.journal.append({
        bodies,
        done: (err) => {
          const back: Msg[] = [];
          for (const v of verdicts) {
            v.m.settling = false;
            if (err === undefined) {
              q.finish(v.m, v.state, at, v.code, v.reason);
              this.counts[v.state]++;
            } else if (v.m.requeueAsked) {
              v.m.requeueAsked = false;
              back.push(v.m);
            }
          }
          if (err !== undefined) {
            q.requeue(back);
            reject(err);
          } else {
            this.forgetIfEmpty(q);
            resolve();
          }
        },
      });
    });
    return { applied: verdicts.length, ignored };
  }

  onQueued(listener: (agent: string) => void): () => void {
    // A wrapper per subscription: the same function subscribed twice is two subscriptions.
    const own = (agent: string): void => listener(agent);
    this.listeners.add(own);
    return () => this.listeners.delete(own);
  }

  stats(): DownlinkStats {
    return { ...this.tally, ...this.counts, agents: this.agents.size, syncs: this.journal.syncs };
  }

  /** Per agent with live messages: queued (not sent), in flight (sent, no verdict yet) and their bytes; at most `agentsMax`, the fullest first. */
  queues(agentsMax: number): { agent: string; queued: number; inFlight: number; bytes: number }[] {
    const out: { agent: string; queued: number; inFlight: number; bytes: number }[] = [];
    for (const q of this.agents.values()) {
      if (q.liveMessages > 0) out.push({ agent: q.agent, queued: q.liveMessages - q.deliveredMessages, inFlight: q.deliveredMessages, bytes: q.liveBytes });
    }
    return out.sort((a, b) => b.queued + b.inFlight - (a.queued + a.inFlight)).slice(0, agentsMax);
  }

  /** Compactions of the file so far (tests). */
  get compactions(): number {
    return this.journal.compactions;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.journal.close();
  }

  private makeRoom(q: AgentQueue, bytes: number, now: number): string | undefined {
    const { queueMessagesMax, queueBytesMax, fullPolicy } = this.o.limits;
    const fits = (): boolean => q.liveMessages < queueMessagesMax && q.liveBytes + bytes <= queueBytesMax;
    if (fits()) return undefined;
    if (now >= q.earliestExpiry) q.sweep((m) => this.expired(m, now) && (this.finish(q, m, 'expired', ErrorCode.DOWNLINK_EXPIRED, 'its ttl ran out before it was delivered'), true));
    if (fits()) return undefined;
    const counts = `${q.liveMessages} messages, ${q.liveBytes} bytes; at most ${queueMessagesMax} messages, ${queueBytesMax} bytes`;
    // Dropping every queued message would not make room: the delivered ones alone fill it.
    if (fullPolicy !== 'drop-oldest' || q.deliveredMessages >= queueMessagesMax || q.deliveredBytes + bytes > queueBytesMax) {
      return fullPolicy === 'drop-oldest'
        ? `the queue of agent ${q.agent} is full of messages delivered and not yet answered (${counts}); those are never dropped`
        : `the queue of agent ${q.agent} is full (${counts})`;
    }
    // The oldest first, but never one sent before (queued again after its session ended): its consumer may have it.
    const droppable = q.queuedInOrder().filter((m) => !m.sent);
    const droppableBytes = droppable.reduce((n, m) => n + m.bytes, 0);
    if (q.liveMessages - droppable.length >= queueMessagesMax || q.liveBytes - droppableBytes + bytes > queueBytesMax) {
      return `the queue of agent ${q.agent} is full of messages sent and not yet answered (${counts}); those are never dropped`;
    }
    for (const m of droppable) {
      if (fits()) break;
      if (m.sent) continue;
      this.finish(q, m, 'dropped', ErrorCode.DOWNLINK_DROPPED, 'the queue was full (fullPolicy drop-oldest): a newer message took its place', true);
    }
    return fits() ? undefined : `the queue of agent ${q.agent} is full (${counts})`;
  }

  /** A live message reaches a final state the gateway decided (expiry, drop): at once in memory, its record with the next write. */
  private finish(q: AgentQueue, m: Msg, state: 'expired' | 'dropped', code: string, reason: string, inQueue = false): void {
    const at = state === 'expired' ? (m.expiresAt ?? this.o.clock.now()) : this.o.clock.now();
    q.finish(m, state, at, code, reason, inQueue);
    this.counts[state]++;
    if (!this.closed) this.journal.append({ bodies: [encodeRecord({ k: 'e', a: q.agent, i: m.id, s: state, c: code, r: reason, at })], retry: true });
  }

  /** A message sent before is not expired here: its agent may have handed it on; the agent's verdict (or its own expiry check) decides. */
  private expired(m: Msg, now: number): boolean {
    return !m.sent && m.expiresAt !== undefined && now >= m.expiresAt;
  }

  private freshId(q: AgentQueue): string {
    for (let attempt = 0; attempt < 8; attempt++) {
      const id = this.newId();
      if (!downIdPattern.test(id)) throw new FerryError(ErrorCode.INTERNAL, `the message ID generator gave ${JSON.stringify(id)}, not 1-64 of A-Z a-z 0-9 _ -`);
      if (!q.byId.has(id)) return id;
    }
    throw new FerryError(ErrorCode.INTERNAL, 'the message ID generator gave IDs in use 8 times in a row');
  }

  private forgetIfEmpty(q: AgentQueue): void {
    if (q.empty && this.agents.get(q.agent) === q) this.agents.delete(q.agent);
  }

  private notify(agent: string): void {
    for (const l of this.listeners) {
      try {
        l(agent);
      } catch (err) {
        this.o.log.error('downlink queue: an onQueued listener threw', { agent, err });
      }
    }
  }

  /** The state as records, captured now (the journal writes them while memory moves on). */
  private snapshot(): Iterable<Buffer> {
    const recs = snapshotRecords(this.agents.values());
    return (function* () {
      for (const r of recs) yield encodeRecord(r);
    })();
  }
}

function view(m: Msg): MessageView {
  const v: MessageView = { id: m.id, agent: m.agent, target: m.target, data: m.data, state: m.state, queuedAt: m.queuedAt };
  if (m.expiresAt !== undefined) v.expiresAt = m.expiresAt;
  if (m.from !== undefined) v.from = m.from;
  if (m.code !== undefined) v.code = m.code;
  if (m.reason !== undefined) v.reason = m.reason;
  if (m.finishedAt !== undefined) v.finishedAt = m.finishedAt;
  if (m.sent) v.sent = true;
  return v;
}
