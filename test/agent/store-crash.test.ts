/**
 * SegmentStore under SIGKILL: a child process appends as fast as it can (16 appends in flight,
 * sync 'always') and prints each seq as its append resolves; the parent kills it at a seeded
 * moment, reopens the store in-process and checks that every resolved append is there, intact,
 * in seq order, and that nothing is reported corrupt. All rounds share one store directory, so
 * each recovery starts from what the previous recoveries left.
 *
 * The child runs compiled (dist/test/agent/fixtures/crash-child.js, see that file for why):
 * run `npx tsc -p .` first (`npm test` does). The parent uses the TypeScript source in-process.
 * Replay with SEED=<seed>; ROUNDS=<n> changes the number of rounds (default 70).
 */
import t from 'tap';
import { readAll } from './fixtures/read-all.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentStore } from '../../agent/store/segment-store.js';
import type { StoreStats } from '../../agent/store/store.js';
import type { Packet } from '../../protocol/packet.js';
import { prng, testSeed } from '../helpers/seed.js';
import { distPath, staleBuild } from './fixtures/compiled.js';
import type { CrashChildConfig } from './fixtures/crash-child.js';
import { crashIndexOf } from './fixtures/crash-packets.js';

// 70 per run (was 200, then 100): each CI run draws a new seed, and the suite must stay within its 15 minutes.
const roundsDefault = 70;
const segmentBytes = 16 * 1024;
const bytesMax = 1024 ** 3; // never full: a drop would look like a loss
const killDelayMs = { min: 10, max: 110 };
/** a recovery that returns more than this acks most of it, so each round's read stays small */
const backlogPacketsMax = 500;
const failuresShown = 8;
const sparesAhead = 2;
/** append indices of round r start at r * indicesPerRound */
const indicesPerRound = 1_000_000;

interface RecoveryStats {
  recovery?: { tailBytesCut: number; damagedSegments: number };
}

interface Child {
  proc: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  /** resolves true once the child printed its `open` line, false if it exited first */
  opened: Promise<boolean>;
  /** resolves true once the child is loaded, false if it exited first */
  ready: Promise<boolean>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startChild(js: string): Child {
  const proc = spawn(process.execPath, [js], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let markOpened: (ok: boolean) => void = () => undefined;
  const opened = new Promise<boolean>((r) => (markOpened = r));
  let markReady: (ok: boolean) => void = () => undefined;
  const ready = new Promise<boolean>((r) => (markReady = r));
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => {
    out += d;
    if (out.startsWith('ready\n')) markReady(true);
    if (/^open .*\n/m.test(out)) markOpened(true);
  });
  proc.stderr.on('data', (d: string) => (err += d.length + err.length > 4000 ? '' : d));
  proc.stdin.on('error', () => undefined); // EPIPE if it died early: seen through `exited`
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('close', (code, signal) => {
      markReady(false);
      markOpened(false);
      r({ code, signal });
    }),
  );
  return { proc, out: () => out, err: () => err, opened, ready, exited };
}


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** resolves false after `ms` without keeping the process alive */
const timeout = (ms: number): Promise<false> => new Promise((r) => setTimeout(() => r(false), ms).unref());

type FailureKind = 'child' | 'missing' | 'damaged' | 'order' | 'ackedBack' | 'resurrected' | 'seqs' | 'lastSeq' | 'corrupt';

/** What the parent knows across rounds, and what went wrong, per kind. */
class Ledger {
  /** seq -> append index, for every packet reported resolved or returned by a recovery and not acked since */
  readonly known = new Map<number, number>();
  /** append index -> seq, for every packet ever reported or returned */
  readonly seqOfIndex = new Map<number, number>();
  /** acked by the parent, awaited, then a clean close: never returned again */
  parentAckedSeq = 0;
  /** issued by a child before a kill: may or may not have been kept */
  childAckSeq = 0;
  seenSeqMax = 0;
  readonly fail = new Map<FailureKind, string[]>();
  readonly count = { resolved: 0, unreported: 0, tailCut: 0, childAcked: 0, parentAcked: 0 };

  constructor(readonly salt: number) {}

  note(kind: FailureKind, round: number, msg: string): void {
    const list = this.fail.get(kind) ?? [];
    list.push(`round ${round}: ${msg}`);
    this.fail.set(kind, list);
  }

  /** Takes in the child's output; returns the seqs it reported resolved. */
  childReported(round: number, out: string): Set<number> {
    const lines = out.split('\n');
    lines.pop(); // an unfinished last line was not fully written before the kill
    const seenBefore = this.seenSeqMax;
    const reported = new Set<number>();
    for (const line of lines) {
      const [kind, a, b] = line.split(' ');
      if (kind === 'a') this.childAckSeq = Math.max(this.childAckSeq, Number(a));
      else if (kind === 'e') this.note('child', round, `child error: ${line.slice(2)}`);
      if (kind !== 's') continue;
      const [seq, index] = [Number(a), Number(b)];
      if (!(seq > seenBefore)) this.note('seqs', round, `append #${index} resolved with seq ${seq}, not above ${seenBefore} seen before`);
      if (reported.has(seq)) this.note('seqs', round, `seq ${seq} resolved twice`);
      reported.add(seq);
      this.known.set(seq, index);
      this.seqOfIndex.set(index, seq);
      this.seenSeqMax = Math.max(this.seenSeqMax, seq);
    }
    this.count.resolved += reported.size;
    return reported;
  }

  /** Checks what a recovery returned against everything reported and returned before. */
  recovered(round: number, firstIndex: number, reported: Set<number>, packets: Packet[], st: StoreStats & RecoveryStats): void {
    const rec = st.recovery;
    if (rec && rec.tailBytesCut > 0) this.count.tailCut++;
    if (st.dropped.corrupt !== 0 || (rec?.damagedSegments ?? 0) !== 0) {
      this.note('corrupt', round, `dropped.corrupt ${st.dropped.corrupt}, recovery ${JSON.stringify(rec)} after a SIGKILL`);
    }
    const gone = Math.max(this.parentAckedSeq, this.childAckSeq);
    const returned = new Map<number, number>();
    let prev = 0;
    for (const p of packets) {
      if (!(p.seq > prev)) this.note('order', round, `seq ${p.seq} came after ${prev}`);
      prev = p.seq;
      const index = crashIndexOf(this.salt, p);
      if (typeof index === 'string') {
        this.note('damaged', round, index);
        continue;
      }
      returned.set(p.seq, index);
      if (p.seq <= this.parentAckedSeq) this.note('ackedBack', round, `seq ${p.seq} came back after ack(${this.parentAckedSeq}) and a clean close`);
      const wasSeq = this.seqOfIndex.get(index);
      if (wasSeq !== undefined && wasSeq !== p.seq) this.note('damaged', round, `append #${index} is seq ${wasSeq} but came back as seq ${p.seq}`);
      if (wasSeq === undefined && index < firstIndex && p.seq > gone) {
        this.note('resurrected', round, `append #${index} (seq ${p.seq}) from an earlier round reappeared though no recovery had returned it`);
      }
      if (index >= firstIndex + indicesPerRound) this.note('damaged', round, `seq ${p.seq}: append #${index} was never issued`);
      else if (index >= firstIndex && !reported.has(p.seq)) this.count.unreported++;
    }
    for (const [seq, index] of this.known) {
      if (seq > gone && returned.get(seq) !== index) this.note('missing', round, `seq ${seq} (append #${index}) resolved or recovered earlier, not returned now`);
    }
    const seen = Math.max(this.seenSeqMax, prev);
    if (st.lastSeq < seen) this.note('lastSeq', round, `stats().lastSeq ${st.lastSeq} below seq ${seen} seen`);
    for (const [seq, index] of returned) {
      this.known.set(seq, index);
      this.seqOfIndex.set(index, seq);
    }
    this.seenSeqMax = seen;
  }

  parentAcked(upTo: number): void {
    this.parentAckedSeq = Math.max(this.parentAckedSeq, upTo);
    for (const seq of this.known.keys()) if (seq <= upTo) this.known.delete(seq);
    this.count.parentAcked++;
  }
}

t.test('segment-store - every append that resolved before a SIGKILL comes back intact, round after round', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rounds = Number(process.env.ROUNDS ?? roundsDefault);
  const stale = staleBuild(['agent/store', 'common', 'protocol', 'test/helpers/seed.ts', 'test/agent/fixtures/crash-child.ts', 'test/agent/fixtures/crash-packets.ts']);
  if (stale.length > 0) {
    t.fail(`dist/ is stale, run \`npx tsc -p .\` first: ${stale.join('; ')}`);
    return;
  }
  const childJs = distPath('test/agent/fixtures/crash-child.ts');
  const rnd = prng(seed);
  const ledger = new Ledger(Math.floor(rnd() * 2 ** 32));
  const dir = mkdtempSync(join(tmpdir(), 'ferry-crash-'));
  const children = new Set<Child>();
  const spawnChild = (): Child => {
    const c = startChild(childJs);
    children.add(c);
    void c.exited.then(() => children.delete(c));
    return c;
  };
  t.teardown(async () => {
    for (const c of children) c.proc.kill('SIGKILL');
    await Promise.all([...children].map((c) => c.exited));
    rmSync(dir, { recursive: true, force: true });
  });
  const started = Date.now();

  // Children load (~0.1 s of CPU each) a couple of rounds ahead of their turn.
  const spares: Child[] = Array.from({ length: sparesAhead }, spawnChild);
  for (let round = 1; round <= rounds; round++) {
    const firstIndex = round * indicesPerRound;
    const ackEvery = rnd() < 0.25 ? 20 + Math.floor(rnd() * 60) : 0;
    const cfg: CrashChildConfig = { dir, salt: ledger.salt, firstIndex, concurrency: 16, segmentBytes, bytesMax, ackEvery, deadlineMs: 30_000 };
    const delay = killDelayMs.min + Math.floor(rnd() * (killDelayMs.max - killDelayMs.min + 1));
    const child: Child = spares.shift()!;
    spares.push(spawnChild());
    await Promise.race([child.ready, timeout(20_000)]);
    child.proc.stdin.write(`${JSON.stringify(cfg)}\n`);
    const opened = await Promise.race([child.opened, timeout(20_000)]);
    if (opened) await sleep(delay);
    child.proc.kill('SIGKILL');
    const { code, signal } = await child.exited;
    if (!opened) ledger.note('child', round, `did not open the store (exit ${code ?? signal}): ${child.err().slice(0, 500)}`);
    else if (signal !== 'SIGKILL') ledger.note('child', round, `exited by itself before the kill (exit ${code ?? signal}): ${child.err().slice(0, 500)}`);
    if (ackEvery > 0) ledger.count.childAcked++;
    const reported = ledger.childReported(round, child.out());

    // Recovery, in-process; then sometimes ack a prefix (always when the backlog grows large) and close cleanly.
    let s: SegmentStore;
    try {
      s = await SegmentStore.open({ dir, sync: 'always', segmentBytes, bytesMax });
    } catch (err) {
      ledger.note('child', round, `reopen threw: ${String(err)}`);
      break;
    }
    const chunk = 1 + Math.floor(rnd() * 300);
    const packets = await readAll(s, () => chunk);
    ledger.recovered(round, firstIndex, reported, packets, s.stats() as StoreStats & RecoveryStats);
    if (packets.length > 0 && (rnd() < 0.3 || packets.length > backlogPacketsMax)) {
      const from = packets.length > backlogPacketsMax ? packets.length - backlogPacketsMax / 4 : 0;
      const upTo = packets[Math.floor(from + rnd() * (packets.length - from))]!.seq;
      await s.ack(upTo);
      ledger.parentAcked(upTo);
    }
    await s.close();
    if ((ledger.fail.get('child')?.length ?? 0) > 3) break;
  }
  for (const c of spares) c.proc.kill('SIGKILL');

  const n = ledger.count;
  t.comment(`${rounds} rounds in ${((Date.now() - started) / 1000).toFixed(1)} s: ${n.resolved} appends resolved before a kill, ${n.unreported} more recovered that had not resolved; ` +
    `torn tail cut in ${n.tailCut} rounds; child acked in ${n.childAcked}, parent in ${n.parentAcked}`);
  const check = (kind: FailureKind, what: string): void => {
    const list = ledger.fail.get(kind) ?? [];
    if (list.length > 0) t.comment(`${what}, first of ${list.length} (SEED=${seed}):\n  ${list.slice(0, failuresShown).join('\n  ')}`);
    t.equal(list.length, 0, what);
  };
  check('child', 'every child opened the store and ran until it was killed');
  check('missing', 'every append that resolved (or that a recovery returned) comes back until acked');
  check('damaged', 'every packet that comes back is byte for byte what was appended with that seq');
  check('order', 'recovered packets come back in strictly increasing seq order');
  check('ackedBack', 'packets acked before a clean close never come back');
  check('resurrected', 'a packet that a recovery did not return does not reappear later');
  check('seqs', 'appends after a recovery get seqs above every seq seen before');
  check('lastSeq', 'stats().lastSeq covers every seq seen');
  check('corrupt', 'a SIGKILL leaves nothing counted corrupt or damaged');
  t.ok(n.resolved >= rounds, `the children resolved appends before being killed (${n.resolved} in ${rounds} rounds)`);
});
