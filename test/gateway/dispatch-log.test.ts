import t from 'tap';
import { appendFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import { createLog, silentLog } from '../../common/log.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function open(t: Test, dir: string, compactBytes?: number): Promise<DispatchLog> {
  const d = await DispatchLog.open(dir, silentLog, compactBytes);
  t.teardown(() => d.close().catch(() => undefined));
  return d;
}

const file = (dir: string): string => join(dir, 'dispatched.log');
const sizeOf = async (path: string): Promise<number> => (await stat(path)).size;

t.test('dispatch-log - get is 0 for an unknown agent and the recorded seq after record', async (t) => {
  const d = await open(t, t.testdir());
  t.equal(d.get('pi-1'), 0);
  await d.record('pi-1', 5);
  await d.record('pi-2', 3);
  t.equal(d.get('pi-1'), 5);
  t.equal(d.get('pi-2'), 3);
  t.equal(d.get('pi-3'), 0);
});

t.test('dispatch-log - a lower seq never lowers what is recorded', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  await d.record('a', 10);
  await d.record('a', 4);
  t.equal(d.get('a'), 10);
  await d.close();
  t.equal((await open(t, dir)).get('a'), 10, 'also after reopen');
});

t.test('dispatch-log - records survive close and reopen', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  for (let s = 1; s <= 20; s++) await d.record('pi-1', s);
  await d.record('pi-2', 7);
  await d.close();
  const e = await open(t, dir);
  t.equal(e.get('pi-1'), 20);
  t.equal(e.get('pi-2'), 7);
  await e.record('pi-1', 21);
  await e.close();
  t.equal((await open(t, dir)).get('pi-1'), 21, 'records added after a reopen survive the next one');
});

t.test('dispatch-log - records issued together share syncs and all resolve', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  const agents = ['a', 'b', 'c', 'd'];
  await Promise.all(Array.from({ length: 200 }, (_, i) => d.record(agents[i % 4]!, i + 1)));
  t.ok(d.syncs >= 1, 'synced');
  t.ok(d.syncs < 200, `fewer syncs than records (${d.syncs})`);
  t.same(agents.map((a) => d.get(a)), [197, 198, 199, 200]);
  await d.close();
  const e = await open(t, dir);
  t.same(agents.map((a) => e.get(a)), [197, 198, 199, 200], 'the batch is durable');
});

t.test('dispatch-log - records issued in the same tick, also from callbacks, share one sync', async (t) => {
  const d = await open(t, t.testdir());
  // As sessions served in one tick would: one record now, the others from later microtasks.
  const pending = [d.record('a', 1)];
  await Promise.resolve();
  pending.push(d.record('b', 1));
  await new Promise<void>((resolve) => process.nextTick(resolve));
  pending.push(d.record('c', 1));
  await Promise.all(pending);
  t.equal(d.syncs, 1);
  t.same([d.get('a'), d.get('b'), d.get('c')], [1, 1, 1]);
});

t.test('dispatch-log - records awaited one by one each get their own sync', async (t) => {
  // The control for the test above: syncs does count every fdatasync.
  const d = await open(t, t.testdir());
  for (let s = 1; s <= 5; s++) await d.record('a', s);
  t.equal(d.syncs, 5);
});

t.test('dispatch-log - a torn tail is cut on open and the intact records survive', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  await d.record('a', 1);
  await d.record('b', 2);
  const twoRecords = await sizeOf(file(dir));
  await d.record('a', 3);
  await d.close();
  const threeRecords = await sizeOf(file(dir));

  await truncate(file(dir), threeRecords - 2);
  const e = await open(t, dir);
  t.equal(e.get('a'), 1, 'the half-written record for a=3 is gone');
  t.equal(e.get('b'), 2);
  t.equal(await sizeOf(file(dir)), twoRecords, 'the file ends at the last intact record');
  await e.record('a', 4);
  await e.close();

  await appendFile(file(dir), Buffer.from([0, 0, 0, 9, 1, 2, 3]));
  const f = await open(t, dir);
  t.equal(f.get('a'), 4, 'a record written after the cut is read back');
  t.equal(f.get('b'), 2);
  t.equal(await sizeOf(file(dir)), twoRecords + (threeRecords - twoRecords), 'appended garbage is cut too');
});

t.test('dispatch-log - compaction rewrites the file to one record per agent with its max seq', async (t) => {
  const dir = t.testdir();
  const lines: string[] = [];
  const d = await DispatchLog.open(dir, createLog({ level: 'info', write: (l) => lines.push(l) }), 256);
  t.teardown(() => d.close().catch(() => undefined));
  for (let s = 1; s <= 100; s++) {
    await d.record('pi-1', s);
    if (s % 2 === 0) await d.record('pi-2', s * 10);
  }
  await d.record('pi-2', 3); // lower than what is recorded: must not win in the snapshot
  t.ok(lines.some((l) => l.includes('dispatch log: compacted')), 'compaction ran');
  t.ok((await sizeOf(file(dir))) <= 256 + 64, 'the file stays near the bound instead of growing with every record');
  await d.close();
  const e = await open(t, dir);
  t.equal(e.get('pi-1'), 100);
  t.equal(e.get('pi-2'), 1000);
  await e.record('pi-3', 1);
  await e.close();
  const f = await open(t, dir);
  t.same([f.get('pi-1'), f.get('pi-2'), f.get('pi-3')], [100, 1000, 1], 'appends after a compaction land in the new file');
});

t.test('dispatch-log - a compacted file holds exactly one record per agent', async (t) => {
  // The size of one record per agent, written without compaction.
  const refDir = t.testdir();
  const ref = await open(t, refDir);
  await ref.record('a', 3);
  await ref.record('b', 12);
  await ref.close();
  const snapshotBytes = await sizeOf(file(refDir));

  const dir = join(refDir, 'compacting');
  const d = await open(t, dir, 1); // compacts after every batch
  for (const s of [1, 2, 3]) await d.record('a', s);
  for (const s of [10, 12, 11]) await d.record('b', s);
  await d.close(); // waits for the compaction that follows the last record
  t.equal(await sizeOf(file(dir)), snapshotBytes, 'the older records were dropped');
  const e = await open(t, dir);
  t.same([e.get('a'), e.get('b')], [3, 12]);
});
