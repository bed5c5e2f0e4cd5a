/**
 * A small in-memory DownlinkQueues (gateway/downlink/queue.ts) for tests of what sits in front of
 * the queue (the API, the MQTT subscription): order, bounds with reject, get/list, and hooks to
 * hold an enqueue or make it fail. Not durable; the real one is gateway/downlink/store.ts.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode } from '../../protocol/errors.js';
import type { DownResult } from '../../protocol/frames.js';
import { packetCreditBytes } from '../../protocol/packet.js';
import type { DownlinkQueues, DownlinkStats, EnqueueResult, MessageState, MessageView, NewMessage, TakenMessage } from '../../gateway/downlink/queue.js';

export class MemoryDownlink implements DownlinkQueues {
  readonly messages = new Map<string, MessageView[]>();
  private readonly listeners = new Set<(agent: string) => void>();
  private readonly tally = { enqueued: 0, acked: 0, rejected: 0, expired: 0, dropped: 0, ignoredResults: 0 };
  /** set: the next enqueues reject with this error (a write failure) */
  failWith: Error | undefined;
  /** set: enqueues wait for this before they resolve */
  gate: Promise<void> | undefined;
  closed = false;

  constructor(private readonly limits: { queueMessagesMax: number; queueBytesMax: number } = { queueMessagesMax: 1000, queueBytesMax: 1 << 22 }, private readonly now: () => number = Date.now) {}

  async enqueue(agent: string, m: NewMessage): Promise<EnqueueResult> {
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    const q = this.messages.get(agent) ?? [];
    const live = q.filter((x) => x.state === 'queued' || x.state === 'delivered');
    const bytes = live.reduce((n, x) => n + packetCreditBytes(x), 0);
    if (live.length >= this.limits.queueMessagesMax || bytes + packetCreditBytes(m) > this.limits.queueBytesMax) {
      return { ok: false, code: ErrorCode.QUEUE_FULL, message: `the queue of agent ${agent} is full` };
    }
    const id = randomBytes(12).toString('base64url');
    const queuedAt = this.now();
    q.push({ id, agent, target: m.target, data: m.data, state: 'queued', queuedAt, ...(m.ttlMs !== undefined ? { expiresAt: queuedAt + m.ttlMs } : {}), ...(m.from !== undefined ? { from: m.from } : {}) });
    this.messages.set(agent, q);
    this.tally.enqueued++;
    for (const l of this.listeners) l(agent);
    return { ok: true, id };
  }

  get(agent: string, id: string): MessageView | undefined {
    const m = this.messages.get(agent)?.find((x) => x.id === id);
    return m && { ...m };
  }

  list(agent: string, opts: { state?: MessageState; limit?: number } = {}): MessageView[] {
    const all = (this.messages.get(agent) ?? []).filter((x) => opts.state === undefined || x.state === opts.state);
    return all.slice(0, opts.limit ?? all.length).map((x) => ({ ...x }));
  }

  take(agent: string, room: { messages: number; bytes: number; whole: boolean }): TakenMessage[] {
    const out: TakenMessage[] = [];
    let bytes = 0;
    for (const m of this.messages.get(agent) ?? []) {
      if (m.state !== 'queued') continue;
      const b = packetCreditBytes(m);
      if (out.length >= room.messages || (bytes + b > room.bytes && !(out.length === 0 && room.whole))) break;
      m.state = 'delivered';
      out.push({ id: m.id, target: m.target, data: m.data, queuedAt: m.queuedAt, ...(m.expiresAt !== undefined ? { expiresAt: m.expiresAt } : {}), bytes: b });
      bytes += b;
    }
    return out;
  }

  /** Memory only: nothing to wait for. */
  sentRecorded(): Promise<void> {
    return Promise.resolve();
  }

  requeue(agent: string, ids: readonly string[]): void {
    for (const m of this.messages.get(agent) ?? []) if (ids.includes(m.id) && m.state === 'delivered') m.state = 'queued';
  }

  async settle(agent: string, results: readonly DownResult[]): Promise<{ applied: number; ignored: number }> {
    let applied = 0;
    for (const r of results) {
      const m = this.messages.get(agent)?.find((x) => x.id === r.id && x.state === 'delivered');
      if (!m) continue;
      applied++;
      if (r.ok) {
        m.state = 'acked';
        this.tally.acked++;
      } else {
        m.state = 'rejected';
        m.code = r.code;
        m.reason = r.reason;
        this.tally.rejected++;
      }
      m.finishedAt = this.now();
    }
    this.tally.ignoredResults += results.length - applied;
    return { applied, ignored: results.length - applied };
  }

  onQueued(listener: (agent: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): DownlinkStats {
    const all = [...this.messages.values()].flat();
    return {
      ...this.tally, queued: all.filter((m) => m.state === 'queued').length, delivered: all.filter((m) => m.state === 'delivered').length,
      agents: this.messages.size, syncs: 0,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
