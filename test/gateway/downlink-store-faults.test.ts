/**
 * DownlinkStore (gateway/downlink/store.ts) against a failing disk: full, short and failed writes,
 * failed cuts and compactions, torn tails, power cuts at every step; and compaction's bounds.
 */
import t from 'tap';
import { appendFile, readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { Files } from '../../common/files.js';
import { silentLog } from '../../common/log.js';
import { scanRecords } from '../../common/record.js';
import type { DownlinkQueueLimits, MessageView } from '../../gateway/downlink/queue.js';
import { DownlinkStore, type DownlinkStoreOptions } from '../../gateway/downlink/store.js';
import { eio, hookFiles } from '../helpers/files-hooks.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';
import { limitsDefault, ManualClock } from './downlink-queue-contract.js';

const dir = '/gw/downlink';
const file = `${dir}/queue.log`;
const room = { messages: 1000, bytes: 10_000_000, whole: true };
const outcome = <T>(p: Promise<T>): Promise<T | string> => p.catch((e: NodeJS.ErrnoException) => e.code ?? 'error');

function opener(files: () => Files, extra: Partial<DownlinkStoreOptions> = {}, limits: DownlinkQueueLimits = limitsDefault): () => Promise<DownlinkStore> {
  const clock = new ManualClock();
  return () => DownlinkStore.open({ dir, files: files(), clock, log: silentLog, limits, ...extra });
}

const idOf = (r: unknown): string => {
  const e = r as { ok?: boolean; id?: string };
  if (e.ok !== true || e.id === undefined) throw new Error(`not queued: ${JSON.stringify(r)}`);
  return e.id;
};

t.test('downlink-store - an enqueue cut short by a full disk is rejected, in memory too, and the file cut back', async (t) => {
  const disk = new SimDisk({ rng: new Rng(1).fn });
  const open = opener(() => disk.process('gw'));
  const q = await open();
  const a = idOf(await q.enqueue('x', { target: 'a', data: 'a' }));
  const before = disk.readCurrent(file)!.length;
  disk.faults.bytesBudget = disk.usedBytes() + 10;
  const rs = await Promise.all(['b', 'c'].map((x) => outcome(q.enqueue('x', { target: x, data: 'x'.repeat(40) }))));
  t.same(rs, ['ENOSPC', 'ENOSPC'], 'both enqueues of the batch reject');
  t.same(q.list('x').map((m) => m.id), [a], 'nothing of them is queued');
  t.same([q.stats().enqueued, q.stats().queued], [1, 1]);
  t.equal(disk.readCurrent(file)!.length, before, 'the file is cut back to its last whole record');
  disk.faults.bytesBudget = null;
  const d = idOf(await q.enqueue('x', { target: 'd', data: 'd' }));
  await q.close();
  disk.powerCut();
  const r = await open();
  t.same(r.list('x').map((m) => m.id), [a, d], 'after a power cut: what resolved, nothing that was rejected');
  await r.close();
});

t.test('downlink-store - short writes are finished', async (t) => {
  const disk = new SimDisk({ rng: new Rng(2).fn, faults: { shortWriteP: 1 } });
  const open = opener(() => disk.process('gw'));
  const q = await open();
  const ids = await Promise.all(['a', 'b', 'c'].map(async (x) => idOf(await q.enqueue(x, { target: 't', data: x.repeat(100) }))));
  t.ok(disk.counts.shortWrites > 0);
  disk.powerCut();
  const r = await open();
  t.same(['a', 'b', 'c'].map((x, i) => r.get(x, ids[i]!)?.state), ['queued', 'queued', 'queued']);
  await r.close();
});

t.test('downlink-store - a failed write whose cut fails too: the next write reopens and cuts it, so the rejected message never comes back', async (t) => {
  const disk = new SimDisk({ rng: new Rng(3).fn });
  const flags = { failWrite: false, failCut: false };
  const files = hookFiles(disk.process('gw'), {
    handle: (fh) => ({
      writeAll: async (buf, pos) => {
        if (!flags.failWrite) return fh.writeAll(buf, pos);
        flags.failWrite = false;
        await fh.writeAll(buf, pos); // every byte reached the disk (O_DSYNC), then the call failed
        throw eio();
      },
      truncate: async (n) => {
        if (flags.failCut) throw eio();
        return fh.truncate(n);
      },
    }),
  });
  const q = await DownlinkStore.open({ dir, files, clock: new ManualClock(), log: silentLog, limits: limitsDefault });
  const a = idOf(await q.enqueue('x', { target: 'a', data: 1 }));
  Object.assign(flags, { failWrite: true, failCut: true });
  t.equal(await outcome(q.enqueue('x', { target: 'b', data: 2 })), 'EIO');
  t.ok(disk.readDurable(file)!.length > 0, 'the rejected record is on the disk for now');
  flags.failCut = false;
  const c = idOf(await q.enqueue('x', { target: 'c', data: 3 }));
  await q.close();
  disk.powerCut();
  const r = await DownlinkStore.open({ dir, files: disk.process('gw'), clock: new ManualClock(), log: silentLog, limits: limitsDefault });
  t.same(r.list('x').map((m) => m.target), ['a', 'c'], 'b, rejected, is not queued after a power cut');
  t.same(r.list('x').map((m) => m.id), [a, c]);
  await r.close();
});

t.test('downlink-store - drops made for an enqueue whose write failed stand, and reach the file with the next write', async (t) => {
  const disk = new SimDisk({ rng: new Rng(4).fn });
  const limits = { ...limitsDefault, queueMessagesMax: 2, fullPolicy: 'drop-oldest' as const };
  const open = opener(() => disk.process('gw'), {}, limits);
  const q = await open();
  const [a, b] = [idOf(await q.enqueue('x', { target: 'a', data: 1 })), idOf(await q.enqueue('x', { target: 'b', data: 2 }))];
  disk.faults.writeEioP = 1;
  t.equal(await outcome(q.enqueue('x', { target: 'c', data: 3 })), 'EIO');
  t.same([q.get('x', a)?.state, q.get('x', b)?.state], ['dropped', 'queued'], 'a was dropped for c; c is not there');
  t.equal(q.list('x', { state: 'queued' }).length, 1);
  disk.faults.writeEioP = 0;
  const d = idOf(await q.enqueue('x', { target: 'd', data: 4 }));
  await q.close();
  disk.powerCut();
  const r = await open();
  t.same(r.list('x').map((m) => [m.id, m.state]), [[b, 'queued'], [d, 'queued'], [a, 'dropped']]);
  await r.close();
});

t.test('downlink-store - a verdict whose write failed leaves the message delivered; a requeue meanwhile takes effect', async (t) => {
  const disk = new SimDisk({ rng: new Rng(5).fn });
  const open = opener(() => disk.process('gw'));
  const q = await open();
  const a = idOf(await q.enqueue('x', { target: 'a', data: 1 }));
  const b = idOf(await q.enqueue('x', { target: 'b', data: 2 }));
  q.take('x', room);
  disk.faults.writeEioP = 1;
  const failing = outcome(q.settle('x', [{ id: a, ok: true }, { id: b, ok: true }]));
  t.same(await q.settle('x', [{ id: a, ok: false, code: 'C', reason: 'r' }]), { applied: 0, ignored: 1 }, 'a result for one being settled is ignored');
  q.requeue('x', [b]);
  t.equal(await failing, 'EIO');
  t.same([q.get('x', a)?.state, q.get('x', b)?.state], ['delivered', 'queued'], 'not final; b, whose session ended, is queued again');
  disk.faults.writeEioP = 0;
  t.same(await q.settle('x', [{ id: a, ok: true }]), { applied: 1, ignored: 0 }, 'a later verdict applies');
  await q.close();
  const r = await open();
  t.same(r.list('x').map((m) => [m.id, m.state]), [[b, 'queued'], [a, 'acked']]);
  await r.close();
});

t.test('downlink-store - a torn tail is cut at open; what came before and what comes after survive', async (t) => {
  const d = t.testdir();
  const path = join(d, 'queue.log');
  const open = (): Promise<DownlinkStore> => DownlinkStore.open({ dir: d, clock: new ManualClock(), log: silentLog, limits: limitsDefault });
  let q = await open();
  for (const x of ['a', 'b', 'c']) await q.enqueue('x', { target: x, data: x });
  await q.close();
  const whole = (await stat(path)).size;
  await truncate(path, whole - 3); // c's record torn
  q = await open();
  t.same(q.list('x').map((m) => m.target), ['a', 'b']);
  await q.enqueue('x', { target: 'd', data: 'd' });
  await q.close();
  await appendFile(path, Buffer.from([0, 0, 0, 9, 1, 2, 3])); // garbage after the last record
  q = await open();
  t.same(q.list('x').map((m) => m.target), ['a', 'b', 'd'], 'd, written after the cut, is readable');
  await q.close();
  const buf = await readFile(path);
  t.equal(scanRecords(buf).validBytes, buf.length, 'the file holds only whole records');
});

t.test('downlink-store - a message too large for one record is refused, and no record passes the reader bound', async (t) => {
  const disk = new SimDisk({ rng: new Rng(6).fn });
  const open = opener(() => disk.process('gw'), { recordBodyBytesMax: 4096, compactBytes: 5000, compactGrowthRatio: 0 });
  const q = await open();
  const r = await q.enqueue('x', { target: 'a', data: 'x'.repeat(3000) });
  t.equal(r.ok ? null : r.code, 'DATA_TOO_LARGE');
  for (let i = 0; i < 30; i++) await q.enqueue(`a${i % 3}`, { target: 't', data: 'y'.repeat(1000) });
  t.ok(q.compactions > 0, 'compacted');
  const buf = disk.readCurrent(file)!;
  t.equal(scanRecords(buf, 4096).validBytes, buf.length, 'a reader with the bound reads the whole file');
  await q.close();
  t.equal((await open()).list('a0').length, 10);
});

/** Every agent's list, to compare states across a reopen (delivered ones come back queued). */
function everything(q: DownlinkStore, agents: string[]): MessageView[][] {
  return agents.map((a) => q.list(a).map((m) => (m.state === 'delivered' ? { ...m, state: 'queued' as const } : { ...m })));
}

t.test('downlink-store - compaction keeps the file bounded and the state the same after a reopen', async (t) => {
  const disk = new SimDisk({ rng: new Rng(7).fn });
  const compactBytes = 20_000;
  const limits = { ...limitsDefault, historyMessagesMax: 20 };
  const open = opener(() => disk.process('gw'), { compactBytes }, limits);
  const q = await open();
  const agents = ['a', 'b', 'c'];
  let largest = 0;
  for (let round = 0; round < 300; round++) {
    const a = agents[round % 3]!;
    await Promise.all([1, 2, 3].map((i) => q.enqueue(a, { target: `t${i}`, data: 'z'.repeat(50 + round) })));
    const taken = q.take(a, { messages: 3, bytes: 1_000_000, whole: true });
    await q.settle(a, taken.slice(0, 2).map((m, i) => (i === 0 ? { id: m.id, ok: true as const } : { id: m.id, ok: false as const, code: 'DOWNLINK_REFUSED', reason: 'no' })));
    if (round % 5 === 0) q.requeue(a, taken.slice(2).map((m) => m.id));
    largest = Math.max(largest, disk.readCurrent(file)!.length);
  }
  const live = q.stats().queued + q.stats().delivered;
  t.ok(q.compactions >= 5, `compacted (${q.compactions} times)`);
  const snapshotish = (live + 60) * 600;
  t.ok(largest < compactBytes + 2 * snapshotish, `the file stays bounded (largest ${largest} bytes)`);
  const before = everything(q, agents);
  await q.close();
  const r = await open();
  t.same(everything(r, agents), before, 'same state after a reopen');
  await r.close();
});

t.test('downlink-store - a compaction that fails (rename, directory sync) leaves the store writing to the file its path names', async (t) => {
  const disk = new SimDisk({ rng: new Rng(8).fn });
  const flags = { rename: false, syncDir: false };
  const base = disk.process('gw');
  const files: Files = {
    ...hookFiles(base, {}),
    rename: (a, b) => (flags.rename ? Promise.reject(eio()) : base.rename(a, b)),
    syncDir: (p) => (flags.syncDir ? Promise.reject(eio()) : base.syncDir(p)),
  };
  const q = await DownlinkStore.open({ dir, files, clock: new ManualClock(), log: silentLog, limits: limitsDefault, compactBytes: 500, compactGrowthRatio: 0 });
  const ids: string[] = [];
  flags.rename = true;
  for (let i = 0; i < 10; i++) ids.push(idOf(await q.enqueue('x', { target: `r${i}`, data: 'x'.repeat(60) })));
  t.equal(q.compactions, 0, 'no compaction succeeded');
  flags.rename = false;
  flags.syncDir = true;
  for (let i = 0; i < 5; i++) {
    const r = await outcome(q.enqueue('x', { target: `s${i}`, data: 'x'.repeat(60) }));
    if (typeof r !== 'string') ids.push(idOf(r));
  }
  flags.syncDir = false;
  for (let i = 0; i < 5; i++) ids.push(idOf(await q.enqueue('x', { target: `u${i}`, data: 'x'.repeat(60) })));
  await q.close();
  disk.powerCut();
  const r = await DownlinkStore.open({ dir, files: disk.process('gw'), clock: new ManualClock(), log: silentLog, limits: limitsDefault });
  const have = new Set(r.list('x').map((m) => m.id));
  t.same(ids.filter((id) => !have.has(id)), [], 'every enqueue that resolved survives a power cut');
  await r.close();
});

/**
 * One scripted run (enqueues, takes, verdicts, a compaction) with a power cut before its k-th disk
 * step, for every k until the run finishes without one: what resolved is there, nothing rejected is.
 */
t.test('downlink-store - a power cut at any step of writes and compactions loses nothing that resolved', async (t) => {
  let cuts = 0;
  for (let k = 1; k < 2000; k++) {
    const disk = new SimDisk({ rng: new Rng(k).fn });
    const open = opener(() => disk.process('gw'), { compactBytes: 600, compactGrowthRatio: 0.5 });
    const q = await open();
    const resolved = new Map<string, string>(); // id → target
    const rejected = new Set<string>();
    const verdicts = new Map<string, 'acked' | 'rejected'>();
    let cut = false;
    disk.crashBeforeStep(k, () => {
      cut = true;
      disk.powerCut();
    });
    const run = (async () => {
      for (let round = 0; round < 4 && !cut; round++) {
        const ps = ['a', 'b', 'a'].map((a, i) => q.enqueue(a, { target: `${round}-${i}`, data: 'd'.repeat(40) }).then((r) => {
          if (r.ok) resolved.set(r.id, a);
        }, () => rejected.add(`${round}-${i}`)));
        await Promise.all(ps);
        const taken = q.take('a', { messages: 2, bytes: 10_000, whole: true });
        const results = taken.map((m, i) => (i === 0 ? { id: m.id, ok: true as const } : { id: m.id, ok: false as const, code: 'DOWNLINK_REFUSED', reason: 'r' }));
        await q.settle('a', results).then(() => results.forEach((r) => verdicts.set(r.id, r.ok ? 'acked' : 'rejected')), () => undefined);
      }
    })();
    // A dead process's IO never settles: stop waiting once the cut came.
    let finished = false;
    void run.then(() => (finished = true));
    await new Promise<void>((resolve) => {
      const poll = (): void => (cut || finished ? resolve() : void setImmediate(poll));
      poll();
    });
    disk.disarmCrash();
    if (!cut) {
      t.ok(q.compactions > 0, 'the run compacts');
      await q.close();
      t.ok(cuts > 20, `the run finished without a cut at step ${k}, after ${cuts} cut runs`);
      break;
    }
    cuts++;
    const r = await open();
    for (const [id, agent] of resolved) {
      const v = r.get(agent, id);
      if (v === undefined) t.fail(`step ${k}: ${id} resolved and is gone`);
      else if (verdicts.has(id) && v.state !== verdicts.get(id)) t.fail(`step ${k}: ${id} was settled ${verdicts.get(id)} and is ${v.state}`);
    }
    const targets = new Set([...r.list('a'), ...r.list('b')].map((m) => m.target));
    for (const target of rejected) if (targets.has(target)) t.fail(`step ${k}: ${target} was rejected and is there`);
    await r.close();
  }
  t.ok(cuts > 20, `${cuts} runs cut at a different step`);
});

t.test('downlink-store - a bit flipped while the file is read at open (not on the disk) does not cut the records after it', async (t) => {
  const disk = new SimDisk({ rng: new Rng(9).fn });
  const q = await opener(() => disk.process('gw'))();
  for (let i = 0; i < 10; i++) await q.enqueue('x', { target: `t${i}`, data: i });
  await q.close();
  let flipped = 0;
  const flipping = hookFiles(disk.process('gw'), {
    handle: (fh) => ({
      read: async (buf, off, len, pos) => {
        const n = await fh.read(buf, off, len, pos);
        if (flipped === 0 && n > 40) {
          buf[off + 20]! ^= 0x10; // inside the first record
          flipped++;
        }
        return n;
      },
    }),
  });
  const r = await DownlinkStore.open({ dir, files: flipping, clock: new ManualClock(), log: silentLog, limits: limitsDefault });
  t.equal(flipped, 1);
  t.equal(r.list('x').length, 10, 'every message is still there');
  await r.close();
});

t.test('downlink-store - an onQueued listener that throws does not stop the others or the queue', async (t) => {
  const disk = new SimDisk({ rng: new Rng(10).fn });
  const q = await opener(() => disk.process('gw'))();
  const seen: string[] = [];
  q.onQueued(() => {
    throw new Error('boom');
  });
  q.onQueued((a) => seen.push(a));
  t.ok((await q.enqueue('x', { target: 't', data: 1 })).ok);
  await new Promise((r) => setImmediate(r));
  t.same(seen, ['x']);
  t.ok((await q.enqueue('y', { target: 't', data: 1 })).ok);
  await q.close();
});

t.test('downlink-store - sent records kept from a failed write are written a second later, with nothing else to write (CI seed 4104022738)', async (t) => {
  const disk = new SimDisk({ rng: new Rng(5).fn });
  const clock = new ManualClock();
  const q = await DownlinkStore.open({ dir, files: disk.process('gw'), clock, log: silentLog, limits: limitsDefault });
  t.teardown(() => q.close());
  idOf(await q.enqueue('x', { target: 'a', data: 1 }));
  const turns = async (): Promise<void> => {
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  };
  disk.faults.writeEioP = 1;
  t.equal(q.take('x', room).length, 1, 'taken: its sent record is written');
  let recorded = false;
  void q.sentRecorded().then(() => (recorded = true));
  await turns();
  t.notOk(recorded, 'not recorded while the disk fails');
  disk.faults.writeEioP = 0;
  await turns();
  t.notOk(recorded, 'nothing else is written, so nothing carries it yet');
  clock.advance(1000);
  await turns();
  t.ok(recorded, 'a second later the kept record is written on its own, and the DOWN frame may go');
});
