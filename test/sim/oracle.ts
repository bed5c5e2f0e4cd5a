/**
 * What the simulated world promised: every append a producer made, with its outcome, and every
 * packet the handlers delivered. Packets are named by an id in their data (`a1-17`: agent a1's
 * 17th append), so they can be followed whatever seq they get, also across store wipes.
 */

export type AppendState = 'pending' | 'resolved' | 'rejected';

export interface AppendRecord {
  agent: string;
  /** the agent's append counter: append order, also across restarts and wipes */
  n: number;
  id: string;
  target: string;
  /** the store lineage the append went to (a wipe starts a new one) */
  lineage: number;
  state: AppendState;
  seq?: number;
  code?: string;
  /** appended in the liveness phase to prove the store takes appends again */
  probe: boolean;
}

export interface Delivery {
  id: string;
  agent: string;
  seq: number;
  target: string;
}

/** A guarantee broken: which checker, and what it saw. */
export class Violation extends Error {
  constructor(readonly checker: string, readonly detail: string) {
    super(`${checker}: ${detail}`);
  }
}

export function packetId(agent: string, n: number): string {
  return `${agent}-${n}`;
}

export class Oracle {
  readonly appends = new Map<string, AppendRecord>();
  private readonly counters = new Map<string, number>();
  /** agent → lineage → seq → id */
  private readonly seqs = new Map<string, Map<number, Map<number, string>>>();
  /** downstream deliveries (the external system's own record), in order */
  readonly downstream: Delivery[] = [];
  /** per agent: packets its stores dropped and counted by a full policy or a ttl, summed over every store opened */
  readonly drops = new Map<string, number>();
  /** per agent: packets its stores found damaged and counted (excused only where the disk really damaged data) */
  readonly corrupt = new Map<string, number>();
  readonly deadLetters = new Map<string, number>();
  /** packets a file handler answered ok for (it says they are written) */
  readonly fileHandlerOk = new Set<string>();
  /** packets whose line was in a file handler's output after a power cut of the gateway, not answered ok before it */
  readonly survivedCutUnacked = new Set<string>();
  /** `agent lineage` of stores wiped: what they held is gone by the user's hand, not ferry's */
  private readonly wiped = new Set<string>();

  /** A producer is about to append: the record it will fill in. */
  append(agent: string, target: string, lineage: number, probe = false): AppendRecord {
    const n = (this.counters.get(agent) ?? 0) + 1;
    this.counters.set(agent, n);
    const rec: AppendRecord = { agent, n, id: packetId(agent, n), target, lineage, state: 'pending', probe };
    this.appends.set(rec.id, rec);
    return rec;
  }

  /** The append resolved with `seq`; two resolved appends of one store lineage never share a seq. */
  resolved(rec: AppendRecord, seq: number): void {
    rec.state = 'resolved';
    rec.seq = seq;
    let lineages = this.seqs.get(rec.agent);
    if (!lineages) this.seqs.set(rec.agent, (lineages = new Map()));
    let bySeq = lineages.get(rec.lineage);
    if (!bySeq) lineages.set(rec.lineage, (bySeq = new Map()));
    const earlier = bySeq.get(seq);
    if (earlier !== undefined) {
      const e = this.appends.get(earlier)!;
      throw new Violation('seq-unique', `seq ${seq} of agent ${rec.agent} was handed out twice: to ${earlier} (target ${e.target}) and to ${rec.id} (target ${rec.target})`);
    }
    bySeq.set(seq, rec.id);
  }

  rejected(rec: AppendRecord, code: string): void {
    rec.state = 'rejected';
    rec.code = code;
  }

  addDrops(agent: string, dropped: number, corrupt: number, deadLetters: number): void {
    this.drops.set(agent, (this.drops.get(agent) ?? 0) + dropped);
    this.corrupt.set(agent, (this.corrupt.get(agent) ?? 0) + corrupt);
    this.deadLetters.set(agent, (this.deadLetters.get(agent) ?? 0) + deadLetters);
  }

  /** The store of `lineage` was wiped: its undelivered packets are excused. */
  wipe(agent: string, lineage: number): void {
    this.wiped.add(`${agent} ${lineage}`);
  }

  /** Resolved appends whose delivery is owed (their store was not wiped). */
  owed(): AppendRecord[] {
    return [...this.appends.values()].filter((r) => r.state === 'resolved' && !this.wiped.has(`${r.agent} ${r.lineage}`));
  }
}
