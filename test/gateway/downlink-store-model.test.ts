/**
 * DownlinkStore (gateway/downlink/store.ts) against a simple in-memory model, over random
 * operations (bursts of enqueues, takes, requeues, verdicts good, foreign and repeated, time
 * passing, reopens) on a SimDisk that fails writes now and then and loses power or kills the
 * process at random moments. Checked after every step: each agent's list (states, in order),
 * what take returns, the stats. After every crash: each enqueue that resolved is there, each
 * verdict that resolved holds, nothing rejected is queued, the order holds; and no message is
 * ever taken twice without a requeue or a restart between. Prints its seed; SEED= replays.
 */
import t, { type Test } from 'tap';
import { silentLog } from '../../common/log.js';
import type { DownlinkQueueLimits, MessageState, MessageView } from '../../gateway/downlink/queue.js';
import { DownlinkStore } from '../../gateway/downlink/store.js';
import type { DownResult } from '../../protocol/frames.js';
import { packetCreditBytes } from '../../protocol/packet.js';
import { testSeed } from '../helpers/seed.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';
import { ManualClock } from './downlink-queue-contract.js';

type MState = MessageState | 'pending';

interface MMsg {
  /** the number in its target: enqueue call order, so queue order */
  key: number;
  agent: string;
  target: string;
  bytes: number;
  id?: string;
  state: MState;
  expiresAt?: number;
  /** the enqueue a drop was made for: the drop is durable once that one resolved */
  droppedFor?: MMsg;
  enqueueResolved?: boolean;
  /** a verdict resolved: it must hold after any crash */
  verdictResolved?: boolean;
  /** a verdict whose write was in flight at a crash */
  verdictInFlight?: boolean;
  /** its enqueue rejected: it must never be there */
  rejected?: boolean;
  /** taken at least once: never expired nor dropped at the gateway from then on */
  sent?: boolean;
}

const finalStates = new Set<MState>(['acked', 'rejected', 'expired', 'dropped']);

/** The contract's behaviour, written the obvious way: arrays scanned in full. */
class Model {
  readonly live = new Map<string, MMsg[]>();
  readonly history = new Map<string, MMsg[]>();
  counts = { enqueued: 0, acked: 0, rejected: 0, expired: 0, dropped: 0, ignoredResults: 0 };

  constructor(private readonly limits: DownlinkQueueLimits, readonly agents: string[]) {
    for (const a of agents) {
      this.live.set(a, []);
      this.history.set(a, []);
    }
  }

  finish(m: MMsg, state: 'acked' | 'rejected' | 'expired' | 'dropped'): void {
    const live = this.live.get(m.agent)!;
    live.splice(live.indexOf(m), 1);
    m.state = state;
    this.history.get(m.agent)!.push(m);
    this.counts[state]++;
  }

  expired(m: MMsg, now: number): boolean {
    return !m.sent && m.expiresAt !== undefined && now >= m.expiresAt;
  }

  enqueue(agent: string, m: MMsg, now: number): 'full' | 'ok' {
    const { queueMessagesMax, queueBytesMax, fullPolicy } = this.limits;
    const live = this.live.get(agent)!;
    const sum = (ms: MMsg[]): number => ms.reduce((s, x) => s + x.bytes, 0);
    const fits = (): boolean => live.length < queueMessagesMax && sum(live) + m.bytes <= queueBytesMax;
    if (m.bytes > queueBytesMax) return 'full';
    if (!fits()) for (const x of [...live]) if (x.state === 'queued' && this.expired(x, now)) this.finish(x, 'expired');
    if (!fits()) {
      const kept = live.filter((x) => x.state === 'delivered' || x.sent);
      if (fullPolicy !== 'drop-oldest' || kept.length >= queueMessagesMax || sum(kept) + m.bytes > queueBytesMax) return 'full';
      while (!fits()) {
        // The oldest not sent before (one sent may be with its consumer); none left: full.
        const v = live.find((x) => (x.state === 'queued' || x.state === 'pending') && !x.sent);
        if (!v) return 'full';
        v.droppedFor = m;
        this.finish(v, 'dropped');
      }
    }
    live.push(m);
    return 'ok';
  }

  resolved(m: MMsg, ok: boolean): void {
    if (ok) {
      m.enqueueResolved = true;
      this.counts.enqueued++;
      if (m.state === 'pending') m.state = 'queued';
      return;
    }
    m.rejected = true;
    if (m.state === 'pending') {
      const live = this.live.get(m.agent)!;
      live.splice(live.indexOf(m), 1);
    } else {
      const h = this.history.get(m.agent)!;
      h.splice(h.indexOf(m), 1);
      this.counts.dropped--;
    }
    m.state = 'pending';
  }

  take(agent: string, room: { messages: number; bytes: number; whole: boolean }, now: number): MMsg[] {
    const out: MMsg[] = [];
    let bytes = 0;
    for (const m of [...this.live.get(agent)!]) {
      if (out.length >= room.messages || m.state === 'pending') break;
      if (m.state !== 'queued') continue;
      if (this.expired(m, now)) {
        this.finish(m, 'expired');
        continue;
      }
      if (bytes + m.bytes > room.bytes && !(out.length === 0 && room.whole)) break;
      m.state = 'delivered';
      m.sent = true;
      bytes += m.bytes;
      out.push(m);
    }
    return out;
  }

  /** What list shows: queued past expiry is expired first; then live in order, then history. */
  list(agent: string, now: number): MMsg[] {
    for (const m of [...this.live.get(agent)!]) if (m.state === 'queued' && this.expired(m, now)) this.finish(m, 'expired');
    return [...this.live.get(agent)!.filter((m) => m.state !== 'pending'), ...this.history.get(agent)!];
  }

  byId(agent: string, id: string): MMsg | undefined {
    return this.live.get(agent)!.find((m) => m.id === id);
  }
}

const show = (ms: { target: string; state: string }[]): string[] => ms.map((m) => `${m.target}:${m.state}`);

t.test('downlink-store - model test: random operations, write faults, kills and power cuts', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = new Rng(seed);
  const runs = Number(process.env.MODEL_RUNS ?? 6);
  let crashes = 0;
  let checks = 0;
  for (let run = 0; run < runs && !t.counts.fail; run++) {
    const r = rng.fork(`run${run}`);
    const limits: DownlinkQueueLimits = {
      queueMessagesMax: r.int(2, 12), queueBytesMax: r.int(60, 400), fullPolicy: r.pick(['reject', 'drop-oldest'] as const), historyMessagesMax: 100_000,
    };
    const result = await oneRun(t, r, limits, seed, run);
    crashes += result.crashes;
    checks += result.checks;
  }
  t.ok(crashes > 0, `crashes happened (${crashes}), ${checks} steps checked (SEED=${seed})`);
});

async function oneRun(t: Test, rng: Rng, limits: DownlinkQueueLimits, seed: number, run: number): Promise<{ crashes: number; checks: number }> {
  const where = (step: number): string => `(SEED=${seed} run ${run} step ${step})`;
  const disk = new SimDisk({ rng: rng.fork('disk').fn });
  const clock = new ManualClock();
  const agents = ['a', 'b', 'c'];
  const compactBytes = rng.pick([400, 2000, 1_000_000]);
  const open = (): Promise<DownlinkStore> => DownlinkStore.open({
    dir: '/gw/downlink', files: disk.process('gw'), clock, log: silentLog, limits, compactBytes, compactGrowthRatio: rng.pick([0, 0.5, 1]),
  });
  let store = await open();
  let model = new Model(limits, agents);
  let cut = false;
  let crashes = 0;
  let checks = 0;
  let next = 0;
  /** taken since the last requeue of it or restart: taking it again is a bug */
  const outstanding = new Set<string>();
  const all: MMsg[] = [];
  /** waits for `p` unless the crash comes first (a dead process's IO never settles) */
  const race = async <T>(p: Promise<T>): Promise<{ done: true; value?: T; err?: unknown } | { done: false }> => {
    let settled: { done: true; value?: T; err?: unknown } | undefined;
    p.then((value) => (settled = { done: true, value }), (err: unknown) => (settled = { done: true, err }));
    while (!settled && !cut) await new Promise((res) => setImmediate(res));
    return settled ?? { done: false };
  };

  for (let step = 0; step < 250 && !t.counts.fail; step++) {
    if (!cut && rng.chance(0.06)) {
      const how = rng.chance(0.5) ? 'power' : 'kill';
      disk.crashBeforeStep(rng.int(1, 30), () => {
        cut = true;
        if (how === 'power') disk.powerCut();
        else disk.kill('gw');
      });
    }
    disk.faults.writeEioP = rng.chance(0.1) ? 0.5 : 0;
    disk.faults.shortWriteP = rng.chance(0.2) ? 0.5 : 0;
    const op = rng.next();
    const now = clock.now();
    if (op < 0.35) {
      // A burst of enqueues: one group commit, or a few.
      const burst = rng.int(1, 4);
      const waits: Promise<unknown>[] = [];
      for (let i = 0; i < burst; i++) {
        const agent = rng.pick(agents);
        const key = next++;
        const data = 'd'.repeat(rng.int(0, 40));
        const ttlMs = rng.chance(0.3) ? rng.int(1, 50) : undefined;
        const m: MMsg = { key, agent, target: `m${key}`, bytes: packetCreditBytes({ target: `m${key}`, data }), state: 'pending', ...(ttlMs !== undefined ? { expiresAt: now + ttlMs } : {}) };
        all.push(m);
        const p = store.enqueue(agent, { target: m.target, data, ...(ttlMs !== undefined ? { ttlMs } : {}) });
        const expect = model.enqueue(agent, m, now);
        waits.push(race(p).then((o) => {
          if (!o.done) return;
          if (o.err !== undefined) return model.resolved(m, false);
          const res = o.value!;
          if (expect === 'full') {
            if (res.ok || res.code !== 'QUEUE_FULL') t.fail(`${m.target}: the model says full, the store says ${JSON.stringify(res)} ${where(step)}`);
            return;
          }
          if (!res.ok) return t.fail(`${m.target}: the store refused ${JSON.stringify(res)}, the model had room ${where(step)}`);
          m.id = res.id;
          model.resolved(m, true);
        }));
      }
      await Promise.all(waits);
    } else if (op < 0.55) {
      const agent = rng.pick(agents);
      const room = { messages: rng.int(0, 5), bytes: rng.int(0, 120), whole: rng.chance(0.5) };
      const got = store.take(agent, room);
      const want = model.take(agent, room, now);
      if (show(got.map((g) => ({ target: g.target, state: 'taken' }))).join() !== show(want.map((w) => ({ target: w.target, state: 'taken' }))).join()) {
        t.fail(`take: store ${got.map((g) => g.target)} model ${want.map((w) => w.target)} ${where(step)}`);
      }
      for (const g of got) {
        if (outstanding.has(g.id)) t.fail(`${g.target} taken twice without a requeue or restart ${where(step)}`);
        outstanding.add(g.id);
      }
    } else if (op < 0.65) {
      const agent = rng.pick(agents);
      const delivered = model.live.get(agent)!.filter((m) => m.state === 'delivered');
      const ids = delivered.filter(() => rng.chance(0.6)).map((m) => m.id!);
      if (rng.chance(0.2)) ids.push('unknown-id');
      store.requeue(agent, ids);
      for (const id of ids) {
        const m = model.byId(agent, id);
        if (m?.state === 'delivered') m.state = 'queued';
        outstanding.delete(id);
      }
    } else if (op < 0.85) {
      const agent = rng.pick(agents);
      const delivered = model.live.get(agent)!.filter((m) => m.state === 'delivered');
      const results: DownResult[] = delivered.filter(() => rng.chance(0.7)).map((m) => (rng.chance(0.7) ? { id: m.id!, ok: true } : { id: m.id!, ok: false, code: rng.pick(['DOWNLINK_NO_ROUTE', 'DOWNLINK_EXPIRED']), reason: 'r' }));
      // Results a session must not be able to apply: another agent's, an unknown one, a repeat.
      const foreign = all.find((m) => m.agent !== agent && m.id !== undefined);
      if (foreign && rng.chance(0.3)) results.push({ id: foreign.id!, ok: true });
      if (results.length > 0 && rng.chance(0.2)) results.push(results[0]!);
      if (rng.chance(0.1)) results.push({ id: 'not-a-message', ok: true });
      const applies = new Set<MMsg>();
      const verdicts: [MMsg, 'acked' | 'rejected' | 'expired'][] = [];
      for (const res of results) {
        const m = model.byId(agent, res.id);
        if (!m || m.state !== 'delivered' || applies.has(m)) continue;
        applies.add(m);
        verdicts.push([m, res.ok ? 'acked' : res.code === 'DOWNLINK_EXPIRED' ? 'expired' : 'rejected']);
      }
      for (const [m] of verdicts) m.verdictInFlight = true;
      const o = await race(store.settle(agent, results));
      if (o.done) {
        for (const [m] of verdicts) m.verdictInFlight = false;
        if (o.err === undefined) {
          const want = { applied: verdicts.length, ignored: results.length - verdicts.length };
          if (JSON.stringify(o.value) !== JSON.stringify(want)) t.fail(`settle: store ${JSON.stringify(o.value)} model ${JSON.stringify(want)} ${where(step)}`);
          model.counts.ignoredResults += results.length - verdicts.length;
          for (const [m, s] of verdicts) {
            model.finish(m, s);
            m.verdictResolved = true;
          }
        } else {
          model.counts.ignoredResults += results.length - verdicts.length;
        }
      }
    } else if (op < 0.93) {
      clock.advance(rng.int(1, 30));
    } else if (!cut) {
      // A clean restart: close, reopen; the state must be the same (delivered queued again).
      // A delivered message is queued again (and, sent once, not expired at the gateway).
      const again = (m: MMsg): string => (m.state !== 'delivered' ? m.state : 'queued');
      const before = agents.map((a) => show(model.list(a, clock.now()).map((m) => ({ target: m.target, state: again(m) }))));
      // With the disk working: records kept from a failed write (drops, expiries) go with close.
      disk.faults.writeEioP = 0;
      const closed = await race(store.close());
      if (closed.done) {
        if (closed.err !== undefined) t.fail(`close failed: ${String(closed.err)} ${where(step)}`);
        disk.disarmCrash();
        disk.faults.writeEioP = 0;
        store = await open();
        const after = agents.map((a) => show(store.list(a)));
        // History order may differ for verdicts and expiries that became final during one write: compare it as a set.
        const norm = (xs: string[][]): string[][] => xs.map((x) => [...x.filter((s) => /:(queued|delivered)$/.test(s)), ...x.filter((s) => !/:(queued|delivered)$/.test(s)).sort()]);
        t.same(norm(after), norm(before), `state after a clean reopen ${where(step)}`);
        model = resync(store, agents, limits, all);
        outstanding.clear();
      }
    }
    if (cut) {
      crashes++;
      disk.disarmCrash();
      disk.faults.writeEioP = 0;
      disk.faults.shortWriteP = 0;
      cut = false;
      store = await open();
      checkAfterCrash(t, store, all, agents, clock.now(), where(step));
      model = resync(store, agents, limits, all);
      outstanding.clear();
      continue;
    }
    // Quiescent: the store and the model agree on everything.
    checks++;
    for (const a of agents) {
      const got = show(store.list(a));
      const want = show(model.list(a, clock.now()));
      if (got.join() !== want.join()) t.fail(`list ${a}: store ${got.join(' ')} model ${want.join(' ')} ${where(step)}`);
    }
    const s = store.stats();
    const live = [...model.live.values()].flat();
    const want = { queued: live.filter((m) => m.state === 'queued').length, delivered: live.filter((m) => m.state === 'delivered').length, ...model.counts };
    const gotStats = { queued: s.queued, delivered: s.delivered, enqueued: s.enqueued, acked: s.acked, rejected: s.rejected, expired: s.expired, dropped: s.dropped, ignoredResults: s.ignoredResults };
    if (JSON.stringify(gotStats) !== JSON.stringify(want)) t.fail(`stats: store ${JSON.stringify(gotStats)} model ${JSON.stringify(want)} ${where(step)}`);
  }
  disk.disarmCrash();
  if (!cut) await store.close().catch(() => undefined);
  return { crashes, checks };
}

/** After a crash: what resolved is there as it was; nothing rejected is queued; the queue order holds. */
function checkAfterCrash(t: Test, store: DownlinkStore, all: MMsg[], agents: string[], now: number, where: string): void {
  const views = new Map<string, MessageView>();
  for (const a of agents) {
    const list = store.list(a);
    for (const v of list) views.set(v.target, v);
    const liveKeys = list.filter((v) => v.state === 'queued').map((v) => Number(v.target.slice(1)));
    if (liveKeys.some((k, i) => i > 0 && k < liveKeys[i - 1]!)) t.fail(`${a}: queue out of order after a crash: ${liveKeys.join(' ')} ${where}`);
  }
  for (const m of all) {
    const v = views.get(m.target);
    const st = v?.state;
    if (m.enqueueResolved !== true) {
      // Never resolved: in flight at the crash (it may be there, or not), or rejected (it must not be).
      if (m.rejected && st !== undefined) t.fail(`${m.target} was rejected and is ${st} after a crash ${where}`);
      continue;
    }
    if (m.verdictResolved) {
      if (st !== m.state) t.fail(`${m.target}: its verdict ${m.state} resolved, after a crash it is ${st} ${where}`);
    } else if (m.state === 'queued' || m.state === 'delivered') {
      const ok = st === 'queued' || (m.verdictInFlight && st !== undefined && finalStates.has(st)) || (st === 'expired' && m.expiresAt !== undefined && now >= m.expiresAt);
      if (!ok) t.fail(`${m.target} resolved and was ${m.state}; after a crash it is ${st} ${where}`);
    } else if (m.state === 'expired') {
      if (st !== 'expired') t.fail(`${m.target} expired; after a crash it is ${st} ${where}`);
    } else if (m.state === 'dropped') {
      const certain = m.droppedFor?.enqueueResolved === true;
      if (st !== 'dropped' && (certain || st !== 'queued')) t.fail(`${m.target} was dropped${certain ? ' for an enqueue that resolved' : ''}; after a crash it is ${st} ${where}`);
    }
  }
}

/** A fresh model from what the store holds after a reopen. */
function resync(store: DownlinkStore, agents: string[], limits: DownlinkQueueLimits, all: MMsg[]): Model {
  const model = new Model(limits, agents);
  const byTarget = new Map(all.map((m) => [m.target, m]));
  for (const a of agents) {
    for (const v of store.list(a)) {
      const m = byTarget.get(v.target)!;
      m.id = v.id;
      m.state = v.state;
      m.enqueueResolved = true;
      m.verdictInFlight = false;
      // Final after a reopen is final for good: read from the file, or an expiry that is found again.
      m.verdictResolved = finalStates.has(v.state);
      m.sent = v.sent === true;
      if (v.state === 'queued') model.live.get(a)!.push(m);
      else model.history.get(a)!.push(m);
    }
  }
  const s = store.stats();
  model.counts = { enqueued: s.enqueued, acked: s.acked, rejected: s.rejected, expired: s.expired, dropped: s.dropped, ignoredResults: s.ignoredResults };
  return model;
}
