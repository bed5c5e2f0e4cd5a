/**
 * One agent's downlink messages in memory, no IO: the live ones (queued, delivered) in queue order,
 * and the history of final ones, the newest `historyMessagesMax`. gateway/downlink/store.ts decides
 * what happens and writes it; this keeps the structures consistent and bounded.
 *
 * Queue order is ascending `n`, the agent's counter. `queue` holds the queued messages in that
 * order from `head` on (a deque in an array): `take` and drop-oldest pop its front, a new message
 * goes at its end, a requeue merges delivered messages back in at the front. An entry whose
 * message left `queued` some other way (expired where it stood) stays behind as stale, skipped
 * when met and swept out once stale entries outnumber the rest. Messages whose enqueue is still
 * being written (`durable` false) are always at the end (they have the highest `n`s): `take` stops
 * at them and `get`/`list` do not show them.
 */
import type { PacketData } from '../../protocol/packet.js';
import type { MessageState } from './queue.js';
import type { FinalState } from './queue.js';

export interface Msg {
  id: string;
  agent: string;
  n: number;
  target: string;
  data: PacketData;
  /** what it counts against the bounds and the agent's window (packetCreditBytes) */
  bytes: number;
  queuedAt: number;
  expiresAt?: number;
  from?: string;
  state: MessageState;
  code?: string;
  reason?: string;
  finishedAt?: number;
  /** its `q` record is written */
  durable: boolean;
  /** a verdict for it is being written: other results for it are ignored meanwhile */
  settling: boolean;
  /** a requeue came while it was settling: queued again if the verdict could not be written */
  requeueAsked: boolean;
  /** sent to its agent at least once: only its agent's verdict ends it (records.ts `o`) */
  sent?: boolean;
}

/** Counts across agents, kept by every transition (DownlinkStats). */
export interface Tally {
  queued: number;
  delivered: number;
}

export class AgentQueue {
  /** live and history messages; live ones in the order they were added (ascending n) */
  readonly byId = new Map<string, Msg>();
  private queue: Msg[] = [];
  private head = 0;
  private stale = 0;
  private history: Msg[] = [];
  private historyHead = 0;
  /** queued + delivered (with those being written), the bounds' measure */
  liveMessages = 0;
  liveBytes = 0;
  deliveredMessages = 0;
  deliveredBytes = 0;
  nextN = 1;
  /** no queued message expires before this (a lower bound: a sweep that finds nothing is skipped until then) */
  earliestExpiry = Infinity;

  constructor(readonly agent: string, private readonly historyMax: number, private readonly tally: Tally) {}

  get historyLength(): number {
    return this.history.length - this.historyHead;
  }

  /** Nothing live, nothing kept, nothing being written: the agent can be forgotten. */
  get empty(): boolean {
    return this.byId.size === 0;
  }

  /** A message at the end of the queue (not yet durable unless `durable`). */
  add(m: Msg): void {
    if (m.n >= this.nextN) this.nextN = m.n + 1;
    this.byId.set(m.id, m);
    this.queue.push(m);
    this.liveMessages++;
    this.liveBytes += m.bytes;
    if (m.durable) this.tally.queued++;
    if (m.expiresAt !== undefined && m.expiresAt < this.earliestExpiry) this.earliestExpiry = m.expiresAt;
  }

  /** Its `q` record is written. */
  confirm(m: Msg): void {
    m.durable = true;
    if (m.state === 'queued') this.tally.queued++;
  }

  /** Its `q` record could not be written: it was never queued (gone from the queue, or from the history if dropped meanwhile). */
  unadd(m: Msg): void {
    if (this.byId.get(m.id) !== m) return;
    this.byId.delete(m.id);
    if (m.state === 'queued') {
      this.liveMessages--;
      this.liveBytes -= m.bytes;
      this.queue = this.queue.filter((q, i) => i >= this.head && q !== m && q.state === 'queued');
      this.head = 0;
      this.stale = 0;
    } else {
      this.history = this.history.filter((h, i) => i >= this.historyHead && h !== m);
      this.historyHead = 0;
    }
  }

  /** A final message from the file (snapshot record): straight into the history. */
  addHistory(m: Msg): void {
    if (m.n >= this.nextN) this.nextN = m.n + 1;
    this.byId.set(m.id, m);
    this.pushHistory(m);
  }

  /** The first queued message, durable or not; undefined if none. Stale entries met are dropped. */
  front(): Msg | undefined {
    while (this.head < this.queue.length) {
      const m = this.queue[this.head]!;
      if (m.state === 'queued') return m;
      this.queue[this.head++] = undefined as unknown as Msg;
      this.stale--;
    }
    return undefined;
  }

  /** The queued messages (durable or not), in queue order; a copy, safe to finish them while going through it. */
  queuedInOrder(): Msg[] {
    const out: Msg[] = [];
    for (let i = this.head; i < this.queue.length; i++) if (this.queue[i]!.state === 'queued') out.push(this.queue[i]!);
    return out;
  }

  /** Removes the front message (which `front` returned) from the queue. */
  popFront(): void {
    this.queue[this.head++] = undefined as unknown as Msg;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** The front message, popped, is handed to a session. */
  deliver(m: Msg): void {
    this.popFront();
    m.state = 'delivered';
    this.deliveredMessages++;
    this.deliveredBytes += m.bytes;
    this.tally.queued--;
    this.tally.delivered++;
  }

  /** Delivered messages go back into the queue, each at its place by `n` (in front of everything queued after them). */
  requeue(ms: Msg[]): void {
    if (ms.length === 0) return;
    ms.sort((a, b) => a.n - b.n);
    for (const m of ms) {
      m.state = 'queued';
      this.deliveredMessages--;
      this.deliveredBytes -= m.bytes;
      this.tally.delivered--;
      this.tally.queued++;
      if (m.expiresAt !== undefined && m.expiresAt < this.earliestExpiry) this.earliestExpiry = m.expiresAt;
    }
    const last = ms[ms.length - 1]!.n;
    // The queued messages that come before the last requeued one are merged with them.
    const before: Msg[] = [];
    for (let f = this.front(); f !== undefined && f.n < last; f = this.front()) {
      before.push(f);
      this.popFront();
    }
    const merged: Msg[] = [];
    for (let i = 0, j = 0; i < ms.length || j < before.length; ) {
      if (j >= before.length || (i < ms.length && ms[i]!.n < before[j]!.n)) merged.push(ms[i++]!);
      else merged.push(before[j++]!);
    }
    if (this.head >= merged.length) {
      this.head -= merged.length;
      for (let i = 0; i < merged.length; i++) this.queue[this.head + i] = merged[i]!;
    } else {
      this.queue = merged.concat(this.queue.slice(this.head));
      this.head = 0;
    }
  }

  /**
   * A live message reaches a final state. A queued one that is not at the front (expired where it
   * stood) leaves a stale entry; the caller pops the front first when it finishes the front one.
   */
  finish(m: Msg, state: FinalState, at: number, code?: string, reason?: string, inQueue = false): void {
    if (m.state === 'delivered') {
      this.deliveredMessages--;
      this.deliveredBytes -= m.bytes;
      this.tally.delivered--;
    } else if (m.durable) {
      this.tally.queued--;
    }
    if (m.state === 'queued' && inQueue) this.stale++;
    this.liveMessages--;
    this.liveBytes -= m.bytes;
    m.state = state;
    m.finishedAt = at;
    if (code !== undefined) m.code = code;
    if (reason !== undefined) m.reason = reason;
    this.pushHistory(m);
    if (this.stale > 64 && this.stale * 2 > this.queue.length - this.head) this.sweep(() => false);
  }

  /**
   * Rebuilds the queue without stale entries, finishing through `expire` the durable queued messages
   * it says are past their expiry (it returns true for those and records them); recomputes
   * `earliestExpiry`.
   */
  sweep(expire: (m: Msg) => boolean): void {
    const kept: Msg[] = [];
    let earliest = Infinity;
    const old = this.queue;
    const from = this.head;
    this.queue = [];
    this.head = 0;
    this.stale = 0;
    for (let i = from; i < old.length; i++) {
      const m = old[i]!;
      if (m.state !== 'queued') continue;
      if (m.durable && expire(m)) continue;
      kept.push(m);
      if (m.expiresAt !== undefined && m.expiresAt < earliest) earliest = m.expiresAt;
    }
    // `expire` finished some (counted as stale in the emptied queue): start clean.
    this.queue = kept;
    this.stale = 0;
    this.earliestExpiry = earliest;
  }

  /** Live messages (durable), in queue order. */
  *live(): Generator<Msg> {
    for (const m of this.byId.values()) if (m.durable && (m.state === 'queued' || m.state === 'delivered')) yield m;
  }

  /** Final messages kept, oldest first. */
  *finals(): Generator<Msg> {
    for (let i = this.historyHead; i < this.history.length; i++) yield this.history[i]!;
  }

  /** After reading the file: the queue sorted by n, and live ones first in `byId` in that order. */
  afterRecovery(): void {
    const live = [...this.queue.slice(this.head)].filter((m) => m.state === 'queued').sort((a, b) => a.n - b.n);
    this.queue = live;
    this.head = 0;
    this.stale = 0;
    const finals = [...this.finals()];
    this.byId.clear();
    for (const m of live) this.byId.set(m.id, m);
    for (const m of finals) this.byId.set(m.id, m);
  }

  private pushHistory(m: Msg): void {
    this.history.push(m);
    while (this.historyLength > this.historyMax) {
      const old = this.history[this.historyHead]!;
      this.history[this.historyHead++] = undefined as unknown as Msg;
      if (this.byId.get(old.id) === old) this.byId.delete(old.id);
    }
    if (this.historyHead > 1024 && this.historyHead * 2 > this.history.length) {
      this.history = this.history.slice(this.historyHead);
      this.historyHead = 0;
    }
  }
}
