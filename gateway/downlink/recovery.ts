/**
 * The downlink queues' state to and from the file's records (records.ts): `applyRecord` rebuilds
 * it record by record at open, `snapshotRecords` captures it for a compaction. A snapshot holds the
 * live messages of each agent (as `q`, in queue order: delivered ones are queued again after a
 * restart) and its history (as `h`, oldest first), but only what is durable: a message whose
 * enqueue is still being written is left to its own record.
 */
import { packetCreditBytes } from '../../protocol/packet.js';
import type { AgentQueue, Msg } from './agent-queue.js';
import { isFinalState } from './queue.js';
import type { QueuedRecord, QueueRecord } from './records.js';

export function queuedRecord(m: Msg): QueuedRecord {
  return {
    k: 'q', a: m.agent, i: m.id, n: m.n, t: m.target, d: m.data, at: m.queuedAt, ...(m.expiresAt !== undefined ? { x: m.expiresAt } : {}), ...(m.from !== undefined ? { f: m.from } : {}),
    ...(m.sent ? { o: true as const } : {}),
  };
}

/** Applies one record read at open; repeats and records about messages no longer live are ignored (records.ts). */
export function applyRecord(agents: Map<string, AgentQueue>, r: QueueRecord, newQueue: (agent: string) => AgentQueue): void {
  let q = agents.get(r.a);
  if (r.k === 'o') {
    const m = q?.byId.get(r.i);
    if (m) m.sent = true;
    return;
  }
  if (r.k === 'e') {
    const m = q?.byId.get(r.i);
    if (q && m && (m.state === 'queued' || m.state === 'delivered')) q.finish(m, r.s, r.at, r.c, r.r, true);
    return;
  }
  if (!q) agents.set(r.a, (q = newQueue(r.a)));
  if (q.byId.has(r.i)) return;
  const m: Msg = {
    id: r.i, agent: r.a, n: r.n, target: r.t, data: r.d, bytes: packetCreditBytes({ target: r.t, data: r.d }), queuedAt: r.at,
    ...(r.x !== undefined ? { expiresAt: r.x } : {}), ...(r.f !== undefined ? { from: r.f } : {}),
    state: 'queued', durable: true, settling: false, requeueAsked: false, ...(r.k === 'q' && r.o ? { sent: true } : {}),
  };
  if (r.k === 'q') {
    q.add(m);
    return;
  }
  m.state = r.s;
  m.finishedAt = r.e;
  if (r.c !== undefined) m.code = r.c;
  if (r.r !== undefined) m.reason = r.r;
  q.addHistory(m);
}

/** The state as records, captured synchronously (memory moves on while they are written). */
export function snapshotRecords(queues: Iterable<AgentQueue>): QueueRecord[] {
  const recs: QueueRecord[] = [];
  for (const q of queues) {
    for (const m of q.live()) recs.push(queuedRecord(m));
    for (const m of q.finals()) {
      if (!m.durable || !isFinalState(m.state)) continue;
      const { k: _k, ...fields } = queuedRecord(m);
      recs.push({ ...fields, k: 'h', s: m.state, e: m.finishedAt ?? m.queuedAt, ...(m.code !== undefined ? { c: m.code } : {}), ...(m.reason !== undefined ? { r: m.reason } : {}) });
    }
  }
  return recs;
}
