/**
 * The agent's durable answered-message record (agent/downlink/answered-log.ts) over SimDisk
 * (test/sim/sim-disk.ts) and real files: restarts, a torn tail, failed writes, compaction,
 * group commit, power cuts.
 */
import t from 'tap';
import { mkdtemp, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answeredFileName, DurableAnsweredLog } from '../../agent/downlink/answered-log.js';
import type { Files } from '../../common/files.js';
import { silentLog } from '../../common/log.js';
import { realFiles } from '../../common/real-files.js';
import { frameRecord, scanRecords } from '../../common/record.js';
import type { DownResult } from '../../protocol/frames.js';
import { eio, hookFiles } from '../helpers/files-hooks.js';
import { testSeed } from '../helpers/seed.js';
import { Rng } from '../sim/rng.js';
import { until } from '../helpers/wait.js';
import { SimDisk } from '../sim/sim-disk.js';

const dir = '/agent/data/downlink';
const path = `${dir}/${answeredFileName}`;
const ok = (i: number): DownResult => ({ id: `m${i}`, ok: true });
const no = (i: number): DownResult => ({ id: `m${i}`, ok: false, code: 'DOWNLINK_REFUSED', reason: `no ${i}` });
const open = (files: Files, idsMax = 100): Promise<DurableAnsweredLog> => DurableAnsweredLog.open({ dir, files, idsMax, log: silentLog });

t.test('answered log - a restart keeps every recorded verdict, accepted and refused', async (t) => {
  const disk = new SimDisk({ rng: new Rng(1).fn });
  const a = await open(disk.process('agent'));
  await a.record(ok(1));
  await a.record(no(2));
  t.same(a.get('m1'), ok(1));
  await a.close();
  const b = await open(disk.process('agent'));
  t.same(b.get('m1'), ok(1));
  t.same(b.get('m2'), no(2), 'the refusal keeps its code and reason');
  t.equal(b.get('m3'), undefined, 'an ID never recorded is unknown');
  t.equal(b.size, 2);
  await b.close();
});

t.test('answered log - a verdict that resolved survives a power cut; the directory entry too', async (t) => {
  const disk = new SimDisk({ rng: new Rng(2).fn });
  const a = await open(disk.process('agent'));
  await a.record(ok(1));
  disk.powerCut();
  const b = await open(disk.process('agent'));
  t.same(b.get('m1'), ok(1));
  await b.close();
});

t.test('answered log - a torn tail is cut at open, and a verdict recorded after it is read back', async (t) => {
  const disk = new SimDisk({ rng: new Rng(3).fn });
  const a = await open(disk.process('agent'));
  await a.record(ok(1));
  await a.record(ok(2));
  await a.close();
  const whole = disk.readCurrent(path)!;
  // A crash in the middle of the third record's write: its header and part of its body.
  const torn = frameRecord(Buffer.from('a record cut short by a crash')).subarray(0, 15);
  const fh = await disk.process('agent').open(path, { append: true });
  await fh.writeAll(torn, null);
  await fh.datasync();
  await fh.close();
  const b = await open(disk.process('agent'));
  t.same([b.get('m1'), b.get('m2')], [ok(1), ok(2)], 'the records before the tear are kept');
  t.equal(disk.readCurrent(path)!.length, whole.length, 'the tail is cut');
  await b.record(ok(3));
  await b.close();
  const c = await open(disk.process('agent'));
  t.same(c.get('m3'), ok(3), 'a record written after the cut is not hidden behind the torn one');
  t.equal(scanRecords(disk.readCurrent(path)!).validBytes, disk.readCurrent(path)!.length, 'the file is whole records only');
  await c.close();
});

t.test('answered log - a failed write rejects record, is not learned, is cut back; the next record works', async (t) => {
  const disk = new SimDisk({ rng: new Rng(4).fn });
  const a = await open(disk.process('agent'));
  await a.record(ok(1));
  const before = disk.readCurrent(path)!.length;
  disk.faults.writeEioP = 1;
  await t.rejects(a.record(ok(2)), { code: 'EIO' });
  t.equal(a.get('m2'), undefined, 'memory does not learn what was not written');
  t.equal(disk.readCurrent(path)!.length, before, 'cut back to the last whole record');
  disk.faults.writeEioP = 0;
  await a.record(ok(3));
  await a.close();
  const b = await open(disk.process('agent'));
  t.same([b.get('m1'), b.get('m2'), b.get('m3')], [ok(1), undefined, ok(3)]);
  await b.close();
});

t.test('answered log - a failed sync rejects record: the verdict is not trusted', async (t) => {
  const disk = new SimDisk({ rng: new Rng(5).fn });
  const a = await open(disk.process('agent'));
  disk.faults.syncEioP = 1;
  await t.rejects(a.record(ok(1)), { code: 'EIO' });
  t.equal(a.get('m1'), undefined);
  disk.faults.syncEioP = 0;
  await a.record(ok(2));
  t.same(a.get('m2'), ok(2));
  await a.close();
});

t.test('answered log - when the cut after a failed write fails too, the next record reopens the file and is readable', async (t) => {
  const disk = new SimDisk({ rng: new Rng(6).fn });
  let failWrite = false;
  const files = hookFiles(disk.process('agent'), {
    handle: (fh) => ({
      // A write that leaves half its bytes and fails, then a cut that fails: a torn tail stays.
      writeAll: async (b, p) => {
        if (!failWrite) return fh.writeAll(b, p);
        await fh.writeAll(b.subarray(0, Math.floor(b.length / 2)), p);
        throw eio();
      },
      truncate: (n) => (failWrite ? Promise.reject(eio()) : fh.truncate(n)),
    }),
  });
  const a = await open(files);
  await a.record(ok(1));
  failWrite = true;
  await t.rejects(a.record(ok(2)), { code: 'EIO' });
  failWrite = false;
  await a.record(ok(3));
  t.same(a.get('m3'), ok(3));
  await a.close();
  const b = await open(disk.process('agent'));
  t.same([b.get('m1'), b.get('m2'), b.get('m3')], [ok(1), undefined, ok(3)], 'the half record was cut before the next one');
  await b.close();
});

t.test('answered log - verdicts recorded together share one write and one sync', async (t) => {
  const disk = new SimDisk({ rng: new Rng(7).fn });
  const a = await open(disk.process('agent'));
  await Promise.all([1, 2, 3, 4, 5].map((i) => a.record(ok(i))));
  t.equal(a.syncs, 1, 'one batch');
  await a.record(ok(6));
  t.equal(a.syncs, 2);
  t.equal(a.size, 6);
  await a.close();
});

t.test('answered log - compaction keeps the newest idsMax, bounds the file, and survives a restart', async (t) => {
  const disk = new SimDisk({ rng: new Rng(8).fn });
  const idsMax = 10;
  const a = await open(disk.process('agent'), idsMax);
  for (let i = 1; i <= 45; i++) {
    await a.record(i % 3 === 0 ? no(i) : ok(i));
    t.ok(scanRecords(disk.readCurrent(path)!).bodies.length <= 2 * idsMax, `the file holds at most 2 × idsMax records after ${i}`);
  }
  t.ok(a.compactions >= 2, 'it compacted');
  t.equal(a.size, idsMax);
  t.equal(a.get('m35'), undefined, 'older than the newest idsMax: forgotten');
  for (let i = 36; i <= 45; i++) t.same(a.get(`m${i}`), i % 3 === 0 ? no(i) : ok(i), `m${i} kept`);
  // A repeat moves its ID to the newest end: it outlives IDs recorded before it.
  await a.record(ok(36));
  for (let i = 46; i <= 54; i++) await a.record(ok(i));
  t.same(a.get('m36'), ok(36), 'recorded again: kept');
  t.equal(a.get('m37'), undefined, 'not recorded again: forgotten');
  await a.close();
  disk.powerCut();
  const b = await open(disk.process('agent'), idsMax);
  t.equal(b.size, idsMax);
  t.same(b.get('m36'), ok(36));
  for (let i = 46; i <= 54; i++) t.same(b.get(`m${i}`), ok(i));
  t.equal(b.get('m37'), undefined);
  t.same(disk.list(dir), [answeredFileName], 'no temporary file left');
  await b.close();
});

t.test('answered log - a kill or a power cut at any step of a record and its compaction loses nothing; a leftover temporary file is removed at open', async (t) => {
  const idsMax = 4;
  let withTmp = 0;
  for (const crash of ['kill', 'powerCut'] as const) for (let step = 1; step <= 60; step++) {
    const disk = new SimDisk({ rng: new Rng(100 + step).fn });
    const a = await open(disk.process('agent'), idsMax);
    for (let i = 1; i <= 7; i++) await a.record(ok(i));
    // The 8th record brings the file to 2 × idsMax: the compaction follows it.
    let cut = false;
    disk.crashBeforeStep(step, () => {
      cut = true;
      if (crash === 'kill') disk.kill('agent');
      else disk.powerCut();
    });
    void a.record(ok(8)).catch(() => undefined);
    await until(() => cut || a.compactions === 1, `step ${step}: the cut or the compaction`);
    disk.disarmCrash();
    if (!cut) {
      t.ok(step > 5, `${crash}: the cuts covered a record and a compaction (${step - 1} steps)`);
      break; // past the last step of the compaction
    }
    if (disk.list(dir)!.includes(`${answeredFileName}.tmp`)) withTmp++;
    const b = await open(disk.process('agent'), idsMax);
    for (let i = 5; i <= 7; i++) t.same(b.get(`m${i}`), ok(i), `${crash} at step ${step}: m${i} known`);
    t.ok(b.get('m4') !== undefined || b.get('m8') !== undefined, `${crash} at step ${step}: m4 known, or m8 made it and m4 is the oldest beyond idsMax`);
    t.same(disk.list(dir), [answeredFileName], `${crash} at step ${step}: only the log is left`);
    await b.close();
  }
  t.ok(withTmp > 0, `some cuts fell inside the compaction, leaving its temporary file (${withTmp})`);
});

t.test('answered log - a failed compaction loses nothing and is tried again later', async (t) => {
  const disk = new SimDisk({ rng: new Rng(9).fn });
  let failTmp = true;
  const files = hookFiles(disk.process('agent'), {
    open: (p) => {
      if (failTmp && p.endsWith('.tmp')) throw eio();
    },
  });
  const idsMax = 5;
  const a = await open(files, idsMax);
  for (let i = 1; i <= 12; i++) await a.record(ok(i));
  t.equal(a.compactions, 0, 'compaction failed');
  for (let i = 8; i <= 12; i++) t.same(a.get(`m${i}`), ok(i));
  t.ok(scanRecords(disk.readCurrent(path)!).bodies.length >= 10, 'the log still holds its records');
  failTmp = false;
  for (let i = 13; i <= 16; i++) await a.record(ok(i));
  t.equal(a.compactions, 1, 'compacted once idsMax more were recorded');
  await a.close();
  const b = await open(disk.process('agent'), idsMax);
  for (let i = 12; i <= 16; i++) t.same(b.get(`m${i}`), ok(i));
  await b.close();
});

t.test('answered log - power cuts at random steps: every verdict whose record resolved is known after recovery', async (t) => {
  const seed = testSeed(t.comment);
  const rng = new Rng(seed);
  const disk = new SimDisk({ rng: rng.fn, faults: { shortWriteP: 0.3 } });
  const idsMax = 8;
  // Every ID ever given to `record`, in order, and those whose record resolved. A record that
  // never resolved may survive the cut too (its bytes were written): then it counts among the
  // newest idsMax, so a resolved one may be forgotten only behind idsMax known IDs recorded after it.
  const attempted: string[] = [];
  const resolved = new Set<string>();
  let next = 1;
  for (let round = 0; round < 30; round++) {
    const a = await open(disk.process('agent'), idsMax);
    const known = attempted.map((id, i) => ({ id, i })).filter(({ id }) => a.get(id) !== undefined);
    t.ok(a.size <= idsMax, `round ${round}: at most idsMax known`);
    for (const [i, id] of attempted.entries()) {
      if (!resolved.has(id)) continue;
      if (a.get(id) !== undefined) {
        t.same(a.get(id), { id, ok: true });
        continue;
      }
      const knownAfter = known.filter((k) => k.i > i).length;
      t.ok(knownAfter >= idsMax, `round ${round}: ${id} resolved, forgotten only behind ${idsMax} newer IDs (${knownAfter})`);
    }
    let cut = false;
    let onCut!: (v: null) => void;
    const cutP = new Promise<null>((r) => (onCut = r));
    disk.crashBeforeStep(1 + Math.floor(rng.fn() * 40), () => {
      cut = true;
      disk.powerCut();
      onCut(null);
    });
    while (!cut) {
      const batch = Array.from({ length: 1 + Math.floor(rng.fn() * 3) }, () => ok(next++));
      attempted.push(...batch.map((r) => r.id));
      const settled = await Promise.race([Promise.allSettled(batch.map((r) => a.record(r).then(() => r))), cutP]);
      if (settled === null) break; // the process died mid-write: its promises never settle
      for (const s of settled) if (s.status === 'fulfilled') resolved.add(s.value.id);
    }
    disk.disarmCrash();
  }
  t.ok(resolved.size > 30, `records resolved between the cuts (${resolved.size})`);
});

t.test('answered log - real files: restart keeps answers; the file lives at DIR/answered.log', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'ferry-answered-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const d = join(base, 'downlink');
  const a = await DurableAnsweredLog.open({ dir: d, files: realFiles, idsMax: 4, log: silentLog });
  await a.record(no(1));
  await a.close();
  t.ok((await stat(join(d, answeredFileName))).size > 0);
  // Garbage appended (a torn tail of another kind): cut, the record before it kept.
  await appendFile(join(d, answeredFileName), Buffer.from([0, 0, 0, 9, 1, 2]));
  const b = await DurableAnsweredLog.open({ dir: d, files: realFiles, idsMax: 4, log: silentLog });
  t.same(b.get('m1'), no(1));
  await b.close();
  // A foreign file at the path: only whole CRC-valid records count; nothing is learned from it.
  await writeFile(join(d, answeredFileName), 'not a log');
  const c = await DurableAnsweredLog.open({ dir: d, files: realFiles, idsMax: 4, log: silentLog });
  t.equal(c.size, 0);
  await c.close();
});
