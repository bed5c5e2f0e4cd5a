/**
 * The store on a failing disk (test/sim/sim-disk.ts): short writes and a full disk mid-batch,
 * I/O errors in a roll, kills and power cuts right after. Each case once lost or wedged data
 * (issue 9, cases 1, 4, 5 and the failed-append suspicion of case 11).
 */
import t from 'tap';
import type { Files } from '../../common/files.js';
import { SegmentStore, type SegmentStoreOptions } from '../../agent/store/segment-store.js';
import { SimDisk } from '../sim/sim-disk.js';
import { prng } from '../helpers/seed.js';
import { eio, hookFiles } from '../helpers/files-hooks.js';

const dir = '/dev-store';
const pkt = (i: number) => ({ target: `t/${i % 3}`, ts: 0, data: { i, pad: 'x'.repeat(200) } });
const base: SegmentStoreOptions = { dir, segmentBytes: 4096, bytesMax: 64 * 1024, ackFlushMs: 1 };

/** Files whose writes, opens or syncs fail with EIO while `fail(op, path)` says so. */
function failing(files: Files, fail: (op: 'open' | 'write' | 'sync', path: string, position?: number | null) => boolean): Files {
  return hookFiles(files, {
    open: (path) => {
      if (fail('open', path)) throw eio();
    },
    handle: (fh, path) => ({
      write: (b, p) => (fail('write', path, p) ? Promise.reject(eio()) : fh.write(b, p)),
      writeAll: (b, p) => (fail('write', path, p) ? Promise.reject(eio()) : fh.writeAll(b, p)),
      datasync: () => (fail('sync', path) ? Promise.reject(eio()) : fh.datasync()),
    }),
  });
}

/** Appends n packets at once (one group commit); returns the seqs that resolved and how many were refused. */
async function appendBatch(s: SegmentStore, from: number, n: number): Promise<{ ok: number[]; refused: string[] }> {
  const r = await Promise.allSettled(Array.from({ length: n }, (_, k) => s.append(pkt(from + k))));
  return {
    ok: r.flatMap((x) => (x.status === 'fulfilled' ? [x.value.seq] : [])),
    refused: r.flatMap((x) => (x.status === 'rejected' ? [(x.reason as { code: string }).code] : [])),
  };
}

async function readAllSeqs(s: SegmentStore): Promise<number[]> {
  return (await s.readAfter(0, 1_000_000)).map((p) => p.seq);
}

t.test('segment-store - a group commit that straddles a full disk is refused whole, and no resolved seq is handed out again after a power cut', async (t) => {
  const disk = new SimDisk({ rng: prng(1) });
  let s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  const first = await appendBatch(s, 0, 4);
  t.equal(first.ok.length, 4);
  // Room for about one and a half packets more: the next batch's one write comes back short.
  disk.faults.bytesBudget = disk.usedBytes() + 350;
  const second = await appendBatch(s, 4, 4);
  t.same(second.ok, [], 'no append of the straddling batch resolved');
  t.ok(second.refused.every((c) => c === 'STORE_IO'), `all refused with STORE_IO (${second.refused.join(',')})`);
  disk.faults.bytesBudget = null;
  const third = await appendBatch(s, 8, 2);
  t.equal(third.ok.length, 2, 'the store takes appends again once there is room');
  disk.powerCut();
  s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.teardown(() => s.close());
  const resolved = [...first.ok, ...third.ok];
  t.same(await readAllSeqs(s), resolved, 'exactly the resolved packets are there after the power cut');
  const next = await s.append(pkt(99));
  t.ok(next.seq > Math.max(...resolved), `the next seq (${next.seq}) is above every resolved one`);
  await s.ack(next.seq);
  t.equal(s.stats().ackedSeq, s.stats().lastSeq, 'nothing wedges the ack point');
});

t.test('segment-store - random short writes never resolve a packet that is not whole on disk', async (t) => {
  const disk = new SimDisk({ rng: prng(7) });
  disk.faults.shortWriteP = 0.3;
  const s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  const resolved: number[] = [];
  for (let i = 0; i < 40; i++) resolved.push(...(await appendBatch(s, i * 5, 5)).ok);
  t.ok(disk.counts.shortWrites > 0, `short writes happened (${disk.counts.shortWrites})`);
  disk.faults.shortWriteP = 0;
  disk.kill('agent');
  const again = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.teardown(() => again.close());
  t.same(await readAllSeqs(again), resolved, `every one of the ${resolved.length} resolved packets is there, and nothing else`);
});

t.test('segment-store - a roll cut short after the new segment named its seqs leaves no phantom seq (reject policy stays usable)', async (t) => {
  const disk = new SimDisk({ rng: prng(3) });
  let firstSegment = '';
  let armed = false;
  // Once armed, a new segment gets its header and ack state, but no packet write lands in it:
  // the batch that rolled fails between starting the segment and writing into it.
  const files = failing(disk.process('agent'), (op, path, position) => {
    if (op === 'open' && path.endsWith('.seg') && !firstSegment) firstSegment = path;
    return armed && op === 'write' && path.endsWith('.seg') && path !== firstSegment && position !== 0;
  });
  const opts = { ...base, fullPolicy: 'reject' as const, bytesMax: 16 * 1024 };
  let s = await SegmentStore.open({ ...opts, files });
  armed = true;
  const resolved: number[] = [];
  let refused = 0;
  for (let i = 0; refused === 0 && i < 100; i++) {
    const r = await appendBatch(s, i * 3, 3);
    resolved.push(...r.ok);
    refused += r.refused.length;
  }
  t.ok(refused > 0, 'the batch that rolled was refused');
  disk.kill('agent');
  armed = false;
  s = await SegmentStore.open({ ...opts, files: disk.process('agent') });
  t.teardown(() => s.close());
  t.same(await readAllSeqs(s), resolved, 'the resolved packets are there');
  for (const seq of resolved) await s.ackOne(seq);
  t.equal(s.stats().ackedSeq, s.stats().lastSeq, `acking every resolved packet moves ackedSeq to lastSeq (${s.stats().ackedSeq} of ${s.stats().lastSeq})`);
  t.equal(s.stats().dropped.oldest + s.stats().dropped.corrupt, 0, 'no drop is counted for packets that never existed');
  let accepted = 0;
  for (let i = 0; i < 200; i++) accepted += (await appendBatch(s, 2000 + i, 1)).ok.length;
  t.ok(accepted > 20, `the emptied store accepts appends again (${accepted})`);
});

t.test('segment-store - a roll whose new segment cannot be created does not block later appends', async (t) => {
  const disk = new SimDisk({ rng: prng(5) });
  let failOpen = false;
  const files = failing(disk.process('agent'), (op, path) => failOpen && op === 'open' && path.endsWith('.seg'));
  const s = await SegmentStore.open({ ...base, files });
  failOpen = true;
  let refused = 0;
  const resolved: number[] = [];
  // Batches of 3 straddle the segment's end: the records that fit are sealed with the trailer,
  // then the next segment cannot start.
  for (let i = 0; i < 100 && refused === 0; i++) {
    const r = await appendBatch(s, i * 3, 3);
    resolved.push(...r.ok);
    refused += r.refused.length;
  }
  t.ok(refused > 0, 'an append that needed a new segment was refused');
  failOpen = false;
  const after = await appendBatch(s, 500, 5);
  t.equal(after.ok.length, 5, 'appends succeed again without a restart');
  t.same(await readAllSeqs(s), [...resolved, ...after.ok], 'exactly the resolved packets can be read: none refused, none lost');
  await s.close();
});

t.test('segment-store - packets sealed into a segment before the next one failed to start resolve; a restart brings back no refused append', async (t) => {
  const disk = new SimDisk({ rng: prng(5) });
  let failOpen = false;
  const s = await SegmentStore.open({ ...base, files: failing(disk.process('agent'), (op, path) => failOpen && op === 'open' && path.endsWith('.seg')) });
  failOpen = true;
  const resolved: number[] = [];
  for (let i = 0, refused = 0; i < 100 && refused === 0; i++) {
    const r = await appendBatch(s, i * 3, 3);
    resolved.push(...r.ok);
    refused += r.refused.length;
  }
  disk.kill('agent');
  const again = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.teardown(() => again.close());
  t.same(await readAllSeqs(again), resolved, 'after a restart, exactly the resolved packets are there');
});

t.test('segment-store - a failed batch between good ones leaves a gap that is done after a power cut, never reused for a resolved seq', async (t) => {
  const disk = new SimDisk({ rng: prng(11) });
  let fail = false;
  let s = await SegmentStore.open({ ...base, files: failing(disk.process('agent'), (op) => fail && op === 'write') });
  const a = await appendBatch(s, 0, 3);
  fail = true;
  const b = await appendBatch(s, 3, 3);
  fail = false;
  const c = await appendBatch(s, 6, 3);
  t.same(b.ok, []);
  disk.powerCut();
  s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.teardown(() => s.close());
  const resolved = [...a.ok, ...c.ok];
  t.same(await readAllSeqs(s), resolved);
  for (const seq of resolved) await s.ackOne(seq);
  t.equal(s.stats().ackedSeq, s.stats().lastSeq, 'the failed seqs do not hold back ackedSeq');
  const next = await s.append(pkt(50));
  t.notOk(resolved.includes(next.seq), 'no resolved seq is handed out again');
});

t.test('segment-store - renumberAbove cut by a power cut at any point leaves either the old store or the renumbered one, never a loss or a mix', async (t) => {
  const seed = Number(process.env.SEED ?? 1);
  t.comment(`seeds ${seed}..${seed + 59} (SEED= sets the first)`);
  const outcomes = { old: 0, renumbered: 0 };
  for (let k = 0; k < 60; k++) {
    const rng = prng(seed + k);
    const disk = new SimDisk({ rng });
    let s = await SegmentStore.open({ ...base, files: disk.process('agent') });
    const seqs = (await appendBatch(s, 0, 30)).ok;
    for (const seq of seqs.filter(() => rng() < 0.3)) await s.ackOne(seq);
    await new Promise((r) => setTimeout(r, 5)); // the acks reach the disk
    const before = (await s.readAfter(0, 1000)).map((p) => (p.data as { i: number }).i);
    const renumber = s.renumberAbove(1000).catch(() => -1);
    for (let turns = Math.floor(rng() * 40); turns > 0; turns--) await new Promise((r) => setImmediate(r));
    disk.powerCut();
    void renumber;
    s = await SegmentStore.open({ ...base, files: disk.process('agent') });
    const after = await s.readAfter(0, 1000);
    t.same(after.map((p) => (p.data as { i: number }).i), before, `seed ${seed + k}: the same packets, in the same order`);
    const renumbered = after.every((p) => p.seq > 1000);
    t.ok(renumbered || after.every((p) => p.seq <= 30), `seed ${seed + k}: all old seqs or all renumbered, never a mix`);
    outcomes[renumbered ? 'renumbered' : 'old']++;
    const next = await s.append(pkt(99));
    t.ok(next.seq > Math.max(0, ...after.map((p) => p.seq)), `seed ${seed + k}: the next seq is above every stored one`);
    await s.close();
  }
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`);
  t.ok(outcomes.old > 0 && outcomes.renumbered > 0, 'the power cuts fell both before and after the switch');
});

t.test('segment-store - a fresh empty store renumbered above the gateway keeps what it appends afterwards (found by the simulator, seed 1217)', async (t) => {
  const disk = new SimDisk({ rng: prng(17) });
  let s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.equal(await s.renumberAbove(12), 0);
  const after = await appendBatch(s, 0, 40);
  t.ok(after.ok.every((seq) => seq > 12), 'new seqs lie above the gateway\'s');
  disk.powerCut();
  s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.teardown(() => s.close());
  t.same(await readAllSeqs(s), after.ok, 'every packet appended after the renumbering survives a power cut');
});

t.test('segment-store - a bit flipped while recovery reads the last record (not on the disk) does not cut it as a torn tail (found by the simulator, seed 3720616473)', async (t) => {
  const disk = new SimDisk({ rng: prng(23) });
  let s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  const first = await appendBatch(s, 0, 5);
  disk.kill('agent');
  const files = disk.process('agent');
  let flipped = 0;
  // The first read that reaches the end of a segment returns its last byte flipped.
  const flipping = hookFiles(files, {
    handle: (fh, path) => ({
      read: async (buf, off, len, pos) => {
        const n = await fh.read(buf, off, len, pos);
        if (flipped === 0 && path.endsWith('.seg') && n > 32 && pos + n === (await fh.size())) {
          buf[off + n - 1]! ^= 0x01;
          flipped++;
        }
        return n;
      },
    }),
  });
  s = await SegmentStore.open({ ...base, files: flipping });
  t.teardown(() => s.close());
  t.equal(flipped, 1, 'a bit was flipped on the way');
  t.same(await readAllSeqs(s), first.ok, 'every durable packet is still there');
  t.equal(s.stats().recovery.tailBytesCut, 0, 'nothing was cut');
  t.ok((await s.append(pkt(9))).seq > Math.max(...first.ok), 'no seq is handed out again');
});

t.test('segment-store - seqs of a refused append are told done (durableAckedSeq) only once that is on disk, so none told done is handed out again (found by the simulator, seed 2568150492)', async (t) => {
  const disk = new SimDisk({ rng: prng(29) });
  let fail = false;
  let s = await SegmentStore.open({ ...base, files: failing(disk.process('agent'), (op) => fail && op === 'write') });
  const ok = await appendBatch(s, 0, 3);
  for (const seq of ok.ok) await s.ackOne(seq);
  await new Promise((r) => setTimeout(r, 20)); // the ack state reaches the disk
  t.equal(s.stats().durableAckedSeq, 3);
  fail = true;
  const refused = await appendBatch(s, 3, 2);
  t.same(refused.ok, []);
  t.equal(s.stats().ackedSeq, 5, 'in memory the refused seqs are done');
  t.equal(s.stats().durableAckedSeq, 3, 'but not told: a power cut now would hand them out again');
  fail = false;
  await new Promise((r) => setTimeout(r, 20));
  t.equal(s.stats().durableAckedSeq, 5, 'told once the ack state is on disk');
  disk.powerCut();
  s = await SegmentStore.open({ ...base, files: disk.process('agent') });
  t.teardown(() => s.close());
  t.ok((await s.append(pkt(9))).seq > 5, 'and then none of them is handed out again');
});
