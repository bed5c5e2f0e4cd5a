/**
 * The dispatch log over SimDisk (test/sim/sim-disk.ts): short writes, a full disk, EIO, failed
 * compactions and reopens, kills and power cuts; and the bounds `admit` keeps.
 */
import t from 'tap';
import type { Files } from '../../common/files.js';
import { silentLog } from '../../common/log.js';
import { scanRecords } from '../../common/record.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';
import { eio, hookFiles } from '../helpers/files-hooks.js';

const dir = '/gw/data';
const file = `${dir}/dispatched.log`;

const settle = <T>(p: Promise<T>): Promise<'ok' | string> => p.then(() => 'ok', (e: NodeJS.ErrnoException) => e.code ?? 'error');

t.test('dispatch-log - short writes are finished: a batch that resolved is whole on disk', async (t) => {
  const disk = new SimDisk({ rng: new Rng(1).fn, faults: { shortWriteP: 1 } });
  const d = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  await Promise.all(['a', 'b', 'c', 'd'].map((a) => d.record(a, 1)));
  t.ok(disk.counts.shortWrites > 0, 'writes were short');
  await d.close();
  const e = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  t.same(['a', 'b', 'c', 'd'].map((a) => e.has(a, 1)), [true, true, true, true], 'every record that resolved is there after a reopen');
  await e.close();
});

t.test('dispatch-log - a batch cut short by a full disk is rejected whole, cut back, and later records survive', async (t) => {
  const disk = new SimDisk({ rng: new Rng(2).fn });
  const d = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  await d.record('a', 1);
  const before = disk.readCurrent(file)!.length;
  disk.faults.bytesBudget = disk.usedBytes() + 20; // part of the next batch's records
  const outcomes = await Promise.all(['x', 'y', 'z'].map((a) => settle(d.record(a, 1))));
  t.same(outcomes, ['ENOSPC', 'ENOSPC', 'ENOSPC'], 'every record of the batch is rejected');
  t.same(['x', 'y', 'z'].map((a) => d.has(a, 1)), [false, false, false], 'and not claimed in memory');
  t.equal(disk.readCurrent(file)!.length, before, 'the file is cut back to its last whole record');
  disk.faults.bytesBudget = null;
  await d.record('a', 2);
  await d.close();
  const e = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  t.equal(e.floor('a'), 2, 'a record after the failed batch is readable after a reopen (not behind a torn one)');
  await e.close();
});

/** `files` with `open` of `path` and `syncDir` failing while the flags say so. */
function failing(files: Files, flags: { open: boolean; syncDir: boolean }): Files {
  const eio = (what: string): Promise<never> => Promise.reject(Object.assign(new Error(`EIO: ${what}`), { code: 'EIO' }));
  return {
    open: (p, o) => (flags.open && p === file ? eio('open') : files.open(p, o)),
    readFile: (p) => files.readFile(p), rename: (a, b) => files.rename(a, b), unlink: (p) => files.unlink(p), mkdir: (p) => files.mkdir(p),
    readdir: (p) => files.readdir(p), syncDir: (p) => (flags.syncDir ? eio('fsync') : files.syncDir(p)), lock: (p) => files.lock(p),
  };
}

t.test('dispatch-log - a failed reopen after compaction does not close the log for good', async (t) => {
  const disk = new SimDisk({ rng: new Rng(3).fn });
  const flags = { open: false, syncDir: false };
  const d = await DispatchLog.open(dir, silentLog, { files: failing(disk.process('gw'), flags), compactBytes: 200 });
  for (let s = 1; s <= 5; s++) await d.record('a', s * 2);
  flags.open = true; // the snapshot's tmp file opens; reopening dispatched.log after the rename fails
  // Records go on until the compaction ran (records queued behind it may fail: the file cannot be opened).
  for (let s = 6; s <= 30 && disk.readCurrent(file)!.length > 100; s++) await d.record('a', s * 2).catch(() => undefined);
  t.ok(disk.readCurrent(file)!.length < 200, 'compacted');
  t.equal(await settle(d.record('a', 100)), 'EIO', 'while the file cannot be opened, records fail');
  flags.open = false;
  t.equal(await settle(d.record('a', 102)), 'ok', 'once it can, the log recovers by itself');
  t.equal(await settle(d.record('a', 104)), 'ok');
  await d.close();
  const e = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  t.same([2, 10, 100, 102, 104].map((s) => e.has('a', s)), [true, true, false, true, true], 'and what it recorded is in the file the path names');
  await e.close();
});

t.test('dispatch-log - a compaction that fails after its rename never leaves appends going to the replaced file', async (t) => {
  const disk = new SimDisk({ rng: new Rng(4).fn });
  const flags = { open: false, syncDir: false };
  const d = await DispatchLog.open(dir, silentLog, { files: failing(disk.process('gw'), flags), compactBytes: 200 });
  for (let s = 1; s <= 5; s++) await d.record('a', s * 2);
  flags.syncDir = true; // the rename happens, its directory fsync fails
  let s = 6;
  for (; disk.readCurrent(file)!.length > 100; s++) await d.record('a', s * 2).catch(() => undefined);
  flags.syncDir = false;
  t.equal(await settle(d.record('a', 1001)), 'ok');
  await d.close();
  disk.powerCut();
  const e = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  t.ok(e.has('a', 1001), 'a record made after the failed compaction survives a reopen and a power cut');
  t.ok(e.has('a', 2), 'and so do the ones before it');
  await e.close();
});

t.test('dispatch-log - admit bounds the agents and the gaps per agent, never forgetting what was recorded', async (t) => {
  const disk = new SimDisk({ rng: new Rng(5).fn });
  const d = await DispatchLog.open(dir, silentLog, { files: disk.process('gw'), agentsMax: 2, rangesPerAgentMax: 2 });
  t.same(d.admit('a', 1), { ok: true });
  await d.record('a', 1);
  await d.record('b', 1);
  const c = d.admit('c', 1);
  t.equal(c.ok ? null : c.code, 'AGENTS_MAX', 'a third agent is refused');
  d.raiseFloor('c', 10);
  t.equal(d.agents, 2, 'a raised floor of a refused agent adds no state');
  t.same(d.admit('a', 5), { ok: true }, 'a known agent is admitted');
  await d.record('a', 5);
  await d.record('a', 8);
  t.equal(d.gaps('a'), 2);
  const far = d.admit('a', 20);
  t.equal(far.ok ? null : far.code, 'TARGET_BUSY', 'a seq that would open a third gap is refused');
  t.ok(!far.ok && far.retryAfterMs > 0, 'for later');
  t.same([2, 4, 6, 9, 8].map((s) => d.admit('a', s).ok), [true, true, true, true, true], 'seqs that extend the floor or a range still get through');
  await d.record('a', 20); // a record is always taken (its handler ran)
  t.ok(d.has('a', 20));
  for (const s of [2, 3, 4, 6, 7]) await d.record('a', s);
  t.same(d.admit('a', 30), { ok: true }, 'closing gaps makes room again');
  await d.close();
  const e = await DispatchLog.open(dir, silentLog, { files: disk.process('gw'), agentsMax: 2 });
  t.same([e.floor('a'), e.floor('b'), e.agents], [8, 1, 2], 'state survives a reopen');
  await e.close();
});

/**
 * A stream of records over a disk that tears writes, fills up, fails with EIO (write, sync,
 * open), compacts often, and is killed or loses power at random: every record that resolved must
 * be there after a reopen, and the file must hold nothing after its last valid record.
 */
t.test('dispatch-log - a random stream with faults, kills and power cuts loses no record that resolved', async (t) => {
  const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.comment(`SEED=${seed}`);
  const rng = new Rng(seed);
  const disk = new SimDisk({ rng: rng.fork('disk').fn });
  const quiet = { shortWriteP: 0, writeEioP: 0, syncEioP: 0, openEioP: 0, bytesBudget: null };
  const acked: [string, number][] = [];
  let rejected = 0;
  for (let round = 0; round < 40; round++) {
    Object.assign(disk.faults, quiet);
    disk.disarmCrash();
    const d = await DispatchLog.open(dir, silentLog, { files: disk.process('gw'), compactBytes: rng.pick([150, 600, 100_000]) });
    const valid = scanRecords(disk.readCurrent(file)!);
    t.equal(valid.validBytes, disk.readCurrent(file)!.length, `round ${round}: after open the file holds only valid records (SEED=${seed})`);
    for (const [a, s] of acked) if (!d.has(a, s)) t.fail(`round ${round}: ${a}:${s} resolved but is gone (SEED=${seed})`);
    Object.assign(disk.faults, { shortWriteP: 0.3, writeEioP: 0.05, syncEioP: 0.05, openEioP: 0.1, bytesBudget: rng.chance(0.3) ? disk.usedBytes() + rng.int(0, 400) : null });
    const how = rng.chance(0.5) ? 'kill' : 'power';
    if (rng.chance(0.7)) disk.crashBeforeStep(rng.int(1, 300), () => (how === 'kill' ? disk.kill('gw') : disk.powerCut()));
    let settled = 0;
    const n = rng.int(1, 40);
    for (let i = 0; i < n; i++) {
      const a = rng.pick(['a', 'b', 'c']);
      const s = rng.int(1, 200);
      d.record(a, s).then(() => acked.push([a, s]), () => rejected++).finally(() => settled++);
      if (rng.chance(0.2)) d.raiseFloor(a, rng.int(0, 5));
      if (rng.chance(0.3)) await new Promise((r) => setImmediate(r));
    }
    while (settled < n && disk.isAlive('gw')) await new Promise((r) => setImmediate(r));
    disk.disarmCrash(); // a cut during close would leave it waiting forever
    if (disk.isAlive('gw')) {
      if (rng.chance(0.5)) await d.close().catch(() => undefined);
      else disk.kill('gw');
    }
  }
  Object.assign(disk.faults, quiet);
  const d = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  const lost = acked.filter(([a, s]) => !d.has(a, s)).map(([a, s]) => `${a}:${s}`);
  t.same(lost, [], `every record that resolved is there (${acked.length} resolved, ${rejected} rejected; SEED=${seed})`);
  t.ok(rejected > 0 && disk.counts.shortWrites > 0, 'faults were injected');
  await d.close();
});

t.test('dispatch log - a bit flipped while the log is read at open (not on the disk) does not cut the records after it (found by the simulator, seed 102960)', async (t) => {
  const disk = new SimDisk({ rng: new Rng(5).fn });
  let d = await DispatchLog.open(dir, silentLog, { files: disk.process('gw') });
  for (let seq = 1; seq <= 20; seq += 2) await d.record('a', seq);
  disk.kill('gw');
  const files = disk.process('gw');
  let flipped = 0;
  const flipping = hookFiles(files, {
    handle: (fh) => ({
      read: async (buf, off, len, pos) => {
        const n = await fh.read(buf, off, len, pos);
        if (flipped === 0 && n > 40) {
          buf[off + 20]! ^= 0x10; // inside an early record
          flipped++;
        }
        return n;
      },
    }),
  });
  d = await DispatchLog.open(dir, silentLog, { files: flipping });
  t.teardown(() => d.close());
  t.equal(flipped, 1, 'a bit was flipped on the way');
  for (let seq = 1; seq <= 20; seq += 2) t.ok(d.has('a', seq), `seq ${seq} is still recorded`);
});

t.test('dispatch log - a handed-over mark asked for while its write fails settles (rejects) and nothing spins on empty writes (found by review)', async (t) => {
  const disk = new SimDisk({ rng: new Rng(9).fn });
  const files = disk.process('gw');
  let gate: { p: Promise<void> } | null = null;
  let writes = 0;
  const gated = hookFiles(files, {
    handle: (fh) => ({
      writeAll: async (buf, pos) => {
        writes++;
        if (gate) {
          const g = gate;
          gate = null;
          await g.p;
          throw eio();
        }
        return fh.writeAll(buf, pos);
      },
    }),
  });
  const d = await DispatchLog.open(dir, silentLog, { files: gated });
  t.teardown(() => d.close());
  let release!: () => void;
  gate = { p: new Promise((r) => (release = r)) };
  const w1 = d.noteHandedOver('a', 1)!;
  const w1done = w1.then(() => 'resolved', () => 'rejected');
  await new Promise((r) => setTimeout(r, 20)); // the mark's write has started
  const w2 = d.noteHandedOver('a', 2);
  t.ok(w2, 'the second waits for a mark too');
  const w2done = w2!.then(() => 'resolved', () => 'rejected');
  release();
  t.equal(await w1done, 'rejected');
  t.equal(await w2done, 'rejected', 'the second settles with the failed write instead of waiting forever');
  const writesAfter = writes;
  await new Promise((r) => setTimeout(r, 50));
  t.equal(writes, writesAfter, 'no writes go on after it');
  const w3 = d.noteHandedOver('a', 3);
  await w3;
  t.ok(d.seen('a') >= 3, 'a later mark is written once the disk works');
});
