/**
 * The guarantees, checked against the simulated world (docs/guarantees.md says them in words):
 * - exactly once at the file handler: no packet appears twice in its output;
 * - order per target: in the file handler's output, and in the calls the downstream sees;
 * - no seq handed out twice (Oracle.resolved checks it as appends resolve);
 * - the gateway's queues stay within the credit it granted;
 * - no resolved append is lost, unless a documented policy dropped it and counted it (at the
 *   end, once everything drained); a wiped store's packets are excused, damage only where bits flipped.
 * Each check throws a Violation naming what it saw. The hostile agent (hostile-agent.ts) is owed
 * nothing: its output lines and handler calls are left out (its sessions are held to their credit
 * like any), so what is checked is that the honest agents' guarantees hold whatever it does.
 */
import type { SimDisk } from './sim-disk.js';
import { Violation, type Delivery, type Oracle } from './oracle.js';

/** The agent ID of the hostile agent (fault `hostile-agent`); the guarantees are the honest agents'. */
export const hostileAgentId = 'evil';

/** One file handler's output: the file and its rotated siblings (NAME.N is older than NAME.1, then NAME). */
export interface FileOutput {
  path: string;
}

export interface OutputLine extends Delivery {
  n: number;
  file: string;
}

function idNumber(id: string): number {
  return Number(id.slice(id.lastIndexOf('-') + 1));
}

/** Whole lines of the file handler outputs in write order, from one view of the gateway's disk. */
export function readOutputs(disk: SimDisk, outputs: FileOutput[], view: 'current' | 'durable'): OutputLine[] {
  const lines: OutputLine[] = [];
  for (const out of outputs) {
    const dir = out.path.slice(0, out.path.lastIndexOf('/'));
    const name = out.path.slice(out.path.lastIndexOf('/') + 1);
    const rotated = (disk.list(dir, view) ?? [])
      .filter((f) => f.startsWith(`${name}.`) && /^\d+$/.test(f.slice(name.length + 1)))
      .map((f) => Number(f.slice(name.length + 1)))
      .sort((a, b) => b - a);
    for (const file of [...rotated.map((k) => `${out.path}.${k}`), out.path]) {
      const buf = view === 'current' ? disk.readCurrent(file) : disk.readDurable(file);
      if (!buf) continue;
      const text = buf.toString('utf8');
      const end = text.lastIndexOf('\n');
      for (const line of text.slice(0, end + 1).split('\n')) {
        if (line === '') continue;
        try {
          const v = JSON.parse(line) as { agent: string; seq: number; target: string; data: { id: string } };
          lines.push({ id: v.data.id, agent: v.agent, seq: v.seq, target: v.target, n: idNumber(v.data.id), file });
        } catch {
          /* a torn line (a power cut's leftover, cut by the handler's recovery) */
        }
      }
    }
  }
  return lines;
}

/** The current size of the file handler outputs and their rotated siblings: it changes whenever a line is written or cut. */
export function outputBytes(disk: SimDisk, outputs: FileOutput[]): number {
  let sum = 0;
  for (const out of outputs) {
    const dir = out.path.slice(0, out.path.lastIndexOf('/'));
    const name = out.path.slice(out.path.lastIndexOf('/') + 1);
    sum += disk.sizeOfFiles(dir, (f) => f === name || f.startsWith(`${name}.`));
  }
  return sum;
}

/** Every byte of the file handler outputs (current view), to tell a damaged line from a missing one. */
export function rawOutputs(disk: SimDisk, outputs: FileOutput[]): string {
  const parts: string[] = [];
  for (const out of outputs) {
    const dir = out.path.slice(0, out.path.lastIndexOf('/'));
    const name = out.path.slice(out.path.lastIndexOf('/') + 1);
    for (const f of disk.list(dir) ?? []) if (f === name || f.startsWith(`${name}.`)) parts.push(disk.readCurrent(`${dir}/${f}`)?.toString('utf8') ?? '');
  }
  return parts.join('\n');
}

/**
 * Exactly once, and in order per (agent, target), in the file handler's output. `survivedCutUnacked`
 * (by packet id) lets an order breach say that the later line is a power cut's leftover, never
 * acknowledged before the cut, that the handler's recovery kept (seed 90023).
 */
export function checkFileOutput(lines: OutputLine[], view: string, survivedCutUnacked: (id: string) => boolean = () => false): void {
  const seen = new Map<string, OutputLine>();
  const lastN = new Map<string, OutputLine>();
  for (const l of lines) {
    if (l.agent === hostileAgentId) continue;
    const dup = seen.get(l.id);
    if (dup) throw new Violation('exactly-once', `${l.id} (agent ${l.agent} seq ${l.seq} target ${l.target}) is in the file handler's output twice (${view} view: ${dup.file} and ${l.file})`);
    seen.set(l.id, l);
    const key = `${l.agent} ${l.target}`;
    const before = lastN.get(key);
    if (before && before.n > l.n) {
      throw new Violation('order', `target ${l.target} of agent ${l.agent}: ${l.id} (seq ${l.seq}) was written after ${before.id} (seq ${before.seq}), which was appended later${survivedCutUnacked(before.id) ? ' and survived a power cut of the gateway unacknowledged' : ''} (${view} view)`);
    }
    lastN.set(key, l);
  }
}

/**
 * Order of the calls a downstream handler sees, per (agent, target). A call of packet n while an
 * earlier packet f < n of that target has failed and not been handed over again is suspect; it
 * breaks the order once f is delivered after all (f dropped by a documented policy is no breach).
 * Pipelining (inflightMax > 1) is allowed to deliver later packets while an earlier one is still
 * in the handler; what is not allowed is to hand over a later one after the earlier one failed.
 */
export class CallOrder {
  /** key → packets whose last call failed (or died with its gateway) and that were not called again */
  private readonly failed = new Map<string, Set<number>>();
  /** key → failed packet → the later packets called while it waited */
  private readonly overtaken = new Map<string, Map<number, number[]>>();
  private readonly delivered = new Set<string>();
  private readonly inflight = new Map<string, number>();
  private stopped = false;

  /** @param checkInflight whether to check the handler's inflightMax per (agent, target) (checker 'handler-inflight') */
  constructor(private readonly inflightMaxOf: (target: string) => number, private readonly checkInflight = true) {}

  /** The run is over: what happens while the world is torn down is not checked. */
  stop(): void {
    this.stopped = true;
  }

  call(agent: string, target: string, n: number): void {
    if (this.stopped || agent === hostileAgentId) return;
    const key = `${agent} ${target}`;
    const failed = this.failed.get(key);
    if (failed) {
      for (const f of failed) {
        if (f >= n) continue;
        let m = this.overtaken.get(key);
        if (!m) this.overtaken.set(key, (m = new Map()));
        m.set(f, [...(m.get(f) ?? []), n]);
      }
      failed.delete(n);
    }
    const inflight = (this.inflight.get(key) ?? 0) + 1;
    this.inflight.set(key, inflight);
    const max = this.inflightMaxOf(target);
    if (this.checkInflight && inflight > max) throw new Violation('handler-inflight', `target ${target} of agent ${agent}: ${inflight} packets in the handler at once (its inflightMax is ${max}); the latest is ${agent}-${n}`);
  }

  /** The call's outcome: delivered, failed, or lost with a dead gateway (`applied` says whether the downstream applied it). */
  settled(agent: string, target: string, n: number, outcome: 'ok' | 'failed' | 'lost'): void {
    if (this.stopped || agent === hostileAgentId) return;
    const key = `${agent} ${target}`;
    this.inflight.set(key, (this.inflight.get(key) ?? 1) - 1);
    if (outcome !== 'ok') {
      if (this.delivered.has(`${key} ${n}`)) return;
      let failed = this.failed.get(key);
      if (!failed) this.failed.set(key, (failed = new Set()));
      failed.add(n);
      return;
    }
    this.delivered.add(`${key} ${n}`);
    this.failed.get(key)?.delete(n);
    const later = this.overtaken.get(key)?.get(n);
    if (later && later.length > 0) {
      throw new Violation('order', `target ${target} of agent ${agent}: ${agent}-${n} failed, then ${later.map((x) => `${agent}-${x}`).join(', ')} (appended later) went to the handler before ${agent}-${n} was handed over again; the handler's calls are out of order`);
    }
    this.overtaken.get(key)?.delete(n);
  }
}

/** Sessions hold no more packets than the credit they grant. */
export function checkCredit(sessions: Iterable<{ agent: string | null; queued: number }>, queuePacketsMax: number): void {
  for (const s of sessions) {
    if (s.queued > queuePacketsMax) throw new Violation('credit', `the session of ${s.agent} holds ${s.queued} packets; it grants at most ${queuePacketsMax}`);
  }
}

/**
 * No resolved append lost: each one is in a handler's output (the file handlers' durable files,
 * or the downstream's record), or its store dropped it under a documented policy and counted it.
 */
export function checkNothingLost(oracle: Oracle, durableLines: OutputLine[], currentLines: OutputLine[], rawOutput: string, bitFlipsOn: (agent: string) => boolean): void {
  const downstream = new Set(oracle.downstream.map((d) => d.id));
  const durable = new Set(durableLines.map((l) => l.id));
  const current = new Set(currentLines.map((l) => l.id));
  const byAgent = new Map<string, { lost: string[]; cacheOnly: string[] }>();
  for (const r of oracle.owed()) {
    if (downstream.has(r.id) || durable.has(r.id)) continue;
    let m = byAgent.get(r.agent);
    if (!m) byAgent.set(r.agent, (m = { lost: [], cacheOnly: [] }));
    (current.has(r.id) ? m.cacheOnly : m.lost).push(r.id);
  }
  const name = (id: string): string => {
    const r = oracle.appends.get(id)!;
    // A packet whose id is in the output but whose line does not parse was written in part.
    const notes = [
      rawOutput.includes(`"${id}"`) ? 'its line in the output is damaged' : '',
      oracle.fileHandlerOk.has(id) && !rawOutput.includes(`"${id}"`) ? 'the file handler answered ok for it' : '',
      r.lineage > 1 ? `appended to store ${r.lineage} (after a wipe)` : '',
    ].filter((x) => x !== '');
    return `${id} (seq ${r.seq}, target ${r.target}${notes.map((x) => `, ${x}`).join('')})`;
  };
  const list = (ids: string[]): string => `${ids.slice(0, 8).map(name).join(', ')}${ids.length > 8 ? ', …' : ''}`;
  for (const [agent, m] of byAgent) {
    // Damage counted as corrupt is excused only where the disk damaged data (bit flips): a torn
    // tail of a resolved append, or a record cut short by ferry's own write, is a loss.
    const corrupt = oracle.corrupt.get(agent) ?? 0;
    const counted = (oracle.drops.get(agent) ?? 0) + (oracle.deadLetters.get(agent) ?? 0) + (bitFlipsOn(agent) ? corrupt : 0);
    if (m.lost.length > counted) {
      const why = corrupt > 0 && !bitFlipsOn(agent) ? ` (its store counted ${corrupt} as corrupt on a disk that flipped no bit)` : '';
      throw new Violation('lost', `agent ${agent}: ${m.lost.length} resolved appends were never delivered and only ${counted} were counted as dropped${why}; missing: ${list(m.lost)}`);
    }
  }
  // Delivered, but only in the page cache: a power cut of the gateway host now would lose them.
  for (const [agent, m] of byAgent) {
    if (m.cacheOnly.length > 0) throw new Violation('durable', `agent ${agent}: ${m.cacheOnly.length} acked packets are in the file handler's output only in the page cache (not durable): ${list(m.cacheOnly)}`);
  }
}
