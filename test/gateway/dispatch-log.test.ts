import t from 'tap';
import { appendFile, mkdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import { frameRecord, scanRecords } from '../../common/record.js';
import { createLog, silentLog } from '../../common/log.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** The encoding dispatch-log.ts writes its records with. */
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** With `compactBytes`: compaction on size alone (growth ratio 0), so a tiny bound compacts after every batch. */
async function open(t: Test, dir: string, compactBytes?: number): Promise<DispatchLog> {
  const d = await DispatchLog.open(dir, silentLog, compactBytes === undefined ? {} : { compactBytes, compactGrowthRatio: 0 });
  t.teardown(() => d.close().catch(() => undefined));
  return d;
}

const file = (dir: string): string => join(dir, 'dispatched.log');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const sizeOf = async (path: string): Promise<number> => (await stat(path)).size;

/** Floor and ranges of one agent, to compare in one assertion. */
const state = (d: DispatchLog, agent: string): { floor: number; ranges: [number, number][] } => ({ floor: d.floor(agent), ranges: d.ranges(agent, Infinity) });

t.test('dispatch-log - an unknown agent has floor 0, no ranges and no seqs', async (t) => {
  const d = await open(t, t.testdir());
  t.same(state(d, 'pi-1'), { floor: 0, ranges: [] });
  t.equal(d.gaps('pi-1'), 0);
  t.equal(d.has('pi-1', 1), false);
  await d.record('pi-1', 1);
  t.equal(d.has('pi-1', 1), true);
  t.equal(d.has('pi-2', 1), false, 'agents are kept apart');
});

t.test('dispatch-log - records in order move the floor', async (t) => {
  const d = await open(t, t.testdir());
  for (let s = 1; s <= 5; s++) await d.record('a', s);
  await d.record('b', 1);
  t.same(state(d, 'a'), { floor: 5, ranges: [] });
  t.same(state(d, 'b'), { floor: 1, ranges: [] });
});

t.test('dispatch-log - out-of-order records make gaps, and filling a gap moves the floor over it', async (t) => {
  const d = await open(t, t.testdir());
  for (const s of [1, 2, 4, 5]) await d.record('a', s);
  t.same(state(d, 'a'), { floor: 2, ranges: [[4, 5]] });
  t.equal(d.gaps('a'), 1);
  await d.record('a', 8);
  t.same(state(d, 'a'), { floor: 2, ranges: [[4, 5], [8, 8]] });
  t.equal(d.gaps('a'), 2);
  await d.record('a', 3);
  t.same(state(d, 'a'), { floor: 5, ranges: [[8, 8]] }, 'the floor runs through the range right above the filled gap');
  await d.record('a', 7);
  await d.record('a', 6);
  t.same(state(d, 'a'), { floor: 8, ranges: [] });
  t.equal(d.gaps('a'), 0);
});

t.test('dispatch-log - an agent whose first record is above 1 has floor 0 and one range', async (t) => {
  const d = await open(t, t.testdir());
  await d.record('a', 3);
  t.same(state(d, 'a'), { floor: 0, ranges: [[3, 3]] });
  await d.record('a', 1);
  t.same(state(d, 'a'), { floor: 1, ranges: [[3, 3]] });
});

t.test('dispatch-log - ranges returns at most rangesMax ranges, lowest first', async (t) => {
  const d = await open(t, t.testdir());
  for (const s of [10, 6, 2, 4, 5]) await d.record('a', s);
  t.same(d.ranges('a', 2), [[2, 2], [4, 6]]);
  t.same(d.ranges('a', 10), [[2, 2], [4, 6], [10, 10]]);
  t.same(d.ranges('a', 0), []);
  t.equal(d.gaps('a'), 3, 'gaps counts every range, whatever rangesMax asks for');
});

t.test('dispatch-log - has is true for recorded seqs and false for the gaps', async (t) => {
  const d = await open(t, t.testdir());
  for (const s of [1, 2, 4, 5, 9]) await d.record('a', s);
  t.same([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => d.has('a', s)), [true, true, false, true, true, false, false, false, true, false]);
});

t.test('dispatch-log - a seq is not there before its record resolves', async (t) => {
  // "Write first, ack second": has() must not say yes for a record that is not durable yet.
  const d = await open(t, t.testdir());
  const p = d.record('a', 1);
  t.equal(d.has('a', 1), false);
  t.equal(d.floor('a'), 0);
  await p;
  t.equal(d.has('a', 1), true);
});

t.test('dispatch-log - recording a seq that is already there changes nothing', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  for (let s = 1; s <= 10; s++) await d.record('a', s);
  await d.record('a', 12);
  await d.record('a', 4); // below the floor
  await d.record('a', 12); // already in a range
  t.same(state(d, 'a'), { floor: 10, ranges: [[12, 12]] });
  await d.close();
  t.same(state(await open(t, dir), 'a'), { floor: 10, ranges: [[12, 12]] }, 'also after reopen');
});

t.test('dispatch-log - state survives close and reopen, gaps included', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  for (let s = 1; s <= 20; s++) if (s !== 7 && s !== 15) await d.record('pi-1', s);
  await d.record('pi-2', 7);
  await d.close();
  const e = await open(t, dir);
  t.same(state(e, 'pi-1'), { floor: 6, ranges: [[8, 14], [16, 20]] });
  t.same(state(e, 'pi-2'), { floor: 0, ranges: [[7, 7]] });
  t.equal(e.has('pi-1', 7), false);
  t.equal(e.has('pi-1', 15), false);
  await e.record('pi-1', 7);
  await e.close();
  t.same(state(await open(t, dir), 'pi-1'), { floor: 14, ranges: [[16, 20]] }, 'records added after a reopen survive the next one');
});

t.test('dispatch-log - raiseFloor drops the gaps below it and merges a range right above it into the floor', async (t) => {
  const d = await open(t, t.testdir());
  for (const s of [1, 3, 5, 6, 7, 10, 12]) await d.record('a', s);
  t.same(state(d, 'a'), { floor: 1, ranges: [[3, 3], [5, 7], [10, 10], [12, 12]] });
  d.raiseFloor('a', 4);
  t.same(state(d, 'a'), { floor: 7, ranges: [[10, 10], [12, 12]] }, 'at once, without waiting: 2 and 4 are let go, 5..7 joins the floor');
  t.equal(d.has('a', 2), true, 'a let-go gap counts as done');
  t.equal(d.has('a', 8), false);
  d.raiseFloor('a', 11);
  t.same(state(d, 'a'), { floor: 12, ranges: [] }, 'a floor that lands inside a gap below a range also merges it');
  d.raiseFloor('a', 5);
  t.same(state(d, 'a'), { floor: 12, ranges: [] }, 'a lower floor is ignored');
});

t.test('dispatch-log - raiseFloor into the middle of a range takes the whole range', async (t) => {
  const d = await open(t, t.testdir());
  for (const s of [1, 4, 5, 6, 7, 9]) await d.record('a', s);
  d.raiseFloor('a', 5);
  t.same(state(d, 'a'), { floor: 7, ranges: [[9, 9]] });
});

t.test('dispatch-log - raiseFloor on an unknown agent creates it', async (t) => {
  const d = await open(t, t.testdir());
  d.raiseFloor('new', 9);
  t.same(state(d, 'new'), { floor: 9, ranges: [] });
  t.equal(d.has('new', 9), true);
});

t.test('dispatch-log - a raised floor is written with the next record and survives reopen', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  for (const s of [1, 3, 5]) await d.record('a', s);
  d.raiseFloor('a', 10);
  await d.record('a', 20);
  await d.record('b', 1); // b's record does not carry a's floor again: it went with a's
  await d.close();
  const e = await open(t, dir);
  t.same(state(e, 'a'), { floor: 10, ranges: [[20, 20]] });
  t.equal(e.has('a', 2), true, 'the let-go gap stays let go');
});

t.test('dispatch-log - a raised floor rides the record of another agent too', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  await d.record('a', 1);
  d.raiseFloor('a', 10);
  await d.record('b', 1);
  await d.close();
  t.same(state(await open(t, dir), 'a'), { floor: 10, ranges: [] });
});

t.test('dispatch-log - a raised floor rides a record already waiting for its batch', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  await d.record('a', 1);
  const p = d.record('a', 20);
  d.raiseFloor('a', 10);
  await p;
  t.equal(d.syncs, 2);
  await d.close();
  t.same(state(await open(t, dir), 'a'), { floor: 10, ranges: [[20, 20]] });
});

t.test('dispatch-log - a raiseFloor alone is not durable: lost on reopen without a later record (by design)', async (t) => {
  // The agent's next HELLO raises it again; the gateway does not wait for it.
  const dir = t.testdir();
  const d = await open(t, dir);
  for (const s of [1, 3]) await d.record('a', s);
  const bytes = await sizeOf(file(dir));
  d.raiseFloor('a', 10);
  t.equal(d.floor('a'), 10, 'in memory at once');
  await d.close();
  t.equal(await sizeOf(file(dir)), bytes, 'nothing was written for it');
  t.same(state(await open(t, dir), 'a'), { floor: 1, ranges: [[3, 3]] });
});

t.test('dispatch-log - a version 1 file ({a, s} records) opens with that floor', async (t) => {
  const dir = t.testdir();
  await writeFile(file(dir), Buffer.concat([frameRecord(cbor.encode({ a: 'x', s: 7 })), frameRecord(cbor.encode({ a: 'y', s: 3 })), frameRecord(cbor.encode({ a: 'x', s: 5 }))]));
  const d = await open(t, dir);
  t.same(state(d, 'x'), { floor: 7, ranges: [] }, 'a lower floor later in the file does not lower it');
  t.same(state(d, 'y'), { floor: 3, ranges: [] });
  t.equal(d.has('x', 7), true);
  t.equal(d.has('x', 8), false);
  await d.record('x', 9);
  await d.record('x', 8);
  await d.close();
  t.same(state(await open(t, dir), 'x'), { floor: 9, ranges: [] }, 'new records append to a version 1 file');
});

t.test('dispatch-log - records issued together share syncs and all resolve', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir);
  const agents = ['a', 'b', 'c', 'd'];
  // 50 seqs per agent, interleaved across agents and each agent's seqs in reverse order.
  await Promise.all(Array.from({ length: 200 }, (_, i) => d.record(agents[i % 4]!, 50 - Math.floor(i / 4))));
  t.ok(d.syncs >= 1, 'synced');
  t.ok(d.syncs < 200, `fewer syncs than records (${d.syncs})`);
  t.same(agents.map((a) => state(d, a)), agents.map(() => ({ floor: 50, ranges: [] })));
  await d.close();
  const e = await open(t, dir);
  t.same(agents.map((a) => state(e, a)), agents.map(() => ({ floor: 50, ranges: [] })), 'the batch is durable');
});

t.test('dispatch-log - records issued in the same tick, also from callbacks, share one sync', async (t) => {
  const d = await open(t, t.testdir());
  // As sessions served in one tick would: one record now, the others from later microtasks.
  const pending = [d.record('a', 1)];
  await Promise.resolve();
  pending.push(d.record('b', 1));
  await new Promise<void>((resolve) => process.nextTick(resolve));
  pending.push(d.record('c', 1));
  pending.push(d.record('a', 3));
  await Promise.all(pending);
  t.equal(d.syncs, 1);
  t.same([d.floor('a'), d.floor('b'), d.floor('c')], [1, 1, 1]);
  t.same(d.ranges('a', 10), [[3, 3]]);
});

t.test('dispatch-log - records awaited one by one each get their own sync', async (t) => {
  // The control for the tests above: syncs does count every fdatasync.
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
  await d.record('a', 2);
  await d.close();
  const threeRecords = await sizeOf(file(dir));

  await truncate(file(dir), threeRecords - 2);
  const e = await open(t, dir);
  t.same(state(e, 'a'), { floor: 1, ranges: [] }, 'the half-written record for a=2 is gone');
  t.same(state(e, 'b'), { floor: 0, ranges: [[2, 2]] });
  t.equal(await sizeOf(file(dir)), twoRecords, 'the file ends at the last intact record');
  await e.record('a', 2);
  await e.close();

  await appendFile(file(dir), Buffer.from([0, 0, 0, 9, 1, 2, 3]));
  const f = await open(t, dir);
  t.same(state(f, 'a'), { floor: 2, ranges: [] }, 'a record written after the cut is read back');
  t.same(state(f, 'b'), { floor: 0, ranges: [[2, 2]] });
  t.equal(await sizeOf(file(dir)), threeRecords, 'appended garbage is cut too');
});

t.test('dispatch-log - compaction bounds the file and keeps floors and gaps', async (t) => {
  const dir = t.testdir();
  const lines: string[] = [];
  const d = await DispatchLog.open(dir, createLog({ level: 'info', write: (l) => lines.push(l) }), { compactBytes: 256 });
  t.teardown(() => d.close().catch(() => undefined));
  let sizeMax = 0;
  for (let s = 1; s <= 100; s++) {
    await d.record('pi-1', s);
    if (s <= 60 && s !== 30) await d.record('pi-2', s);
    sizeMax = Math.max(sizeMax, await sizeOf(file(dir)));
  }
  await d.record('pi-2', 5); // below the floor: must not change the snapshot
  t.ok(lines.some((l) => l.includes('dispatch log: compacted')), 'compaction ran');
  t.ok(sizeMax <= 256 + 64, `the file stays near the bound instead of growing with every record (max ${sizeMax})`);
  await d.close();
  const e = await open(t, dir);
  t.same(state(e, 'pi-1'), { floor: 100, ranges: [] });
  t.same(state(e, 'pi-2'), { floor: 29, ranges: [[31, 60]] });
  t.equal(e.has('pi-2', 30), false, 'the gap survives compaction');
  await e.record('pi-3', 1);
  await e.record('pi-2', 30);
  await e.close();
  const f = await open(t, dir);
  t.same([state(f, 'pi-1'), state(f, 'pi-2'), state(f, 'pi-3')], [{ floor: 100, ranges: [] }, { floor: 60, ranges: [] }, { floor: 1, ranges: [] }], 'appends after a compaction land in the new file');
});

t.test('dispatch-log - compaction keeps a raised floor', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir, 1); // compacts after every batch
  for (const s of [1, 3]) await d.record('a', s);
  d.raiseFloor('a', 10);
  await d.record('b', 1);
  await d.close();
  t.same(state(await open(t, dir), 'a'), { floor: 10, ranges: [] });
});

t.test('dispatch-log - a compacted file holds exactly one record per agent', async (t) => {
  const dir = t.testdir();
  const d = await open(t, dir, 1); // compacts after every batch
  for (const s of [1, 2, 3, 5]) await d.record('a', s);
  for (const s of [10, 12, 11]) await d.record('b', s);
  await d.close(); // waits for the compaction that follows the last record
  // What compaction writes per agent: { a, s: floor, r: ranges above it }.
  const snapshot = [{ a: 'a', s: 3, r: [[5, 5]] }, { a: 'b', s: 0, r: [[10, 12]] }];
  const snapshotBytes = snapshot.reduce((n, r) => n + frameRecord(cbor.encode(r)).length, 0);
  t.equal(await sizeOf(file(dir)), snapshotBytes, 'the older records were dropped');
  const { bodies, validBytes } = scanRecords(await readFile(file(dir)));
  t.equal(validBytes, snapshotBytes);
  t.same(bodies.map((b) => cborDecoder.decode(b) as unknown), snapshot);
  const e = await open(t, dir);
  t.same([state(e, 'a'), state(e, 'b')], [{ floor: 3, ranges: [[5, 5]] }, { floor: 0, ranges: [[10, 12]] }]);
});

t.test('dispatch-log - a failed compaction does not stop later records', async (t) => {
  const dir = t.testdir();
  await mkdir(join(dir, 'dispatched.log.tmp')); // compaction cannot open its temp file (EISDIR)
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => void unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  const d = await open(t, dir, 1); // compacts after every batch
  await d.record('a', 1);
  t.equal(d.floor('a'), 1, 'the record before the compaction is done');
  const second = d.record('a', 2).then(
    () => 'resolved',
    (err: Error) => `rejected: ${err.message}`,
  );
  // A liveness bound, not a timing measurement: an append + fdatasync takes milliseconds.
  const outcome = await Promise.race([second, sleep(2000).then(() => 'still pending after 2 s')]);
  t.equal(outcome, 'resolved', 'the next record is written to the uncompacted file');
  t.same(unhandled.map((e) => (e as Error).message), [], 'no unhandled rejection (it would end the gateway process)');
});
