/**
 * The downlink's oracle and its checkers (issue 12), in one place. The simulated application
 * (downlink-app.ts) tells it every message it queued and how `enqueue` answered; the gateway host
 * tells it what the gateway took off a queue for a DOWN frame; each device tells it what arrived
 * in DOWN frames, what its consumer was handed and answered, when a verdict became durable in the
 * answered log, and what went back in DOWN_ACKs. From that it checks, as things happen:
 * - duplicate: no message handed to a consumer twice, across agent restarts and power cuts, but
 *   for the one repeat the agent's design allows (see `died`);
 * - order: per agent, consumers are handed messages in queue order (a repeat is left to the
 *   duplicate checker);
 * - expired: the gateway never takes an expired message, sends the time it has left as ttlMs, the
 *   agent counts it from the frame's arrival, and no consumer is handed a message at or past that
 *   deadline: so, on the one clock of the simulation, a message reaches its consumer after the
 *   gateway's expiresAt by less than the DOWN frame took from the take to the agent;
 * - authority: an agent receives only messages taken for it;
 * and, once everything drained (`checkSettled`):
 * - lost: every message whose enqueue resolved is in a final state at the gateway (acked,
 *   rejected, expired, dropped, the last three with a code); acked only if its agent answered ok
 *   after its consumer took it; rejected only with the code its agent answered;
 * - authority: no message settled by what the hostile agent sent (it names other agents' ids).
 * Messages are named by their data (`{ m: 'a1.7', n: 7 }`: the application's 7th message for a1),
 * so a message whose enqueue never answered (the gateway died) is still followed.
 */
import type { MessageView } from '../../gateway/downlink/queue.js';
import type { DownlinkMessage, Verdict } from '../../agent/downlink/consumer.js';
import type { DownMessage, DownResult } from '../../protocol/frames.js';
import { hostileAgentId } from './checkers.js';
import { Violation } from './oracle.js';
import type { Rng } from './rng.js';

export interface DownRecord {
  /** `agent.n` */
  name: string;
  agent: string;
  /** the application's count of messages for this agent: queue order */
  n: number;
  /** pending: enqueue has not answered; queued: it resolved with an id (owed); refused: it answered no, or failed */
  state: 'pending' | 'queued' | 'refused';
  id?: string;
  expiresAt?: number;
  code?: string;
  /** queued in the liveness phase to prove the downlink works again */
  probe: boolean;
}

/** What a message's data says (the application wrote it). */
export interface DownData {
  m: string;
  n: number;
  pad?: string;
}

interface Take {
  agent: string;
  at: number;
  expiresAt: number | undefined;
}

export class DownOracle {
  readonly records = new Map<string, DownRecord>();
  readonly byId = new Map<string, DownRecord>();
  private readonly counters = new Map<string, number>();
  /** id → every take of it off a queue, for a DOWN frame */
  private readonly takes = new Map<string, Take[]>();
  /** `agent id` → its latest arrival in a DOWN frame */
  private readonly arrivals = new Map<string, { at: number; ttlMs: number | undefined }>();
  /** id → when its consumer was handed it */
  readonly handed = new Map<string, number[]>();
  /** id → its consumer's verdicts */
  readonly verdicts = new Map<string, Verdict[]>();
  /** id → what its agent answered in DOWN_ACKs */
  readonly answered = new Map<string, DownResult[]>();
  /** agent → the queue index and name of the latest message first handed to its consumer */
  private readonly lastHanded = new Map<string, { n: number; name: string }>();
  /** agent → ids with its consumer whose verdict is not durable yet (the one window a crash repeats) */
  private readonly withConsumer = new Map<string, Set<string>>();
  /** id → why one more handing of it is excused */
  private readonly repeatAllowed = new Map<string, string>();
  /** the latest ids taken for honest agents (what the hostile agent answers for) */
  private readonly latestTaken: string[] = [];
  /** ids the hostile agent named in its DOWN_ACKs */
  readonly forged = new Set<string>();
  /** @param skip checkers left out (only 'down-state' can be: RunOptions.skipCheckers) */
  constructor(private readonly skip: ReadonlySet<string> = new Set()) {}

  readonly counts = { enqueued: 0, refused: 0, handed: 0, repeatsExcused: 0, verdictsUnrecorded: 0, lateMsMax: 0, forgedResults: 0 };

  /** The application is about to queue a message for `agent`: the record it fills in. */
  enqueue(agent: string, probe = false): DownRecord {
    const n = (this.counters.get(agent) ?? 0) + 1;
    this.counters.set(agent, n);
    const rec: DownRecord = { name: `${agent}.${n}`, agent, n, state: 'pending', probe };
    this.records.set(rec.name, rec);
    return rec;
  }

  enqueued(rec: DownRecord, id: string, expiresAt: number | undefined): void {
    if (this.byId.has(id)) throw new Violation('down-id', `the gateway gave id ${id} to ${rec.name} and, before, to ${this.byId.get(id)!.name}`);
    rec.state = 'queued';
    rec.id = id;
    if (expiresAt !== undefined) rec.expiresAt = expiresAt;
    this.byId.set(id, rec);
    this.counts.enqueued++;
  }

  refused(rec: DownRecord, code: string): void {
    rec.state = 'refused';
    rec.code = code;
    this.counts.refused++;
  }

  /** The gateway took `id` off `agent`'s queue for a DOWN frame at `at` (the sender sends it in the same turn). */
  taken(agent: string, id: string, at: number, expiresAt: number | undefined): void {
    const rec = this.byId.get(id);
    if (rec && rec.agent !== agent) throw new Violation('authority', `${rec.name} (${id}), queued for ${rec.agent}, was taken off the queue of ${agent}`);
    let list = this.takes.get(id);
    // Past its expiry only if sent before: then only its agent's verdict ends it (its consumer may have it), and it goes with ttlMs 0.
    if (expiresAt !== undefined && at >= expiresAt && !list?.length) throw new Violation('expired', `${rec?.name ?? id} was taken for a DOWN frame at ${at}, ${at - expiresAt} ms past its expiry, never sent before`);
    if (!list) this.takes.set(id, (list = []));
    list.push({ agent, at, expiresAt });
    if (rec && rec.agent !== hostileAgentId) {
      this.latestTaken.push(id);
      if (this.latestTaken.length > 32) this.latestTaken.shift();
    }
  }

  /** One of the latest ids taken for an honest agent, or undefined. */
  recentlyTaken(rng: Rng): string | undefined {
    return this.latestTaken.length > 0 ? rng.pick(this.latestTaken) : undefined;
  }

  /** A DOWN frame brought `m` to `agent`'s link at `at`. */
  arrived(agent: string, m: DownMessage, at: number): void {
    const name = this.nameOf(m.id, m.data);
    const takes = this.takes.get(m.id)?.filter((t) => t.agent === agent) ?? [];
    if (takes.length === 0) throw new Violation('authority', `${name} (${m.id}) reached agent ${agent}, which it was never taken for${this.byId.get(m.id) ? ` (it is ${this.byId.get(m.id)!.agent}'s)` : ''}`);
    // The sender sends the time left at the take (0 once past it), never more: the agent counts it from here.
    const expiring = takes.filter((t) => t.expiresAt !== undefined);
    if (m.ttlMs === undefined && expiring.length > 0) throw new Violation('expired', `${name} expires at ${expiring[0]!.expiresAt} but its DOWN frame carried no ttlMs`);
    if (m.ttlMs !== undefined && !takes.some((t) => t.expiresAt !== undefined && m.ttlMs === Math.max(0, t.expiresAt - t.at))) {
      throw new Violation('expired', `${name} arrived with ttlMs ${m.ttlMs}, which no take of it left (takes at ${takes.map((t) => `${t.at} expiring ${t.expiresAt}`).join(', ')})`);
    }
    this.arrivals.set(`${agent} ${m.id}`, { at, ttlMs: m.ttlMs });
  }

  /** `agent`'s consumer is handed `m` now. */
  handing(agent: string, m: DownlinkMessage, now: number): void {
    const data = m.data as unknown as DownData;
    const name = this.nameOf(m.id, m.data);
    this.counts.handed++;
    const before = this.handed.get(m.id);
    if (before) {
      const why = this.repeatAllowed.get(m.id);
      if (why === undefined) throw new Violation('down-duplicate', `${name} (${m.id}) was handed to ${agent}'s consumer again at ${now} (first at ${before.join(', ')}), with no crash between its handing and its durable verdict`);
      this.repeatAllowed.delete(m.id);
      this.counts.repeatsExcused++;
      before.push(now);
    } else {
      this.handed.set(m.id, [now]);
      // Order: a first handing comes after every earlier message of the queue that was handed.
      const last = this.lastHanded.get(agent);
      if (last && last.n > data.n) throw new Violation('down-order', `agent ${agent}'s consumer was handed ${name} (queued as its message ${data.n}) after ${last.name} (message ${last.n})`);
      this.lastHanded.set(agent, { n: data.n, name });
    }
    // Expiry, exactly as the agent counts it: from the frame's arrival, the ttlMs the gateway sent.
    const arrival = this.arrivals.get(`${agent} ${m.id}`);
    if (!arrival) throw new Violation('authority', `${name} was handed to ${agent}'s consumer without arriving in a DOWN frame for it`);
    if (arrival.ttlMs !== undefined) {
      const deadline = arrival.at + arrival.ttlMs;
      if (m.deadlineMs !== deadline) throw new Violation('expired', `${name} reached the consumer with deadline ${m.deadlineMs}; it arrived at ${arrival.at} with ttlMs ${arrival.ttlMs}`);
      if (now >= deadline) throw new Violation('expired', `${name} was handed to ${agent}'s consumer at ${now}, ${now - deadline} ms past its deadline`);
    } else if (m.deadlineMs !== undefined) throw new Violation('expired', `${name} arrived without ttlMs but reached the consumer with deadline ${m.deadlineMs}`);
    const rec = this.byId.get(m.id);
    if (rec?.expiresAt !== undefined) this.counts.lateMsMax = Math.max(this.counts.lateMsMax, now - rec.expiresAt);
    let open = this.withConsumer.get(agent);
    if (!open) this.withConsumer.set(agent, (open = new Set()));
    open.add(m.id);
  }

  verdict(id: string, v: Verdict): void {
    let list = this.verdicts.get(id);
    if (!list) this.verdicts.set(id, (list = []));
    list.push(v);
  }

  /** `agent`'s answered log made the verdict on `id` durable: the window closes. */
  recorded(agent: string, id: string): void {
    this.withConsumer.get(agent)?.delete(id);
  }

  /**
   * The answered log failed to record the verdict on `id`. The inbox tries again until it is
   * recorded (agent/downlink/inbox.ts handle), and answers nothing meanwhile: the window stays
   * open (a crash before the retry succeeds excuses a repeat, as any crash in the window).
   */
  recordFailed(agent: string, id: string): void {
    void agent;
    void id;
    this.counts.verdictsUnrecorded++;
  }

  /**
   * `agent` died (a kill or a power cut). A message with its consumer whose verdict was not durable
   * yet is in the one window the inbox has (handed, verdict not recorded): the restarted agent has
   * no record of it, the gateway sends it again, and its consumer is handed it again. Excused once
   * per crash; a repeat after the verdict was recorded is a duplicate.
   */
  died(agent: string): void {
    const open = this.withConsumer.get(agent);
    if (!open) return;
    for (const id of open) this.repeatAllowed.set(id, 'its agent crashed before the verdict was durable');
    open.clear();
  }

  /** The honest `agent` sent these results in a DOWN_ACK. */
  answers(agent: string, results: readonly DownResult[]): void {
    for (const r of results) {
      const rec = this.byId.get(r.id);
      if (rec && rec.agent !== agent) throw new Violation('authority', `agent ${agent} answered ${rec.name}, which is ${rec.agent}'s`);
      // The inbox answers ok only for what a consumer took, and a refusal as given.
      const vs = this.verdicts.get(r.id) ?? [];
      if (r.ok && !vs.some((v) => v.ok)) throw new Violation('down-answer', `agent ${agent} answered ${this.nameOf(r.id)} ok, but its consumer never took it`);
      let list = this.answered.get(r.id);
      if (!list) this.answered.set(r.id, (list = []));
      list.push(r);
    }
  }

  /** The hostile agent sent these results (naming, among others, honest agents' messages). */
  forgedResults(results: readonly DownResult[]): void {
    for (const r of results) this.forged.add(r.id);
    this.counts.forgedResults += results.length;
  }

  /** Owed messages (their enqueue resolved) not yet in a final state at the gateway, by `view`. */
  unsettled(view: (agent: string, id: string) => MessageView | undefined, agents: readonly string[]): DownRecord[] {
    const out: DownRecord[] = [];
    for (const rec of this.byId.values()) {
      if (!agents.includes(rec.agent)) continue;
      const v = view(rec.agent, rec.id!);
      if (!v || v.state === 'queued' || v.state === 'delivered') out.push(rec);
    }
    return out;
  }

  /** After the drain: every owed message of `agents` settled, and settled by what its own agent said. */
  checkSettled(view: (agent: string, id: string) => MessageView | undefined, agents: readonly string[]): void {
    for (const rec of this.byId.values()) {
      if (!agents.includes(rec.agent)) continue;
      const id = rec.id!;
      const v = view(rec.agent, id);
      const name = `${rec.name} (${id})`;
      if (!v) throw new Violation('down-lost', `${name}: its enqueue resolved, and the gateway has no record of it`);
      if (v.state === 'queued' || v.state === 'delivered') throw new Violation('down-lost', `${name} is still ${v.state} after the drain`);
      if (v.state !== 'acked' && !v.code) throw new Violation('down-lost', `${name} is ${v.state} without a code`);
      const said = this.answered.get(id) ?? [];
      const forged = this.forged.has(id) ? '; the hostile agent named it in a DOWN_ACK' : '';
      if (v.state === 'acked') {
        if (!said.some((r) => r.ok)) throw new Violation(forged ? 'authority' : 'down-lost', `${name} is acked at the gateway, but ${rec.agent} never answered it ok${forged}`);
        if (!(this.verdicts.get(id) ?? []).some((x) => x.ok)) throw new Violation('down-lost', `${name} is acked, but ${rec.agent}'s consumer never took it`);
      } else if (v.state === 'rejected') {
        if (!said.some((r) => !r.ok && r.code === v.code)) throw new Violation(forged ? 'authority' : 'down-state', `${name} is rejected with ${v.code}, which ${rec.agent} never answered${forged}`);
      } else if ((this.verdicts.get(id) ?? []).some((x) => x.ok) && !this.skip.has('down-state') && !this.repeatAllowed.has(id)) {
        // (A crash of its agent between its consumer taking it and the verdict being durable, the
        // one documented window, leaves the agent no record: sent again past its expiry it is
        // refused as expired. That case is excused, as a second handing would be.)
        // The application is told the message never reached the device, and its consumer took it.
        throw new Violation('down-state', `${name} is ${v.state} (${v.code}) at the gateway, but ${rec.agent}'s consumer took it${said.some((r) => r.ok) ? ' and the agent answered ok' : ''}`);
      }
    }
  }

  private nameOf(id: string, data?: unknown): string {
    const m = (data as DownData | undefined)?.m ?? this.byId.get(id)?.name;
    return m ?? id;
  }
}
