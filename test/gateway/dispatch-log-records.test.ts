/**
 * The dispatch log never writes a record its reader cannot read back: a state whose records
 * (a batch's, or one agent's in a snapshot) would pass the reader's body limit is split into
 * records that fit, and survives compaction and reopen whole. (Before, one agent's record over
 * 16 MiB was read back as a torn tail and cut, with every record after it.)
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { Encoder } from 'cbor-x';
import { join } from 'node:path';
import { silentLog } from '../../common/log.js';
import { frameRecord, scanRecords } from '../../common/record.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import { prng, testSeed } from '../helpers/seed.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const file = (dir: string): string => join(dir, 'dispatched.log');

t.test('dispatch-log records - one agent with ranges worth more than 16 MiB of record, between others, survives a compaction and reopens whole', async (t) => {
  const dir = t.testdir();
  // Seqs above 2^32 take 9 bytes each in CBOR: 890k single-seq ranges are ~16.1 MiB in one record.
  const base = 2 ** 33;
  const n = 890_000;
  // The state as many small records (what batches write); the compaction is the test.
  const parts = [frameRecord(cbor.encode({ a: 'a', s: 1 }))];
  for (let i = 0; i < n; i += 10_000) {
    parts.push(frameRecord(cbor.encode({ a: 'h', r: Array.from({ length: Math.min(10_000, n - i) }, (_, j) => [base + 2 * (i + j), base + 2 * (i + j)]) })));
  }
  parts.push(frameRecord(cbor.encode({ a: 'b', s: 1, r: [[3, 3]] })));
  await writeFile(file(dir), Buffer.concat(parts));
  const check = (e: DispatchLog, when: string): void => {
    t.same([e.floor('a'), e.floor('b'), e.ranges('b', 10), e.floor('c')], [1, 1, [[3, 3]], 1], `${when}: the agents around it are whole`);
    t.equal(e.gaps('h'), n, `${when}: every range of the big agent is there`);
    t.ok(e.has('h', base) && e.has('h', base + 2 * (n - 1)) && !e.has('h', base + 1), `${when}: first and last`);
  };
  // Compaction on size alone: the next batch is followed by a snapshot.
  let d = await DispatchLog.open(dir, silentLog, { compactBytes: 1, compactGrowthRatio: 0 });
  await d.record('c', 1);
  await d.close();
  const buf = await readFile(file(dir));
  t.ok(buf.length > 16 * 1024 * 1024, `the snapshot is ${buf.length} bytes`);
  t.equal(scanRecords(buf).validBytes, buf.length, 'the snapshot reads back whole');
  d = await DispatchLog.open(dir, silentLog);
  check(d, 'after a compaction and a reopen');
  await d.close();
});

t.test('dispatch-log records - with a small record limit, a random state many times its size survives compactions and reopens (read in small pieces) (SEED= replays)', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const dir = t.testdir();
  const recordBodyBytesMax = 2048;
  const opts = { recordBodyBytesMax, compactBytes: 20_000, ioChunkBytes: 3000 };
  const model = new Map<string, Set<number>>();
  let d = await DispatchLog.open(dir, silentLog, opts);
  let compactions = 0; // across every instance: a reopen starts its count again
  for (let round = 0; round < 6; round++) {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 3000; i++) {
      const agent = `agent-${Math.floor(rng() * 5)}${'x'.repeat(Math.floor(rng() * 200))}`.slice(0, 12 + Math.floor(rng() * 200));
      const seq = 1 + Math.floor(rng() * 2 ** 40);
      if (!model.has(agent)) model.set(agent, new Set());
      model.get(agent)!.add(seq);
      writes.push(d.record(agent, seq));
    }
    await Promise.all(writes);
    // Each round's writes are about one group commit, and compaction is looked at after a commit: an
    // instance reopened after every round would never compact (seed 152299111), so the first sees two.
    if (round > 0 && rng() < 0.5) {
      compactions += d.compactions;
      await d.close();
      d = await DispatchLog.open(dir, silentLog, opts);
    }
  }
  compactions += d.compactions;
  t.ok(compactions > 0, `compaction ran (${compactions} times)`);
  await d.close();
  const buf = await readFile(file(dir));
  t.equal(scanRecords(buf, recordBodyBytesMax).validBytes, buf.length, 'every record on disk fits the limit');
  d = await DispatchLog.open(dir, silentLog, opts);
  const missing: string[] = [];
  for (const [agent, seqs] of model) for (const s of seqs) if (!d.has(agent, s)) missing.push(`${agent}:${s}`);
  t.same(missing.slice(0, 5), [], `all ${[...model.values()].reduce((n, s) => n + s.size, 0)} seqs are there (seed ${seed})`);
  await d.close();
});
