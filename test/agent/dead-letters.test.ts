/**
 * The dead-letter file over SimDisk (test/sim/sim-disk.ts): short writes, a full disk, EIO,
 * a torn tail, kills and power cuts.
 */
import t from 'tap';
import { mkdirDurable } from '../../common/durable-file.js';
import type { FileHandle, Files } from '../../common/files.js';
import { DeadLetterLog } from '../../agent/store/dead-letters.js';
import type { Packet } from '../../protocol/packet.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';

const dir = '/agent/store';
const path = `${dir}/dead-letters.log`;
const pkt = (seq: number, pad = 0): Packet => ({ seq, target: 't/a', ts: 1_700_000_000_000 + seq, data: { v: seq, pad: 'x'.repeat(pad) } });
const seqsOf = async (d: DeadLetterLog): Promise<number[]> => (await d.list()).map((l) => l.packet.seq);

async function open(disk: SimDisk, files: Files = disk.process('agent')): Promise<DeadLetterLog> {
  await mkdirDurable(files, dir); // the store's directory, as the store leaves it
  return DeadLetterLog.open(files, path);
}

t.test('dead-letters - short writes are finished: an add that resolved is whole', async (t) => {
  const disk = new SimDisk({ rng: new Rng(1).fn, faults: { shortWriteP: 1 } });
  const d = await open(disk);
  for (const s of [1, 2, 3]) await d.add(pkt(s, 200), 'HANDLER_REJECTED', 'no');
  t.ok(disk.counts.shortWrites > 0, 'writes were short');
  await d.close();
  t.same(await seqsOf(await open(disk)), [1, 2, 3]);
});

t.test('dead-letters - an add cut short by a full disk rejects, leaves nothing, and a later add is readable', async (t) => {
  const disk = new SimDisk({ rng: new Rng(2).fn });
  const d = await open(disk);
  await d.add(pkt(1), 'X', 'x');
  const before = disk.readCurrent(path)!.length;
  disk.faults.bytesBudget = disk.usedBytes() + 10;
  await t.rejects(d.add(pkt(2, 100), 'X', 'x'), { code: 'ENOSPC' });
  t.equal(disk.readCurrent(path)!.length, before, 'cut back to the last whole record');
  t.same(await seqsOf(d), [1], 'the rejected one is not listed');
  disk.faults.bytesBudget = null;
  await d.add(pkt(3), 'X', 'x');
  t.same(await seqsOf(d), [1, 3]);
  await d.close();
  t.same(await seqsOf(await open(disk)), [1, 3], 'also after a reopen');
});

t.test('dead-letters - when the cut after a failed add fails too, the next add cuts first', async (t) => {
  const disk = new SimDisk({ rng: new Rng(3).fn });
  let failCut = false;
  const base = disk.process('agent');
  const files: Files = {
    open: async (p, o) => {
      const fh = await base.open(p, o);
      const wrapped: FileHandle = {
        write: (b, q) => fh.write(b, q), writeAll: (b, q) => fh.writeAll(b, q), read: (b, x, l, q) => fh.read(b, x, l, q),
        datasync: () => fh.datasync(), size: () => fh.size(), close: () => fh.close(),
        truncate: (n) => (failCut ? Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) : fh.truncate(n)),
      };
      return wrapped;
    },
    readFile: (p) => base.readFile(p), rename: (a, b) => base.rename(a, b), unlink: (p) => base.unlink(p), mkdir: (p) => base.mkdir(p),
    readdir: (p) => base.readdir(p), syncDir: (p) => base.syncDir(p), lock: (p) => base.lock(p),
  };
  const d = await open(disk, files);
  await d.add(pkt(1), 'X', 'x');
  disk.faults.bytesBudget = disk.usedBytes() + 10;
  failCut = true;
  await t.rejects(d.add(pkt(2, 100), 'X', 'x'));
  failCut = false;
  disk.faults.bytesBudget = null;
  await d.add(pkt(3), 'X', 'x');
  await d.close();
  t.same(await seqsOf(await open(disk)), [1, 3], 'the record added after the torn one is readable');
});

t.test('dead-letters - a torn tail left by a crash is cut at open, so later records are readable', async (t) => {
  const disk = new SimDisk({ rng: new Rng(4).fn });
  const d = await open(disk);
  await d.add(pkt(1), 'X', 'x');
  await d.close();
  const files = disk.process('agent');
  const fh = await files.open(path, { append: true });
  await fh.writeAll(Buffer.from([0, 0, 0, 50, 1, 2, 3]), null); // half a record
  await fh.close();
  const e = await open(disk);
  await e.add(pkt(2), 'X', 'x');
  await e.close();
  t.same(await seqsOf(await open(disk)), [1, 2]);
});

t.test('dead-letters - a random stream with faults, kills and power cuts loses no add that resolved and lists none twice', async (t) => {
  const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.comment(`SEED=${seed}`);
  const rng = new Rng(seed);
  const disk = new SimDisk({ rng: rng.fork('disk').fn });
  const quiet = { shortWriteP: 0, writeEioP: 0, syncEioP: 0, bytesBudget: null };
  const acked = new Set<number>();
  let next = 1;
  for (let round = 0; round < 40; round++) {
    Object.assign(disk.faults, quiet);
    disk.disarmCrash();
    const d = await open(disk);
    const listed = await seqsOf(d);
    for (const s of acked) if (!listed.includes(s)) t.fail(`round ${round}: ${s} was added but is gone (SEED=${seed})`);
    if (new Set(listed).size !== listed.length) t.fail(`round ${round}: a record is listed twice (SEED=${seed})`);
    if (listed.some((s) => s >= next)) t.fail(`round ${round}: a record nobody added is listed (SEED=${seed})`);
    Object.assign(disk.faults, { shortWriteP: 0.3, writeEioP: 0.1, syncEioP: 0.1, bytesBudget: rng.chance(0.3) ? disk.usedBytes() + rng.int(0, 300) : null });
    const how = rng.chance(0.5) ? 'kill' : 'power';
    if (rng.chance(0.7)) disk.crashBeforeStep(rng.int(1, 100), () => (how === 'kill' ? disk.kill('agent') : disk.powerCut()));
    // The store adds one dead letter at a time.
    for (let i = rng.int(1, 10); i > 0 && disk.isAlive('agent'); i--) {
      const s = next++;
      let done = false;
      void d.add(pkt(s, rng.int(0, 300)), 'X', 'x').then(() => acked.add(s), () => undefined).finally(() => (done = true));
      while (!done && disk.isAlive('agent')) await new Promise((r) => setImmediate(r));
    }
    disk.disarmCrash();
    if (disk.isAlive('agent')) {
      if (rng.chance(0.5)) await d.close();
      else disk.kill('agent');
    }
  }
  t.ok(acked.size > 0 && disk.counts.shortWrites + disk.counts.writeEio > 0, `faults were injected and adds resolved (${acked.size}; SEED=${seed})`);
});
