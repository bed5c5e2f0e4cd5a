/**
 * SimDisk: the Files contract, then its fault model (power cuts at sector granularity, directory
 * entries, kills, the byte budget, EIO, bit flips, locks) and its determinism.
 * Randomized tests print their seed; replay with SEED=<seed>.
 */
import t from 'tap';
import type { FileHandle, Files } from '../../common/files.js';
import { prng, testSeed } from '../helpers/seed.js';
import { filesContract, type Test } from '../common/files-contract.js';
import { SimDisk, type SimDiskOptions } from './sim-disk.js';

filesContract(t, 'sim-disk', async () => {
  const files = new SimDisk({ rng: prng(1) }).process('p');
  await files.mkdir('/data');
  return { files, dir: '/data', cleanup: async () => undefined };
});

const sector = 512;
const fill = (byte: number, n: number): Buffer => Buffer.alloc(n, byte);

/** A disk with `/d` created and durable, and a process `p` on it. */
async function diskWithDir(opts: Partial<SimDiskOptions> & { seed?: number } = {}): Promise<{ disk: SimDisk; p: Files }> {
  const disk = new SimDisk({ rng: prng(opts.seed ?? 1), ...opts });
  const p = disk.process('p');
  await p.mkdir('/d');
  await p.syncDir('/');
  return { disk, p };
}

/** A file at `path` holding `data`, synced, its entry synced; the handle stays open. */
async function syncedFile(p: Files, path: string, data: Uint8Array): Promise<FileHandle> {
  const fh = await p.open(path, { create: true });
  await fh.writeAll(data, 0);
  await fh.datasync();
  await p.syncDir('/d');
  return fh;
}

/** True once `promise` settled; checked after a few turns of the event loop. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  return settled;
}

/**
 * How `got` is made of the sectors of `old` and `now` (each padded with zeros to `got`'s length):
 * per sector 'old', 'new', 'same' (both agree) or 'torn' (a prefix of new, the rest old); a
 * sector that is none of these is 'bad'.
 */
function sectorsOf(got: Buffer, old: Buffer, now: Buffer): string[] {
  const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc(Math.max(0, got.length - b.length))]).subarray(0, got.length);
  const [o, n] = [pad(old), pad(now)];
  const out: string[] = [];
  for (let s = 0; s < got.length; s += sector) {
    const [g, os, ns] = [got.subarray(s, s + sector), o.subarray(s, s + sector), n.subarray(s, s + sector)];
    if (os.equals(ns)) out.push(g.equals(os) ? 'same' : 'bad');
    else if (g.equals(os)) out.push('old');
    else if (g.equals(ns)) out.push('new');
    else {
      let k = 0;
      while (k < g.length && g[k] === ns[k]) k++;
      out.push(g.subarray(k).equals(os.subarray(k)) ? 'torn' : 'bad');
    }
  }
  return out;
}

t.test('sim-disk - power cut: synced bytes survive, unsynced ones are lost, kept or torn per sector', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const synced = fill(0x41, 4 * sector + 100);
  const rewritten = Buffer.concat([synced.subarray(0, sector), fill(0x42, 3 * sector + 100), fill(0x43, 2 * sector + 50)]);
  const seen = { allOld: 0, allNew: 0, mixed: 0, torn: 0, sizes: new Set<number>() };
  for (let i = 0; i < 200; i++) {
    const { disk, p } = await diskWithDir({ seed: seed + i });
    const fh = await syncedFile(p, '/d/f', synced);
    await fh.writeAll(rewritten, 0);
    disk.powerCut();
    const got = disk.readDurable('/d/f')!;
    t.equal(got.length === synced.length || got.length === rewritten.length || (got.length > synced.length && got.length % sector === 0), true, `size ${got.length} (seed ${seed + i})`);
    seen.sizes.add(got.length);
    t.ok(got.subarray(0, sector).equals(synced.subarray(0, sector)), 'the unchanged synced sector is intact');
    const kinds = sectorsOf(got, synced, rewritten);
    const changed = kinds.filter((k) => k !== 'same');
    if (kinds.includes('bad') || changed.slice(0, -1).includes('torn')) t.fail(`sectors ${kinds.join(' ')} (seed ${seed + i})`);
    if (changed.every((k) => k === 'old')) seen.allOld++;
    else if (changed.every((k) => k === 'new')) seen.allNew++;
    else seen.mixed++;
    if (changed.includes('torn')) seen.torn++;
    t.same(disk.readCurrent('/d/f'), got, 'after the cut, what is read is what is durable');
  }
  t.ok(seen.allOld > 0 && seen.allNew > 0 && seen.mixed > 0 && seen.torn > 0, `outcomes ${JSON.stringify({ ...seen, sizes: [...seen.sizes] })}`);
  t.ok(seen.sizes.has(synced.length) && seen.sizes.has(rewritten.length) && seen.sizes.size >= 3, 'an extension survives whole, not at all, or to a sector');
});

t.test('sim-disk - power cut: datasync and dsync writes survive every cut', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  for (let i = 0; i < 50; i++) {
    const { disk, p } = await diskWithDir({ seed: seed + i });
    const a = await syncedFile(p, '/d/a', fill(1, 3000));
    await a.writeAll(fill(2, 1000), 500);
    await a.datasync();
    const b = await p.open('/d/b', { create: true, dsync: true });
    await p.syncDir('/d');
    await b.writeAll(fill(3, 700), 0);
    await b.writeAll(fill(4, 700), null);
    disk.powerCut();
    t.same(disk.readCurrent('/d/a'), Buffer.concat([fill(1, 500), fill(2, 1000), fill(1, 1500)]));
    t.same(disk.readCurrent('/d/b'), Buffer.concat([fill(3, 700), fill(4, 700)]));
  }
});

t.test('sim-disk - power cut: a dsync write makes only its own bytes durable, not earlier unsynced ones', async (t) => {
  const { disk, p } = await diskWithDir();
  const fh = await p.open('/d/f', { create: true });
  await p.syncDir('/d');
  await fh.writeAll(fill(1, sector), 0);
  const ds = await p.open('/d/f', { dsync: true });
  await ds.writeAll(fill(2, sector), null);
  t.same(disk.readDurable('/d/f'), Buffer.concat([fill(0, sector), fill(2, sector)]), 'the first sector is not durable');
});

t.test('sim-disk - power cut: directory entries revert to what syncDir made durable', async (t) => {
  const { disk, p } = await diskWithDir();
  await syncedFile(p, '/d/kept', fill(1, 10));
  await syncedFile(p, '/d/moved', fill(2, 10));
  await syncedFile(p, '/d/gone', fill(3, 10));
  const fresh = await p.open('/d/new', { create: true });
  await fresh.writeAll(fill(4, 10), 0);
  await fresh.datasync(); // the data is durable, its entry is not
  await p.rename('/d/moved', '/d/renamed');
  await p.unlink('/d/gone');
  await p.mkdir('/d/sub');
  t.same(disk.list('/d'), ['kept', 'new', 'renamed', 'sub']);
  t.same(disk.list('/d', 'durable'), ['gone', 'kept', 'moved']);
  disk.powerCut();
  t.same(disk.list('/d'), ['gone', 'kept', 'moved'], 'the create and mkdir vanish, the rename and unlink are undone');
  t.same(disk.readCurrent('/d/moved'), fill(2, 10));
  t.same(disk.readCurrent('/d/gone'), fill(3, 10));

  const q = disk.process('p');
  await q.rename('/d/moved', '/d/renamed');
  await (await q.open('/d/new', { create: true })).close();
  await q.syncDir('/d');
  disk.powerCut();
  t.same(disk.list('/d'), ['gone', 'kept', 'new', 'renamed'], 'synced entries survive');

  const r = disk.process('p');
  await r.mkdir('/e/f');
  await (await r.open('/e/f/g', { create: true })).writeAll(fill(5, 700), 0);
  disk.syncAll();
  disk.powerCut();
  t.same(disk.readCurrent('/e/f/g'), fill(5, 700), 'syncAll made the new tree and its data durable');
});

t.test('sim-disk - kill: written data stays, the dead process never hears back, a new one starts fresh', async (t) => {
  const steps: (() => void)[] = [];
  const disk = new SimDisk({ rng: prng(1), schedule: (fn) => steps.push(fn) });
  const run = async <T>(promise: Promise<T>): Promise<T> => {
    let done = false;
    promise.then(
      () => (done = true),
      () => (done = true),
    );
    for (let idle = 0; !done; ) {
      const step = steps.shift();
      if (step !== undefined) step();
      else if (++idle > 100) throw new Error('never settled');
      else await new Promise((r) => setImmediate(r));
    }
    return promise;
  };
  const a = disk.process('a');
  const fh = await run(a.open('/f', { create: true }));
  await run(fh.writeAll(fill(1, 100), 0));

  const landed = fh.write(fill(2, 50), 100);
  steps.shift()!(); // the write takes effect; its answer is still queued
  disk.kill('a');
  const pending = fh.write(fill(3, 50), 150); // issued by the dead process: never runs
  while (steps.length > 0) steps.shift()!();
  t.equal(await settlesSoon(landed), false, 'the write that reached the disk never settles');
  t.equal(await settlesSoon(pending), false, 'an operation after death never settles');
  t.equal(await settlesSoon(a.readdir('/')), false, 'neither does any call on the dead process');
  t.same(disk.readCurrent('/f'), Buffer.concat([fill(1, 100), fill(2, 50)]), 'what it wrote stays; what it had not done is not done');
  t.notOk(disk.isAlive('a'));

  const b = disk.process('a');
  t.not(b, a, 'a fresh process of the same name');
  t.same(await run(b.readFile('/f')), Buffer.concat([fill(1, 100), fill(2, 50)]));
});

t.test('sim-disk - kill: an operation queued before the kill takes no effect', async (t) => {
  const steps: (() => void)[] = [];
  const disk = new SimDisk({ rng: prng(1), schedule: (fn) => steps.push(fn) });
  const a = disk.process('a');
  const made = a.mkdir('/x');
  disk.kill('a');
  while (steps.length > 0) steps.shift()!();
  t.equal(await settlesSoon(made), false);
  t.same(disk.list('/'), [], 'the mkdir never ran');
});

t.test('sim-disk - bytesBudget: a write that crosses it is short, the next one ENOSPC; truncate and unlink free space', async (t) => {
  const { disk, p } = await diskWithDir();
  disk.faults.bytesBudget = 100;
  const fh = await p.open('/d/a', { create: true });
  t.equal(await fh.write(fill(1, 60), 0), 60);
  t.equal(await fh.write(fill(2, 60), null), 40, 'short: up to the budget');
  await t.rejects(fh.write(fill(3, 10), null), { code: 'ENOSPC' }, 'no room at all');
  t.equal(await fh.write(fill(4, 10), 0), 10, 'an overwrite needs no room');
  t.equal(disk.usedBytes(), 100);
  await t.rejects(fh.writeAll(fill(5, 10), null), { code: 'ENOSPC' }, 'writeAll fails when no progress');
  await fh.truncate(70);
  t.equal(await fh.write(fill(6, 50), null), 30, 'truncate freed 30 bytes');
  const other = await p.open('/d/b', { create: true });
  await t.rejects(other.writeAll(fill(7, 1), 0), { code: 'ENOSPC' });
  await p.unlink('/d/a');
  t.equal(disk.usedBytes(), 100, 'an unlinked file still open keeps its space');
  await fh.close();
  t.equal(disk.usedBytes(), 0, 'closing it frees the space');
  await other.writeAll(fill(7, 100), 0);
  t.ok(disk.counts.enospc >= 3);
});

t.test('sim-disk - shortWriteP: a write writes a prefix of at least one byte; writeAll still completes', async (t) => {
  const { disk, p } = await diskWithDir();
  disk.faults.shortWriteP = 1;
  const fh = await p.open('/d/a', { create: true });
  const n = await fh.write(fill(1, 1000), 0);
  t.ok(n >= 1 && n < 1000, `short count ${n}`);
  t.equal(await fh.size(), n, 'exactly the count was written');
  await fh.writeAll(fill(2, 5000), 0);
  t.same(await p.readFile('/d/a'), fill(2, 5000));
  t.ok(disk.counts.shortWrites > 2);
});

t.test('sim-disk - EIO: open, write, sync and read fail as configured; a failed sync makes nothing durable', async (t) => {
  const { disk, p } = await diskWithDir();
  const fh = await syncedFile(p, '/d/a', fill(1, 100));
  disk.faults.writeEioP = 1;
  await t.rejects(fh.write(fill(2, 100), 0), { code: 'EIO' });
  t.ok(disk.readCurrent('/d/a')!.subarray(0, 100).every((b) => b === 1 || b === 2), 'a failed write may leave a prefix');
  disk.faults.writeEioP = 0;
  await fh.writeAll(fill(3, 100), 0);
  disk.faults.syncEioP = 1;
  await t.rejects(fh.datasync(), { code: 'EIO' });
  await (await p.open('/d/b', { create: true })).close();
  await t.rejects(p.syncDir('/d'), { code: 'EIO' });
  t.same(disk.readDurable('/d/a'), fill(1, 100), 'the failed datasync made nothing durable');
  t.same(disk.list('/d', 'durable'), ['a'], 'the failed syncDir neither');
  disk.faults.syncEioP = 0;
  disk.faults.readEioP = 1;
  await t.rejects(fh.read(Buffer.alloc(10), 0, 10, 0), { code: 'EIO' });
  await t.rejects(p.readFile('/d/a'), { code: 'EIO' });
  disk.faults.readEioP = 0;
  disk.faults.openEioP = 1;
  await t.rejects(p.open('/d/a'), { code: 'EIO' });
  t.same(disk.counts, { ...disk.counts, writeEio: 1, syncEio: 2, readEio: 2, openEio: 1 });
});

t.test('sim-disk - EIO probabilities: about that share of writes fails', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const { disk, p } = await diskWithDir({ seed });
  const fh = await p.open('/d/a', { create: true });
  disk.faults.writeEioP = 0.25;
  let failed = 0;
  for (let i = 0; i < 400; i++) await fh.write(fill(1, 10), 0).catch(() => failed++);
  t.ok(failed > 50 && failed < 150, `${failed} of 400 failed`);
});

t.test('sim-disk - bit flips: a read returns one flipped bit, the disk keeps its bytes', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const { disk, p } = await diskWithDir({ seed });
  const data = Buffer.from('the quick brown fox jumps over the lazy dog');
  const fh = await syncedFile(p, '/d/a', data);
  disk.faults.bitFlipP = 1;
  const buf = Buffer.alloc(data.length);
  t.equal(await fh.read(buf, 0, buf.length, 0), data.length);
  const whole = await p.readFile('/d/a');
  for (const got of [buf, whole]) {
    let bits = 0;
    for (let i = 0; i < data.length; i++) for (let x = got[i]! ^ data[i]!; x !== 0; x &= x - 1) bits++;
    t.equal(bits, 1, 'exactly one bit differs');
  }
  t.same(disk.readCurrent('/d/a'), data, 'the disk is unchanged');
  t.same(disk.readDurable('/d/a'), data);
  disk.faults.bitFlipP = 0;
  t.same(await p.readFile('/d/a'), data);
});

t.test('sim-disk - locks: another process gets ELOCKED until the holder is killed or releases', async (t) => {
  const { disk } = await diskWithDir();
  const a = disk.process('a');
  const b = disk.process('b');
  await a.lock('/d/LOCK');
  await t.rejects(b.lock('/d/LOCK'), { code: 'ELOCKED' });
  disk.kill('a');
  const held = await b.lock('/d/LOCK');
  await t.rejects(disk.process('a').lock('/d/LOCK'), { code: 'ELOCKED' }, 'the restarted process finds it held');
  await held.release();
  await disk.process('a').lock('/d/LOCK');
  disk.powerCut();
  await disk.process('b').lock('/d/LOCK');
  await disk.process('c').mkdir('/d');
  disk.wipe('/d');
  await disk.process('c').mkdir('/d');
  await disk.process('c').lock('/d/LOCK'); // a new directory: a new lock, as osLock's device and inode
  t.pass('locks taken');
});

t.test('sim-disk - wipe removes a tree for good, open handles keep working', async (t) => {
  const { disk, p } = await diskWithDir();
  const fh = await syncedFile(p, '/d/a', fill(1, 10));
  disk.wipe('/d');
  t.equal(disk.list('/d'), undefined);
  t.equal(await fh.write(fill(2, 5), null), 5);
  disk.powerCut();
  t.same(disk.list('/'), [], 'the wipe was durable');
});

/** A fixed workload with faults and a power cut; returns everything observable as text. */
async function workload(seed: number): Promise<string> {
  const disk = new SimDisk({ rng: prng(seed), faults: { shortWriteP: 0.2, writeEioP: 0.1, syncEioP: 0.1, readEioP: 0.1, bitFlipP: 0.1, bytesBudget: 20_000 } });
  const trace: string[] = [];
  const note = async (what: string, op: () => Promise<unknown>): Promise<void> => {
    try {
      const v = await op();
      trace.push(`${what}=${typeof v === 'number' ? v : Buffer.isBuffer(v) ? v.toString('hex') : 'ok'}`);
    } catch (err) {
      trace.push(`${what}!${(err as { code?: string }).code}`);
    }
  };
  for (let round = 0; round < 3; round++) {
    const p = disk.process('p');
    await note('mkdir', () => p.mkdir('/d'));
    await note('syncRoot', () => p.syncDir('/'));
    for (let f = 0; f < 3; f++) {
      const fh = await p.open(`/d/f${f}`, { create: true }).catch(() => undefined);
      if (fh === undefined) continue;
      for (let i = 0; i < 6; i++) await note(`w${f}.${i}`, () => fh.write(fill(round * 16 + f * 4 + i, 700 + i * 300), null));
      if (f !== 1) await note(`sync${f}`, () => fh.datasync());
      await note(`read${f}`, () => p.readFile(`/d/f${f}`));
    }
    await note('syncDir', () => p.syncDir('/d'));
    disk.powerCut();
  }
  for (const name of disk.list('/d') ?? []) trace.push(`${name}:${disk.readCurrent(`/d/${name}`)!.toString('hex')}`);
  return trace.join('\n');
}

t.test('sim-disk - the same seed gives the same outcome, another seed another', async (t: Test) => {
  const seed = testSeed((m) => t.comment(m));
  const first = await workload(seed);
  t.equal(await workload(seed), first, 'replayed');
  const others = await Promise.all([1, 2, 3].map((d) => workload(seed + d)));
  t.ok(others.some((o) => o !== first), 'other seeds differ');
});
