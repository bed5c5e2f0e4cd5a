import t from 'tap';
import { appendFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LogStore, type LogStoreOptions } from '../../agent/store/log-store.js';
import { ErrorCode } from '../../protocol/errors.js';
import { appendAll, packet, storeContract, type Test } from './fixtures/store-contract.js';
import { prng, testSeed } from '../helpers/seed.js';

for (const sync of ['always', 'batch', 'none'] as const) {
  storeContract(t, `log-store (sync ${sync})`, (dir) => LogStore.open({ dir, sync, batchWindowMs: 2 }));
}
storeContract(t, 'log-store (compacting)', (dir) => LogStore.open({ dir, sync: 'always', compactBytesMin: 1 }));

async function open(t: Test, opts: LogStoreOptions): Promise<LogStore> {
  const s = await LogStore.open(opts);
  t.teardown(() => s.close());
  return s;
}

const sizeOf = async (path: string): Promise<number> => (await stat(path)).size;

t.test('log-store - a torn tail of garbage after the last record is cut; all records survive', async (t) => {
  const dir = t.testdir();
  const log = join(dir, 'packets.log');
  const a = await open(t, { dir, sync: 'always' });
  await appendAll(a, 5);
  await a.close();
  const intact = await sizeOf(log);
  await appendFile(log, Buffer.from([0x00, 0x00, 0x00, 0x40, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
  const b = await open(t, { dir, sync: 'always' });
  t.equal(await sizeOf(log), intact, 'the file is cut back to the end of the last intact record');
  t.same(b.readAfter(0, 100).map((p) => p.seq), [1, 2, 3, 4, 5]);
  t.equal((await b.append(packet(6))).seq, 6);
  await b.close();
  const c = await open(t, { dir, sync: 'always' });
  t.same(c.readAfter(0, 100).map((p) => p.seq), [1, 2, 3, 4, 5, 6], 'a record appended after the cut is readable after another reopen');
});

t.test('log-store - a record truncated mid-way is cut; the complete ones before it survive', async (t) => {
  const dir = t.testdir();
  const log = join(dir, 'packets.log');
  const a = await open(t, { dir, sync: 'always' });
  await appendAll(a, 3);
  const threeRecords = await sizeOf(log);
  await a.append(packet(4));
  await a.close();
  const fourRecords = await sizeOf(log);
  // Cut inside the 4th record's body, and (separately below) inside its header.
  await truncate(log, fourRecords - 3);
  const b = await open(t, { dir, sync: 'always' });
  t.equal(await sizeOf(log), threeRecords);
  t.same(b.readAfter(0, 100), [1, 2, 3].map((i) => ({ seq: i, ...packet(i) })));
  const next = await b.append(packet(9));
  t.ok(next.seq > 3, 'the next append follows the intact records');
  await b.close();
  await truncate(log, threeRecords + 5);
  const c = await open(t, { dir, sync: 'always' });
  t.equal(await sizeOf(log), threeRecords, 'a partial header is cut too');
  t.same(c.readAfter(0, 100).map((p) => p.seq), [1, 2, 3]);
});

t.test('log-store - a record whose bytes were flipped ends the log at that record', async (t) => {
  const dir = t.testdir();
  const log = join(dir, 'packets.log');
  const a = await open(t, { dir, sync: 'always' });
  await appendAll(a, 2);
  const twoRecords = await sizeOf(log);
  await appendAll(a, 1, 3);
  await a.close();
  const buf = await readFile(log);
  buf.writeUInt8(buf.readUInt8(buf.length - 1) ^ 0xff, buf.length - 1); // record 3 fails its CRC
  await writeFile(log, buf);
  const b = await open(t, { dir, sync: 'always' });
  t.same(b.readAfter(0, 100).map((p) => p.seq), [1, 2]);
  t.equal(await sizeOf(log), twoRecords);
});

t.test('log-store - 100 appends issued together share syncs', async (t) => {
  const s = await open(t, { dir: t.testdir(), sync: 'always' });
  await Promise.all(Array.from({ length: 100 }, (_, i) => s.append(packet(i))));
  const { syncs, appended } = s.stats();
  t.equal(appended, 100);
  t.ok(syncs >= 1, 'the batch was synced');
  t.ok(syncs < 100, `fewer syncs than appends (${syncs})`);
});

t.test('log-store - appends awaited one by one each get their own sync', async (t) => {
  // The control for the test above: syncs does count every fdatasync.
  const s = await open(t, { dir: t.testdir(), sync: 'always' });
  await appendAll(s, 5);
  t.equal(s.stats().syncs, 5);
});

t.test("log-store - sync 'none' never syncs", async (t) => {
  const s = await open(t, { dir: t.testdir(), sync: 'none' });
  await appendAll(s, 5);
  t.equal(s.stats().syncs, 0);
});

t.test('log-store - bytesMax refuses appends with STORE_FULL until acks make room', async (t) => {
  const probeDir = t.testdir();
  const probe = await open(t, { dir: probeDir, sync: 'none' });
  await probe.append(packet(1));
  await probe.close();
  const recordBytes = await sizeOf(join(probeDir, 'packets.log'));

  const s = await open(t, { dir: join(probeDir, 'full'), sync: 'none', bytesMax: 3 * recordBytes });
  // packet(1..3) encode to the same size as packet(1): single-digit i.
  await appendAll(s, 3);
  await t.rejects(s.append(packet(4)), { code: ErrorCode.STORE_FULL }, 'the fourth record does not fit');
  t.equal(s.stats().appended, 3);
  t.same(s.readAfter(0, 100).map((p) => p.seq), [1, 2, 3], 'the refused packet was not stored');
  await s.ack(1);
  const p = await s.append(packet(5));
  t.ok(p.seq > 3, 'accepted again after an ack');
  await t.rejects(s.append(packet(6)), { code: ErrorCode.STORE_FULL });
});

t.test('log-store - deadLetter appends a JSON line to dead-letters.jsonl', async (t) => {
  const dir = t.testdir();
  const s = await open(t, { dir, sync: 'always' });
  const a = await s.append({ target: 'alarm/x', ts: 123, data: { t: 1 } });
  const b = await s.append({ target: 'raw', ts: 456, data: new Uint8Array([1, 2, 3, 255]) });
  await s.deadLetter(a, ErrorCode.UNKNOWN_TARGET, 'no route for alarm/x');
  await s.deadLetter(b, ErrorCode.HANDLER_FAILED, 'rejected');
  const lines = (await readFile(join(dir, 'dead-letters.jsonl'), 'utf8')).split('\n');
  t.equal(lines.at(-1), '', 'every line ends in a newline');
  t.same(lines.slice(0, -1).map((l) => JSON.parse(l) as unknown), [
    { seq: 1, target: 'alarm/x', ts: 123, code: 'UNKNOWN_TARGET', message: 'no route for alarm/x', data: { t: 1 } },
    { seq: 2, target: 'raw', ts: 456, code: 'HANDLER_FAILED', message: 'rejected', data: { base64: 'AQID/w==' } },
  ]);
  t.equal(s.stats().deadLetters, 2);
});

t.test('log-store - once everything is acked the log is emptied; seqs continue after reopen', async (t) => {
  const dir = t.testdir();
  const log = join(dir, 'packets.log');
  const a = await open(t, { dir, sync: 'always', compactBytesMin: 1 });
  await appendAll(a, 10);
  const full = await sizeOf(log);
  await a.ack(6);
  t.equal(await sizeOf(log), full, 'not emptied while un-acked packets remain');
  await a.ack(10);
  t.equal(await sizeOf(log), 0, 'emptied once all of it is acked');
  await a.close();
  const b = await open(t, { dir, sync: 'always', compactBytesMin: 1 });
  t.same(b.readAfter(0, 100), [], 'nothing comes back');
  t.equal(b.stats().lastSeq, 10);
  t.equal((await b.append(packet(11))).seq, 11, 'seqs continue');
  await b.close();
  const c = await open(t, { dir, sync: 'always', compactBytesMin: 1 });
  t.same(c.readAfter(0, 100).map((p) => p.seq), [11]);
});

t.test('log-store - below compactBytesMin the acked log is kept', async (t) => {
  const dir = t.testdir();
  const s = await open(t, { dir, sync: 'always', compactBytesMin: 1024 * 1024 });
  await appendAll(s, 10);
  const full = await sizeOf(join(dir, 'packets.log'));
  await s.ack(10);
  t.equal(await sizeOf(join(dir, 'packets.log')), full);
});

t.test('log-store - random appends, acks, reopens and torn tails keep every un-acked packet', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rand = prng(seed);
  const dir = t.testdir();
  const opts = (): LogStoreOptions => ({ dir, sync: rand() < 0.5 ? 'none' : 'always', compactBytesMin: rand() < 0.5 ? 1 : 1 << 30 });
  let s = await LogStore.open(opts());
  t.teardown(() => s.close());
  // The model: every appended packet by seq, and the ack position.
  const stored = new Map<number, ReturnType<typeof packet>>();
  let acked = 0;
  let lastSeq = 0;
  for (let step = 0; step < 150; step++) {
    const r = rand();
    if (r < 0.5) {
      const n = 1 + Math.floor(rand() * 8);
      const batch = Array.from({ length: n }, () => packet(Math.floor(rand() * 1e6)));
      const got = await Promise.all(batch.map((p) => s.append(p)));
      for (const [i, p] of got.entries()) {
        t.ok(p.seq > lastSeq, 'seqs strictly increase');
        lastSeq = p.seq;
        stored.set(p.seq, batch[i]!);
      }
    } else if (r < 0.75) {
      const to = acked + Math.floor(rand() * (lastSeq - acked + 1));
      await s.ack(to);
      acked = Math.max(acked, to);
    } else {
      await s.close();
      if (rand() < 0.4) await appendFile(join(dir, 'packets.log'), Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 20) }, () => Math.floor(rand() * 256))));
      s = await LogStore.open(opts());
    }
    const expected = [...stored].filter(([seq]) => seq > acked).map(([seq, p]) => ({ seq, ...p }));
    const got = s.readAfter(acked, 1e6);
    if (!t.same(got, expected, `step ${step}: the un-acked packets`)) break;
    t.same(s.readAfter(0, 1e6), expected, 'readAfter(0) returns nothing acked');
  }
});

t.test('log-store - close flushes an append still waiting for its batch window', async (t) => {
  const dir = t.testdir();
  const store = await LogStore.open({ dir, sync: 'batch', batchWindowMs: 10 });
  const pending = store.append(packet(1));
  await store.close();
  const p = await pending;
  t.equal(p.seq, 1, 'the waiting append resolved');
  const again = await LogStore.open({ dir });
  t.equal(again.readAfter(0, 10).length, 1, 'and it is on disk');
  await again.close();
});
