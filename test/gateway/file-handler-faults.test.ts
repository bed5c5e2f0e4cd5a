/**
 * The file handler over SimDisk (test/sim/sim-disk.ts): short writes, a full disk, EIO, kills
 * and power cuts; exact de-duplication per (agent, seq) when targets overtake each other.
 */
import t from 'tap';
import type { FileHandle, Files } from '../../common/files.js';
import { FileHandler } from '../../gateway/handlers/file.js';
import type { DispatchPacket, HandlerResult } from '../../gateway/handlers/handler.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';

// The output's own directory is made by the handler; the one above it must exist (file-dir.ts).
const path = '/gw/packets.jsonl';

function pkt(agent: string, seq: number, target = 't/a', pad = 0): DispatchPacket {
  return { agent, seq, target, ts: 1_700_000_000_000 + seq, data: { v: seq, pad: 'x'.repeat(pad) } };
}

/** The (agent, seq) of every line of NAME, NAME.1 … NAME.keep, oldest file first; throws on a line that is not whole JSON. */
function linesOn(disk: SimDisk, keep = 0): string[] {
  const out: string[] = [];
  for (let n = keep; n >= 0; n--) {
    const buf = disk.readCurrent(n === 0 ? path : `${path}.${n}`);
    if (buf === undefined || buf.length === 0) continue;
    const text = buf.toString('utf8');
    if (!text.endsWith('\n')) throw new Error(`${n}: the file does not end in a newline`);
    for (const l of text.slice(0, -1).split('\n')) {
      const v = JSON.parse(l) as { agent: string; seq: number };
      out.push(`${v.agent}:${v.seq}`);
    }
  }
  return out;
}

const count = (xs: string[], x: string): number => xs.filter((y) => y === x).length;

t.test('file-handler - a batch cut short by a full disk fails whole: no half line, nothing reported written', async (t) => {
  const disk = new SimDisk({ rng: new Rng(1).fn });
  const h = await FileHandler.open({ path, files: disk.process('gw'), sync: 'always', retryAfterMs: 50 });
  t.same(await h.handle(pkt('a', 1)), { ok: true });
  // Room for about one and a half more lines: the next batch of two straddles the limit.
  const line = Buffer.byteLength(`${JSON.stringify({ agent: 'a', seq: 2, target: 't/a', ts: 1_700_000_000_002, data: { v: 2, pad: '' } })}\n`);
  disk.faults.bytesBudget = disk.usedBytes() + Math.floor(line * 1.5);
  const results = await Promise.all([h.handle(pkt('a', 2)), h.handle(pkt('a', 3))]);
  t.same(results.map((r) => r.ok), [false, false], 'every line of the batch fails');
  t.same(results.map((r) => (r.ok ? null : r.code)), ['HANDLER_FAILED', 'HANDLER_FAILED']);
  t.ok(results.every((r) => !r.ok && r.retryable), 'retryable');
  t.same(linesOn(disk), ['a:1'], 'the file is cut back to its last whole line');
  disk.faults.bytesBudget = null;
  t.same(await h.handle(pkt('a', 2)), { ok: true }, 'the resend is written once there is room');
  t.same(await h.handle(pkt('a', 3)), { ok: true });
  await h.close();
  t.same(linesOn(disk), ['a:1', 'a:2', 'a:3']);
});

t.test('file-handler - short writes are finished, not taken for whole ones', async (t) => {
  const disk = new SimDisk({ rng: new Rng(2).fn, faults: { shortWriteP: 1 } });
  const h = await FileHandler.open({ path, files: disk.process('gw'), sync: 'always' });
  const results = await Promise.all([1, 2, 3, 4].map((s) => h.handle(pkt('a', s, 't/a', 300))));
  t.ok(results.every((r) => r.ok));
  t.ok(disk.counts.shortWrites > 0, 'writes were short');
  await h.close();
  t.same(linesOn(disk), ['a:1', 'a:2', 'a:3', 'a:4'], 'every line reported written is whole');
});

/** `files` whose handles' truncate fails while `failTruncate` says so. */
function truncateFails(files: Files, failTruncate: () => boolean): Files {
  const wrap = (fh: FileHandle): FileHandle => ({
    write: (b, p) => fh.write(b, p),
    writeAll: (b, p) => fh.writeAll(b, p),
    read: (b, o, l, p) => fh.read(b, o, l, p),
    datasync: () => fh.datasync(),
    truncate: (n) => (failTruncate() ? Promise.reject(Object.assign(new Error('EIO: ftruncate'), { code: 'EIO' })) : fh.truncate(n)),
    size: () => fh.size(),
    close: () => fh.close(),
  });
  return { ...files, open: async (p, o) => wrap(await files.open(p, o)), readFile: (p) => files.readFile(p), rename: (a, b) => files.rename(a, b), unlink: (p) => files.unlink(p), mkdir: (p) => files.mkdir(p), readdir: (p) => files.readdir(p), syncDir: (p) => files.syncDir(p), lock: (p) => files.lock(p) };
}

t.test('file-handler - when the cut after a failed write fails too, the next write rescans first: no torn line inside, no line twice', async (t) => {
  const disk = new SimDisk({ rng: new Rng(3).fn });
  let fail = false;
  const h = await FileHandler.open({ path, files: truncateFails(disk.process('gw'), () => fail), sync: 'always' });
  t.same(await h.handle(pkt('a', 1)), { ok: true });
  const line = Buffer.byteLength(`${JSON.stringify({ agent: 'a', seq: 2, target: 't/a', ts: 1_700_000_000_002, data: { v: 2, pad: '' } })}\n`);
  disk.faults.bytesBudget = disk.usedBytes() + Math.floor(line * 1.5);
  fail = true;
  const results = await Promise.all([h.handle(pkt('a', 2)), h.handle(pkt('a', 3))]);
  t.ok(results.every((r) => !r.ok), 'the batch fails');
  fail = false;
  disk.faults.bytesBudget = null;
  t.same(await h.handle(pkt('a', 2)), { ok: true });
  t.same(await h.handle(pkt('a', 3)), { ok: true });
  t.same(await h.handle(pkt('a', 4)), { ok: true });
  await h.close();
  t.same(linesOn(disk), ['a:1', 'a:2', 'a:3', 'a:4'], 'a:2, which the failed write left whole, was learnt and not written again; the torn a:3 was cut');
});

t.test('file-handler - a lower seq of another target, after a higher one was written, is written (exact per agent and seq)', async (t) => {
  const disk = new SimDisk({ rng: new Rng(4).fn });
  const files = disk.process('gw');
  // rotateBytes fits about three lines: the sequence below crosses rotations.
  const opts = { path, files, sync: 'always' as const, rotateBytes: 300, keep: 20 };
  let h = await FileHandler.open(opts);
  t.same(await h.handle(pkt('x', 5, 't/b')), { ok: true }, 'B overtook A');
  t.same(await h.handle(pkt('x', 3, 't/a')), { ok: true }, "A's resend of 3");
  t.same(await h.handle(pkt('x', 3, 't/a')), { ok: true }, 'a repeat of 3');
  t.same(await h.handle(pkt('x', 5, 't/b')), { ok: true }, 'a repeat of 5');
  t.same(linesOn(disk, 20), ['x:5', 'x:3'], '3 is written, and neither is written twice');
  await h.close();
  h = await FileHandler.open(opts);
  for (const s of [3, 5]) t.same(await h.handle(pkt('x', s)), { ok: true });
  t.same(await h.handle(pkt('x', 4, 't/a')), { ok: true }, 'a gap after a restart');
  t.same(linesOn(disk, 20), ['x:5', 'x:3', 'x:4'], 'after a restart: the gap 4 is written, 3 and 5 not again');
  // Push x's lines into rotated files, past NAME.1, so that only .NAME.seqs remembers them.
  for (let s = 10; s < 20; s++) t.same(await h.handle(pkt('y', s)), { ok: true });
  t.ok(disk.readCurrent(`${path}.3`) !== undefined, 'rotated at least three times');
  t.same(await h.handle(pkt('x', 2, 't/a')), { ok: true });
  await h.close();
  h = await FileHandler.open(opts);
  for (const s of [2, 3, 4, 5]) t.same(await h.handle(pkt('x', s)), { ok: true });
  t.same(await h.handle(pkt('x', 1, 't/a')), { ok: true });
  t.same(await h.handle(pkt('x', 6, 't/a')), { ok: true });
  await h.close();
  const all = linesOn(disk, 20);
  t.same([1, 2, 3, 4, 5, 6].map((s) => count(all, `x:${s}`)), [1, 1, 1, 1, 1, 1], 'across rotations and restarts: every seq of x exactly once');
});

t.test('file-handler - a .NAME.seqs in the old format (one number per agent) still means every seq up to it', async (t) => {
  const disk = new SimDisk({ rng: new Rng(5).fn });
  const files = disk.process('gw');
  await files.mkdir('/gw');
  const fh = await files.open('/gw/.packets.jsonl.seqs', { create: true });
  await fh.writeAll(Buffer.from(JSON.stringify({ x: 7 })), 0);
  await fh.close();
  const h = await FileHandler.open({ path, files, sync: 'always', rotateBytes: 1000 });
  for (const s of [1, 7]) t.same(await h.handle(pkt('x', s)), { ok: true });
  t.same(await h.handle(pkt('x', 8)), { ok: true });
  await h.close();
  t.same(linesOn(disk), ['x:8']);
});

/**
 * A stream of packets for a few agents and targets, with resends, over a disk that tears writes,
 * fills up, fails with EIO, and is killed or loses power at random. Every packet answered ok must
 * be on disk exactly once per (agent, seq), and no file holds a half line.
 */
t.test('file-handler - a random stream with faults, kills and power cuts loses nothing acknowledged and writes nothing twice', async (t) => {
  const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.comment(`SEED=${seed}`);
  const rng = new Rng(seed);
  const disk = new SimDisk({ rng: rng.fork('disk').fn });
  const keep = 1000;
  const acked = new Set<string>();
  const faults = { shortWriteP: 0.2, writeEioP: 0.05, syncEioP: 0.05, openEioP: 0.02 };
  for (let round = 0; round < 30; round++) {
    Object.assign(disk.faults, { shortWriteP: 0, writeEioP: 0, syncEioP: 0, openEioP: 0, bytesBudget: null });
    disk.disarmCrash();
    const h = await FileHandler.open({ path, files: disk.process('gw'), sync: 'always', rotateBytes: rng.pick([400, 2000, 100_000]), keep, retryAfterMs: 1 });
    Object.assign(disk.faults, faults, { bytesBudget: rng.chance(0.3) ? disk.usedBytes() + rng.int(0, 2000) : null });
    const how = rng.chance(0.5) ? 'kill' : 'power';
    if (rng.chance(0.7)) disk.crashBeforeStep(rng.int(1, 400), () => (how === 'kill' ? disk.kill('gw') : disk.powerCut()));
    const calls: Promise<void>[] = [];
    let settled = 0;
    for (let i = 0; i < rng.int(1, 40); i++) {
      const agent = rng.pick(['a', 'b', 'c']);
      const seq = rng.int(1, 60);
      const p = pkt(agent, seq, rng.pick(['t/1', 't/2']), rng.int(0, 200));
      calls.push(h.handle(p).then((r: HandlerResult) => {
        settled++;
        if (r.ok) acked.add(`${agent}:${seq}`);
      }));
      if (rng.chance(0.3)) await new Promise((r) => setImmediate(r));
    }
    while (settled < calls.length && disk.isAlive('gw')) await new Promise((r) => setImmediate(r));
    disk.disarmCrash(); // a cut during close would leave it waiting forever
    if (disk.isAlive('gw')) {
      if (rng.chance(0.5)) await h.close();
      else disk.kill('gw');
    }
  }
  Object.assign(disk.faults, { shortWriteP: 0, writeEioP: 0, syncEioP: 0, openEioP: 0, bytesBudget: null });
  disk.disarmCrash();
  const h = await FileHandler.open({ path, files: disk.process('gw'), sync: 'always', keep });
  await h.close();
  const lines = linesOn(disk, keep);
  const missing = [...acked].filter((k) => count(lines, k) === 0);
  const twice = [...new Set(lines)].filter((k) => count(lines, k) > 1);
  t.same(missing, [], `every acknowledged (agent, seq) is on disk (${acked.size} acknowledged; SEED=${seed})`);
  t.same(twice, [], `no (agent, seq) is on disk twice (SEED=${seed})`);
  t.ok(disk.counts.shortWrites + disk.counts.writeEio + disk.counts.enospc > 0, 'faults were injected');
});
