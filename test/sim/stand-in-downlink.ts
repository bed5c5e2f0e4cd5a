/**
 * Stand-ins for the two durable pieces of the downlink that other branches are writing
 * (gateway/downlink/store.ts, agent/downlink/answered-log.ts), so the rest of the simulator's
 * downlink can run meanwhile. Each keeps its state in an image that outlives its process (as a
 * disk that never fails would): a restart finds everything an answered call made durable, and
 * `delivered` messages queued again. Once the real ones land, they replace these.
 */
import type { AnsweredLog } from '../../agent/downlink/consumer.js';
import type { Clock } from '../../common/clock.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { DownResult } from '../../protocol/frames.js';
import { packetCreditBytes } from '../../protocol/packet.js';
import type { DownlinkQueueLimits, DownlinkQueues, DownlinkStats, EnqueueResult, MessageState, MessageView, NewMessage, TakenMessage } from '../../gateway/downlink/queue.js';

interface Entry extends MessageView {
  bytes: number;
}

/** What survives the gateway process: per agent, its messages in queue order. */
export type QueueImage = Map<string, Entry[]>;

export class StandInQueues implements DownlinkQueues {
  private readonly listeners = new Set<(agent: string) => void>();
  private readonly counts = { enqueued: 0, acked: 0, rejected: 0, expired: 0, dropped: 0, ignoredResults: 0 };

  constructor(private readonly image: QueueImage, private readonly o: { clock: Clock; limits: DownlinkQueueLimits; newId: () => string }) {
    for (const list of image.values()) for (const e of list) if (e.state === 'delivered') e.state = 'queued';
    // A restart finds them in queue order: those sent before first, as requeue put them.
  }

  private queue(agent: string): Entry[] {
    let q = this.image.get(agent);
    if (!q) this.image.set(agent, (q = []));
    return q;
  }

  enqueue(agent: string, m: NewMessage): Promise<EnqueueResult> {
    const q = this.queue(agent);
    const bytes = packetCreditBytes(m);
    const live = q.filter((e) => e.state === 'queued' || e.state === 'delivered');
    const liveBytes = live.reduce((s, e) => s + e.bytes, 0);
    if (live.length + 1 > this.o.limits.queueMessagesMax || liveBytes + bytes > this.o.limits.queueBytesMax) {
      if (this.o.limits.fullPolicy === 'reject') return Promise.resolve({ ok: false, code: ErrorCode.QUEUE_FULL, message: 'queue full' });
      const oldest = live.find((e) => e.state === 'queued');
      if (!oldest) return Promise.resolve({ ok: false, code: ErrorCode.QUEUE_FULL, message: 'queue full of delivered messages' });
      this.finish(oldest, 'dropped', ErrorCode.DOWNLINK_DROPPED, 'dropped: queue full');
    }
    const now = this.o.clock.now();
    const e: Entry = { id: this.o.newId(), agent, target: m.target, data: m.data, state: 'queued', queuedAt: now, bytes, ...(m.ttlMs !== undefined ? { expiresAt: now + m.ttlMs } : {}) };
    q.push(e);
    this.counts.enqueued++;
    return new Promise((resolve) =>
      setImmediate(() => {
        for (const l of this.listeners) l(agent);
        resolve({ ok: true, id: e.id });
      }),
    );
  }

  get(agent: string, id: string): MessageView | undefined {
    const e = this.image.get(agent)?.find((x) => x.id === id);
    return e && { ...e };
  }

  list(agent: string, opts: { state?: MessageState; limit?: number } = {}): MessageView[] {
    return (this.image.get(agent) ?? []).filter((e) => opts.state === undefined || e.state === opts.state).slice(0, opts.limit ?? Infinity).map((e) => ({ ...e }));
  }

  take(agent: string, room: { messages: number; bytes: number; whole: boolean }): TakenMessage[] {
    const out: TakenMessage[] = [];
    let bytes = 0;
    const now = this.o.clock.now();
    for (const e of this.image.get(agent) ?? []) {
      if (e.state !== 'queued') continue;
      if (e.expiresAt !== undefined && now >= e.expiresAt) {
        this.finish(e, 'expired', ErrorCode.DOWNLINK_EXPIRED, 'expired before delivery');
        continue;
      }
      if (out.length >= room.messages) break;
      if (bytes + e.bytes > room.bytes && !(out.length === 0 && room.whole)) break;
      e.state = 'delivered';
      bytes += e.bytes;
      out.push({ id: e.id, target: e.target, data: e.data, queuedAt: e.queuedAt, bytes: e.bytes, ...(e.expiresAt !== undefined ? { expiresAt: e.expiresAt } : {}) });
    }
    return out;
  }

  requeue(agent: string, ids: readonly string[]): void {
    const q = this.queue(agent);
    const back = ids.map((id) => q.find((e) => e.id === id && e.state === 'delivered')).filter((e): e is Entry => e !== undefined);
    for (const e of back) {
      e.state = 'queued';
      q.splice(q.indexOf(e), 1);
    }
    // Ahead of the rest: before the first queued message.
    const at = q.findIndex((e) => e.state === 'queued');
    q.splice(at < 0 ? q.length : at, 0, ...back);
    if (back.length > 0) for (const l of this.listeners) l(agent);
  }

  settle(agent: string, results: readonly DownResult[]): Promise<{ applied: number; ignored: number }> {
    let applied = 0;
    for (const r of results) {
      const e = this.image.get(agent)?.find((x) => x.id === r.id && x.state === 'delivered');
      if (!e) {
        this.counts.ignoredResults++;
        continue;
      }
      applied++;
      if (r.ok) this.finish(e, 'acked');
      else if (r.code === ErrorCode.DOWNLINK_EXPIRED) this.finish(e, 'expired', r.code, r.reason);
      else this.finish(e, 'rejected', r.code, r.reason);
    }
    return new Promise((resolve) => setImmediate(() => resolve({ applied, ignored: results.length - applied })));
  }

  onQueued(listener: (agent: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): DownlinkStats {
    let queued = 0;
    let delivered = 0;
    for (const q of this.image.values()) for (const e of q) (e.state === 'queued' ? queued++ : e.state === 'delivered' ? delivered++ : 0);
    return { queued, delivered, ...this.counts, agents: this.image.size, syncs: 0 };
  }

  async close(): Promise<void> {}

  private finish(e: Entry, state: MessageState, code?: string, reason?: string): void {
    e.state = state;
    e.finishedAt = this.o.clock.now();
    if (code !== undefined) e.code = code;
    if (reason !== undefined) e.reason = reason;
    const k = state as 'acked' | 'rejected' | 'expired' | 'dropped';
    this.counts[k]++;
  }
}

/** The agent's answered log, kept in an image that outlives the process: a record is durable once it resolves. */
export class StandInAnsweredLog implements AnsweredLog {
  /** @param alive whether the agent process is still alive: a dead one writes nothing */
  constructor(private readonly image: Map<string, DownResult>, private readonly idsMax: number, private readonly alive: () => boolean) {}
  get(id: string): DownResult | undefined {
    return this.image.get(id);
  }
  record(result: DownResult): Promise<void> {
    return new Promise((resolve) =>
      setImmediate(() => {
        if (!this.alive()) return;
        this.image.delete(result.id);
        this.image.set(result.id, result);
        while (this.image.size > this.idsMax) this.image.delete(this.image.keys().next().value!);
        resolve();
      }),
    );
  }
  get size(): number {
    return this.image.size;
  }
  async close(): Promise<void> {}
}
