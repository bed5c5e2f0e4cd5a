import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentStore } from '../../agent/store/segment-store.js';

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-head-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('store - the oldest backlog packet follows acks, cumulative and selective, also read from flash after a reopen', async (t) => {
  const dir = await tmp(t);
  let store = await SegmentStore.open({ dir, segmentBytes: 4096, ackFlushMs: 5 });
  t.equal(await store.oldestBacklog(), null, 'none in an empty store');
  t.equal(store.backlogBytes(), 0);
  for (let i = 1; i <= 200; i++) await store.append({ target: 'a/b', data: { i, pad: 'x'.repeat(40) }, ts: i * 1000 });
  t.same(await store.oldestBacklog(), { seq: 1, ts: 1000 });
  await store.ack(3);
  t.same(await store.oldestBacklog(), { seq: 4, ts: 4000 }, 'after a cumulative ack');
  await store.ackOne(4, 6);
  t.same(await store.oldestBacklog(), { seq: 7, ts: 7000 }, 'after a selective ack at the head');
  await store.ackOne(8);
  t.same(await store.oldestBacklog(), { seq: 7, ts: 7000 }, 'a selective ack past the head changes nothing');
  const usedBefore = store.stats().storeBytes;
  t.ok(store.backlogBytes() > 0 && store.backlogBytes() <= usedBefore, 'backlog bytes within the store bytes');
  await store.close();

  store = await SegmentStore.open({ dir, segmentBytes: 4096, ackFlushMs: 5 });
  t.teardown(() => store.close());
  t.same(await store.oldestBacklog(), { seq: 7, ts: 7000 }, 'found on flash (nothing in memory after the reopen)');
  await store.ack(150);
  t.same(await store.oldestBacklog(), { seq: 151, ts: 151_000 }, 'in a later segment');
  const bytes = store.backlogBytes();
  t.ok(bytes < usedBefore, `fewer backlog bytes once most is acked (${bytes} < ${usedBefore})`);
  await store.ack(200);
  t.equal(await store.oldestBacklog(), null, 'none once all is acked');
  t.equal(store.backlogBytes(), 0);
});

t.test('store - onCommit is told the time of each commit', async (t) => {
  const dir = await tmp(t);
  const seen: number[] = [];
  let mono = 0;
  const store = await SegmentStore.open({ dir, onCommit: (s) => seen.push(s), monoNowMs: () => (mono += 2) });
  t.teardown(() => store.close());
  await store.append({ target: 'a', data: 1, ts: 1 });
  await store.append({ target: 'a', data: 2, ts: 2 });
  t.equal(seen.length, 2, 'one commit per append made alone');
  t.same(seen, [0.002, 0.002], 'in seconds, from the injected clock');
});
