/**
 * The file handler after a power cut of the gateway host that left its unsynced tail holed:
 * zeros where an earlier line was (sectors never written), a later line whole after them
 * (simulator seed 90023). No line it never acknowledged may stay past such a gap, or the earlier
 * line's resend lands after it and the target's order is broken.
 */
import t from 'tap';
import type { FileHandle } from '../../common/files.js';
import { FileHandler } from '../../gateway/handlers/file.js';
import type { DispatchPacket } from '../../gateway/handlers/handler.js';
import { bytesAsBase64 } from '../../protocol/packet.js';
import { hookFiles } from '../helpers/files-hooks.js';
import { testSeed } from '../helpers/seed.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';

const path = '/gw/rot.jsonl';

function pkt(seq: number, pad = 40): DispatchPacket {
  return { agent: 'a2', seq, target: 'rot/b', ts: 1_700_000_000_000 + seq, data: { id: `a2-${seq}`, pad: 'x'.repeat(pad) } };
}

/** The line the handler writes for `p`. */
function lineOf(p: DispatchPacket): Buffer {
  return Buffer.from(`${JSON.stringify({ agent: p.agent, seq: p.seq, target: p.target, ts: p.ts, data: p.data }, bytesAsBase64)}\n`);
}

/** The seqs of the lines of the file that are whole JSON, in file order, and how many lines are not. */
function seqsOn(disk: SimDisk): { seqs: number[]; damaged: number } {
  const buf = disk.readCurrent(path) ?? Buffer.alloc(0);
  const text = buf.toString('latin1');
  const seqs: number[] = [];
  let damaged = 0;
  for (const l of text.split('\n')) {
    if (l === '') continue;
    try {
      seqs.push((JSON.parse(l) as { seq: number }).seq);
    } catch {
      damaged++;
    }
  }
  return { seqs, damaged };
}

t.test('file-handler power cut - a line that survived past zeroed sectors is cut, not learnt; the resends land in order', async (t) => {
  const disk = new SimDisk({ rng: new Rng(1).fn });
  const before = await FileHandler.open({ path, files: disk.process('gw#3'), sync: 'always' });
  t.same(await before.handle(pkt(17)), { ok: true });
  await before.close();
  const synced = disk.readCurrent(path)!.length;
  // What gw#3's power cut left in seed 90023: a2-23's line zeros but for its last bytes (its sector
  // never reached the disk), a2-25's line whole after it, a2-26's torn. None was acknowledged.
  const l23 = lineOf(pkt(23, 300));
  const l25 = lineOf(pkt(25));
  const l26 = lineOf(pkt(26));
  const holed = Buffer.concat([Buffer.alloc(l23.length - 16), l23.subarray(-16), l25, l26.subarray(0, 3), Buffer.alloc(40)]);
  const setup = await disk.process('power-cut').open(path, { append: true });
  await setup.writeAll(holed, null);
  await setup.datasync();
  disk.kill('power-cut');

  const after = await FileHandler.open({ path, files: disk.process('gw#5'), sync: 'always' });
  t.equal(disk.readCurrent(path)!.length, synced, 'cut back to the last line before the zeros');
  t.same(disk.readCurrent(`${path}.cut.${synced}`), holed, 'the whole lines cut are kept beside the output, never just deleted');
  // The gateway re-dispatches what it never recorded, in order per target.
  const results = await Promise.all([after.handle(pkt(23, 300)), after.handle(pkt(25)), after.handle(pkt(26))]);
  t.same(results, [{ ok: true }, { ok: true }, { ok: true }]);
  await after.close();
  t.same(seqsOn(disk), { seqs: [17, 23, 25, 26], damaged: 0 }, 'every line whole, once, in seq order');
});

t.test('file-handler power cut - a zero byte seen on one read only (a flipped bit) costs no acknowledged line', async (t) => {
  const disk = new SimDisk({ rng: new Rng(2).fn });
  const before = await FileHandler.open({ path, files: disk.process('gw#1'), sync: 'always' });
  for (const s of [1, 2, 3]) t.same(await before.handle(pkt(s)), { ok: true });
  await before.close();
  const whole = disk.readCurrent(path)!;
  // The first read of the file turns one byte of seq 2's line into a zero, as a bit flipped on the way would.
  let flipped = false;
  const flipFirstRead = (fh: FileHandle): Partial<FileHandle> => ({
    read: async (buf, offset, length, position) => {
      const n = await fh.read(buf, offset, length, position);
      const at = lineOf(pkt(1)).length + 5 - position;
      if (!flipped && at >= 0 && at < n) {
        buf[offset + at] = 0;
        flipped = true;
      }
      return n;
    },
  });
  const after = await FileHandler.open({ path, files: hookFiles(disk.process('gw#2'), { handle: flipFirstRead }), sync: 'always' });
  t.ok(flipped, 'the scan read the flipped byte');
  t.same(disk.readCurrent(path), whole, 'nothing was cut');
  for (const s of [1, 2, 3]) t.same(await after.handle(pkt(s)), { ok: true });
  await after.close();
  t.same(seqsOn(disk), { seqs: [1, 2, 3], damaged: 0 }, 'seqs 2 and 3 were learnt, not written again');
});

t.test('file-handler recovery - a bit flipped on one read (the seq\'s digit, or a quote) neither unlearns an acknowledged line nor learns another seq', async (t) => {
  for (const [what, flip] of [['the seq digit 2 read as 3', 1], ['a quote read as a #', 1]] as const) {
    const disk = new SimDisk({ rng: new Rng(3).fn });
    const before = await FileHandler.open({ path, files: disk.process('gw#1'), sync: 'always' });
    for (const s of [1, 2]) t.same(await before.handle(pkt(s)), { ok: true });
    await before.close();
    const line2 = lineOf(pkt(2));
    const at2 = lineOf(pkt(1)).length + (what.startsWith('the seq') ? line2.indexOf('"seq":2') + 6 : line2.indexOf('"'));
    let flipped = false;
    const flipFirstRead = (fh: FileHandle): Partial<FileHandle> => ({
      read: async (buf, offset, length, position) => {
        const n = await fh.read(buf, offset, length, position);
        const at = at2 - position;
        if (!flipped && at >= 0 && at < n) {
          buf[offset + at]! ^= flip;
          flipped = true;
        }
        return n;
      },
    });
    const after = await FileHandler.open({ path, files: hookFiles(disk.process('gw#2'), { handle: flipFirstRead }), sync: 'always' });
    t.ok(flipped, `${what}: the scan read the flipped byte once`);
    // The gateway re-dispatches 2 (unrecorded) and then 3 for the first time.
    for (const s of [2, 3]) t.same(await after.handle(pkt(s)), { ok: true });
    await after.close();
    t.same(seqsOn(disk), { seqs: [1, 2, 3], damaged: 0 }, `${what}: 2 learnt, not written twice; 3 written, not taken as learnt`);
  }
});

/**
 * The disk's own power-cut model (test/sim/sim-disk-power.ts, 64-byte sectors so lines span
 * several): a batch of one target's lines is written and the power goes before its fdatasync,
 * the handler reopens and the batch is handed over again. Each round, the file must hold whole
 * lines only, each seq once, in seq order.
 */
t.test('file-handler power cut - after a cut before the sync of a batch, the target\'s lines stay in order (random)', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = new Rng(seed);
  const bad: string[] = [];
  for (let round = 0; round < 200; round++) {
    const disk = new SimDisk({ rng: rng.fork(`disk ${round}`).fn, sectorBytes: 64 });
    let syncHangs = false;
    const files = hookFiles(disk.process('gw'), { handle: (fh) => ({ datasync: () => (syncHangs ? new Promise<void>(() => undefined) : fh.datasync()) }) });
    const before = await FileHandler.open({ path, files, sync: 'always' });
    const synced = rng.int(1, 4);
    for (let s = 1; s <= synced; s++) await before.handle(pkt(s, rng.int(0, 150)));
    // The batch reaches the page cache, and its fdatasync never returns: the power goes first.
    const batch = Array.from({ length: rng.int(2, 5) }, (_, i) => pkt(synced + 1 + i, rng.int(0, 150)));
    const want = disk.readCurrent(path)!.length + batch.reduce((n, p) => n + lineOf(p).length, 0);
    syncHangs = true;
    for (const p of batch) void before.handle(p);
    for (let i = 0; i < 100 && disk.readCurrent(path)!.length < want; i++) await new Promise((r) => setImmediate(r));
    if (disk.readCurrent(path)!.length !== want) bad.push(`round ${round}: the batch never reached the page cache`);
    disk.powerCut();
    const after = await FileHandler.open({ path, files: disk.process('gw'), sync: 'always' });
    const results = await Promise.all(batch.map((p) => after.handle(p)));
    await after.close();
    const got = seqsOn(disk);
    const expected = Array.from({ length: synced + batch.length }, (_, i) => i + 1);
    if (!results.every((r) => r.ok) || got.damaged > 0 || got.seqs.join() !== expected.join()) bad.push(`round ${round}: ${JSON.stringify(got)}`);
  }
  t.same(bad, [], `every round: whole lines, each seq once, in order (SEED=${seed})`);
});
