/**
 * SegmentStore after power cuts and bit rot: seeded cases each take a copy of a store built
 * beforehand, truncate its tail segment and/or flip bytes anywhere in its segment files (headers
 * and trailers too), then open it and read everything. Whatever the damage: opening never throws,
 * no corrupt packet comes back, seqs increase, every packet whose record and segment were not
 * touched comes back, a loss is reported, and the store keeps working (new appends get higher
 * seqs and survive a reopen).
 *
 * Replay with SEED=<seed>; CASE=<n> runs only case n of that seed; CASES=<n> sets the count;
 * FAILURES_SHOWN=<n> lists more failing cases. Works in /dev/shm when there is one (syncs are free).
 */
import t from 'tap';
import { readAll } from './fixtures/read-all.js';
import { cpSync, existsSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentStore } from '../../agent/store/segment-store.js';
import type { StoreStats } from '../../agent/store/store.js';
import type { Packet } from '../../protocol/packet.js';
import { prng, testSeed } from '../helpers/seed.js';
import { differs, int, makePacket, markerOf, type Rnd } from './fixtures/marked-packets.js';
import { damageSegments, describeDamage, segmentLayout, segmentNames, type SegmentLayout } from './fixtures/segment-files.js';

// 350 per run (was 1,000, then 500): each CI run draws a new seed, and the suite must stay within its 15 minutes.
const casesDefault = 350;
const bytesMax = 1024 ** 3; // never full: a drop would look like a loss
const failuresShown = Number(process.env.FAILURES_SHOWN ?? 6);
const casesInFlight = 4;

interface RecoveryStats {
  recovery?: { tailBytesCut: number; damagedSegments: number };
}


// ---- base stores, built once and copied for each case ----

interface Base {
  name: string;
  dir: string;
  segmentBytes: number;
  /** seq -> the packet as appended */
  packets: Map<number, Packet>;
  /** seqs acknowledged (cumulatively or one by one) */
  acked: (seq: number) => boolean;
  /** marker number -> seq */
  seqOfMarker: Map<number, number>;
  layout: SegmentLayout;
}

interface BaseSpec {
  segmentBytes: number;
  sessions: number;
  appends: number;
  acks: 'none' | 'prefix' | 'single';
  inFlightMax: number;
}

const baseSpecs: BaseSpec[] = [
  { segmentBytes: 4096, sessions: 1, appends: 250, acks: 'none', inFlightMax: 1 },
  { segmentBytes: 8192, sessions: 3, appends: 300, acks: 'prefix', inFlightMax: 8 },
  { segmentBytes: 16384, sessions: 2, appends: 350, acks: 'single', inFlightMax: 4 },
  { segmentBytes: 4096, sessions: 2, appends: 200, acks: 'prefix', inFlightMax: 1 },
];

async function buildBase(root: string, i: number, spec: BaseSpec, rnd: Rnd): Promise<Base> {
  const dir = join(root, `base-${i}`);
  const packets = new Map<number, Packet>();
  const seqOfMarker = new Map<number, number>();
  let ackedSeq = 0;
  const ackedOne = new Set<number>();
  let n = 0;
  for (let session = 0; session < spec.sessions; session++) {
    const s = await SegmentStore.open({ dir, sync: 'none', segmentBytes: spec.segmentBytes, bytesMax });
    const count = Math.round(spec.appends / spec.sessions);
    for (let done = 0; done < count; ) {
      const batch = Math.min(count - done, int(rnd, 1, spec.inFlightMax));
      const news = Array.from({ length: batch }, () => ({ marker: ++n, p: makePacket(rnd, n, spec.segmentBytes) }));
      const got = await Promise.all(news.map(({ p }) => s.append(p)));
      got.forEach((p, k) => {
        packets.set(p.seq, { ...news[k]!.p, seq: p.seq });
        seqOfMarker.set(news[k]!.marker, p.seq);
      });
      done += batch;
    }
    const seqs = [...packets.keys()];
    if (spec.acks === 'prefix' && session < spec.sessions - 1) {
      // Acks are cumulative: a prefix below an earlier one acks nothing more (the model once
      // took the lower one, and SEED=4256600369 then counted the store's correct answer as a loss).
      ackedSeq = Math.max(ackedSeq, seqs[Math.floor(seqs.length * (0.2 + rnd() * 0.3))]!);
      await s.ack(ackedSeq);
    }
    if (spec.acks === 'single') {
      for (const seq of seqs) if (seq > ackedSeq && !ackedOne.has(seq) && rnd() < 0.08) ackedOne.add(seq);
      for (const seq of ackedOne) await s.ackOne(seq);
    }
    await s.close();
  }
  const acked = (seq: number): boolean => seq <= ackedSeq || ackedOne.has(seq);
  return { name: `base ${i} (segmentBytes ${spec.segmentBytes}, ${spec.sessions} sessions, acks ${spec.acks})`, dir, segmentBytes: spec.segmentBytes, packets, acked, seqOfMarker, layout: segmentLayout(dir, markerOf) };
}

// ---- one case ----

type Failures = Record<'open' | 'threw' | 'wrong' | 'order' | 'missing' | 'unreported' | 'ackedBack' | 'control' | 'append' | 'reopen', string[]>;

async function runCase(root: string, bases: Base[], caseNo: number, caseSeed: number, fail: Failures, tally: Record<string, number>): Promise<void> {
  const rnd = prng(caseSeed);
  const base = bases[int(rnd, 0, bases.length - 1)]!;
  const control = rnd() < 0.03;
  const dir = join(root, `case-${caseNo}`);
  cpSync(base.dir, dir, { recursive: true });
  const d = control ? { cut: null, flips: [] } : damageSegments(dir, base.layout, rnd);
  const where = `case ${caseNo} (${base.name}; ${describeDamage(d)})`;
  const note = (kind: keyof Failures, msg: string): void => void fail[kind].push(`${where}: ${msg}`);
  try {
    let s: SegmentStore;
    try {
      s = await SegmentStore.open({ dir, sync: 'none', segmentBytes: base.segmentBytes, bytesMax });
    } catch (err) {
      note('open', `open threw ${String(err)}`);
      return;
    }
    const got = await readAll(s, () => int(rnd, 1, 64), 100_000);
    const st = s.stats();
    const rec = (st as typeof st & RecoveryStats).recovery;
    const reported = st.dropped.corrupt > 0 || (rec?.tailBytesCut ?? 0) > 0 || (rec?.damagedSegments ?? 0) > 0;
    if (reported) tally.reported = (tally.reported ?? 0) + 1;
    const tail = segmentNames(base.dir).pop();
    const tailTouched = d.cut !== null || d.flips.some((f) => f.file === tail);
    let prev = 0;
    const returned = new Set<number>();
    for (const p of got) {
      if (!(p.seq > prev)) note('order', `seq ${p.seq} came after ${prev}`);
      prev = p.seq;
      returned.add(p.seq);
      const want = base.packets.get(p.seq);
      const diff = want ? differs(p, want) : `seq ${p.seq} was never appended`;
      if (diff) note('wrong', `seq ${p.seq}: ${diff}`);
      if (want && base.acked(p.seq)) {
        // The tail segment holds the latest ack state; damage there may forget acks, like a crash.
        tally.ackedBack = (tally.ackedBack ?? 0) + 1;
        if (!tailTouched) note('ackedBack', `acked seq ${p.seq} came back though the tail segment was not damaged`);
      }
    }
    // Every live packet whose record and segment were not touched must come back.
    const touched = new Set(d.flips.map((f) => f.file));
    let lostUnexplained = 0;
    let lost = 0;
    for (const [marker, seq] of base.seqOfMarker) {
      if (base.acked(seq) || returned.has(seq)) continue;
      lost++;
      const at = base.layout.placements.get(marker);
      if (!at) continue; // not on disk after a clean close: the base's own assertion reports it
      const cutOff = d.cut !== null && d.cut.file === at.file && at.end > d.cut.at;
      if (!touched.has(at.file) && !cutOff) note('missing', `seq ${seq} (${at.file}@${at.start}..${at.end}, untouched) did not come back`);
      // Cut cleanly at a record boundary, the tail looks complete: nothing can tell the loss.
      if (!(cutOff && d.cut!.clean)) lostUnexplained++;
    }
    if (lost > 0) tally.lossCases = (tally.lossCases ?? 0) + 1;
    if (lostUnexplained > 0 && !reported) {
      note('unreported', `${lostUnexplained} packets lost, yet dropped.corrupt ${st.dropped.corrupt}, recovery ${JSON.stringify(rec)}`);
    }
    if (control && (reported || lost > 0)) note('control', `undamaged copy: ${lost} lost, dropped.corrupt ${st.dropped.corrupt}, recovery ${JSON.stringify(rec)}`);

    // The store keeps working: new appends get higher seqs and survive a reopen.
    const seen = prev;
    const appendedSeqMax = Math.max(...base.packets.keys());
    if (st.lastSeq < prev) note('append', `stats().lastSeq ${st.lastSeq} below seq ${prev} returned`);
    const added: Packet[] = [];
    try {
      for (let k = int(rnd, 1, 5); k > 0; k--) {
        const p = makePacket(rnd, 1_000_000 + k, base.segmentBytes);
        const a = await s.append(p);
        const after = added.length > 0 ? added[added.length - 1]!.seq : seen;
        if (!(a.seq > after)) note('append', `new append got seq ${a.seq}, not above ${after}`);
        if (a.seq <= appendedSeqMax) tally[d.cut === null ? 'seqReuseAfterFlips' : 'seqReuseAfterCut'] = (tally[d.cut === null ? 'seqReuseAfterFlips' : 'seqReuseAfterCut'] ?? 0) + 1;
        added.push({ ...p, seq: a.seq });
      }
      await s.close();
    } catch (err) {
      note('append', `append/close threw ${String(err)}`);
      return;
    }
    let s2: SegmentStore;
    try {
      s2 = await SegmentStore.open({ dir, sync: 'none', segmentBytes: base.segmentBytes, bytesMax });
    } catch (err) {
      note('reopen', `second open threw ${String(err)}`);
      return;
    }
    const again = await readAll(s2, () => int(rnd, 1, 64), 100_000);
    await s2.close();
    const expect = [...got, ...added];
    const gotSeqs = again.map((p) => p.seq).join(',');
    if (gotSeqs !== expect.map((p) => p.seq).join(',')) {
      const missingNow = expect.filter((p) => !again.some((q) => q.seq === p.seq)).map((p) => p.seq);
      const extra = again.filter((p) => !expect.some((q) => q.seq === p.seq)).map((p) => p.seq);
      note('reopen', `after appending ${added.map((p) => p.seq).join(',')} and reopening: missing [${missingNow.slice(0, 10).join(',')}${missingNow.length > 10 ? ',…' : ''}], extra [${extra.slice(0, 10).join(',')}]`);
    } else {
      for (const [k, p] of again.entries()) {
        const diff = differs(p, expect[k]!);
        if (diff) note('reopen', `after reopening, seq ${p.seq}: ${diff}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('segment-store - power cuts and flipped bytes: never a corrupt packet, every untouched packet back, losses reported', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const count = Number(process.env.CASES ?? casesDefault);
  const only = process.env.CASE === undefined || process.env.CASE === '' ? null : Number(process.env.CASE);
  // A power cut is simulated by editing files, so the store's syncs buy nothing here: on tmpfs they cost nothing either.
  const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ferry-powercut-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const started = Date.now();
  const rnd = prng(seed);
  const bases: Base[] = [];
  for (const [i, spec] of baseSpecs.entries()) bases.push(await buildBase(root, i, spec, prng(Math.floor(rnd() * 2 ** 32))));
  for (const b of bases) {
    const unplaced = [...b.seqOfMarker].filter(([m, seq]) => !b.acked(seq) && !b.layout.placements.has(m)).length;
    t.equal(unplaced, 0, `${b.name}: every un-acked packet's record is on disk after a clean close (${b.layout.sizes.size} segments)`);
  }
  const built = Date.now();
  const fail: Failures = { open: [], threw: [], wrong: [], order: [], missing: [], unreported: [], ackedBack: [], control: [], append: [], reopen: [] };
  const tally: Record<string, number> = {};
  const caseSeeds = Array.from({ length: count }, () => Math.floor(rnd() * 2 ** 32));
  const todo = caseSeeds.map((_, i) => i).filter((i) => only === null || i === only);
  // A few cases at a time: each is its own seeded world in its own directory, so results do not
  // depend on the interleaving, and one case's file IO overlaps another's work.
  const worker = async (): Promise<void> => {
    for (let i = todo.shift(); i !== undefined; i = todo.shift()) {
      await runCase(root, bases, i, caseSeeds[i]!, fail, tally).catch((err: unknown) => fail.threw.push(`case ${i}: ${err instanceof Error ? err.stack : String(err)}`));
    }
  };
  await Promise.all(Array.from({ length: casesInFlight }, worker));
  t.comment(`${only === null ? count : 1} cases in ${((Date.now() - built) / 1000).toFixed(1)} s (bases built in ${((built - started) / 1000).toFixed(1)} s): ` +
    `packets lost in ${tally.lossCases ?? 0} cases, a loss reported in ${tally.reported ?? 0}, ${tally.ackedBack ?? 0} acked packets came back, ` +
    `new appends reusing a seq appended before the damage: ${tally.seqReuseAfterCut ?? 0} after a cut, ${tally.seqReuseAfterFlips ?? 0} after flipped bytes only`);
  const check = (kind: keyof Failures, what: string): void => {
    const list = fail[kind].sort((a, b) => Number(/^case (\d+)/.exec(a)?.[1]) - Number(/^case (\d+)/.exec(b)?.[1]));
    if (list.length > 0) t.comment(`${what}: ${list.length} failures, first ones (replay one with SEED=${seed} CASE=<n>):\n  ${list.slice(0, failuresShown).join('\n  ')}`);
    t.equal(list.length, 0, what);
  };
  check('open', 'opening a damaged store never throws');
  check('threw', 'reading a recovered store never throws');
  check('wrong', 'every packet that comes back is exactly the one appended with that seq');
  check('order', 'packets come back in strictly increasing seq order');
  check('missing', 'every packet in an untouched segment, before the cut, comes back');
  check('unreported', 'a loss that damage could have caused is reported (dropped.corrupt, recovery.tailBytesCut or damagedSegments)');
  check('ackedBack', 'acked packets stay acked unless the tail segment (which holds the latest ack state) was damaged');
  check('control', 'an undamaged copy loses nothing and reports nothing');
  check('append', 'after recovery new appends get seqs above every seq returned');
  check('reopen', 'after another reopen the same packets come back, plus the new ones');
});

t.test('segment-store - a tail cut anywhere in its first bytes: opens, reports the loss, and later appends survive a reopen', async (t) => {
  // Regression, from the randomized cases above (a cut at 28..31 bytes, inside the header but after
  // its CRC, lost the next append): every cut offset from 0 to the end of the tail's first packet.
  const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ferry-headcut-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const base = join(root, 'base');
  const rnd = prng(7);
  const a = await SegmentStore.open({ dir: base, sync: 'none', segmentBytes: 4096, bytesMax });
  const appended: Packet[] = [];
  for (let n = 1; n <= 40; n++) appended.push({ ...(await a.append(makePacket(rnd, n, 4096))) });
  await a.close();
  const tail = segmentNames(base).pop()!;
  const layout = segmentLayout(base, markerOf);
  const firstEnd = Math.min(...[...layout.placements.values()].filter((p) => p.file === tail).map((p) => p.end));
  t.ok(Number.isFinite(firstEnd) && firstEnd > 8, `the tail ${tail} holds packets`);
  const bad: string[] = [];
  for (let at = 0; at < firstEnd; at++) {
    const dir = join(root, `cut-${at}`);
    cpSync(base, dir, { recursive: true });
    truncateSync(join(dir, tail), at);
    try {
      const s = await SegmentStore.open({ dir, sync: 'none', segmentBytes: 4096, bytesMax });
      const before = await readAll(s, () => int(rnd, 1, 64), 100_000);
      const st = s.stats() as StoreStats & RecoveryStats;
      const lost = appended.length - before.length;
      const reported = st.dropped.corrupt > 0 || (st.recovery?.tailBytesCut ?? 0) > 0 || (st.recovery?.damagedSegments ?? 0) > 0;
      const clean = at === 0 || (layout.cleanCuts.get(tail)?.has(at) ?? false);
      if (lost > 0 && !reported && !clean) bad.push(`cut at ${at}: ${lost} lost, nothing reported (recovery ${JSON.stringify(st.recovery)})`);
      const added = [await s.append(makePacket(rnd, 1001, 4096)), await s.append(makePacket(rnd, 1002, 4096))].map((p) => ({ ...p }));
      await s.close();
      const s2 = await SegmentStore.open({ dir, sync: 'none', segmentBytes: 4096, bytesMax });
      const after = (await readAll(s2, () => int(rnd, 1, 64), 100_000)).map((p) => p.seq);
      await s2.close();
      const want = [...before, ...added].map((p) => p.seq);
      if (after.join() !== want.join()) bad.push(`cut at ${at}: after appending ${added.map((p) => p.seq).join()} and reopening got [..${after.slice(-4).join()}], want [..${want.slice(-4).join()}]`);
    } catch (err) {
      bad.push(`cut at ${at}: threw ${String(err)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (bad.length > 0) t.comment(`tail ${tail}, first packet ends at byte ${firstEnd}:\n  ${bad.join('\n  ')}`);
  t.same(bad, [], 'every cut offset: no throw, loss reported, new appends come back after a reopen');
});
