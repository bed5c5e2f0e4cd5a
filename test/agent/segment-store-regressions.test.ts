/** Regression cases for store defects once found (see the test names). */
import t from 'tap';
import { SegmentStore } from '../../agent/store/segment-store.js';
import { FakeClock } from './fixtures/fake-clock.js';

const pkt = (i: number, extra: { ttlMs?: number; ts?: number } = {}) => ({ target: `t/${i}`, ts: extra.ts ?? 0, data: { i, pad: 'x'.repeat(100) }, ...(extra.ttlMs ? { ttlMs: extra.ttlMs } : {}) });

t.test('segment-store - an expiring first packet does not hide the one after it', async (t) => {
  const clock = new FakeClock(1_000_000);
  const s = await SegmentStore.open({ dir: t.testdir(), clock });
  t.teardown(() => s.close());
  await s.append(pkt(1, { ts: clock.now(), ttlMs: 1000 }));
  await s.append(pkt(2, { ts: clock.now() }));
  await s.append(pkt(3, { ts: clock.now() }));
  clock.advance(1001);
  t.same((await s.readAfter(0, 10)).map((p) => p.seq), [2, 3]);
  t.equal(s.stats().dropped.ttl, 1);
});

t.test('segment-store - reject: once everything is acked, appends succeed at once', async (t) => {
  const s = await SegmentStore.open({ dir: t.testdir(), segmentBytes: 4096, bytesMax: 16384, fullPolicy: 'reject' });
  t.teardown(() => s.close());
  let refused = false;
  for (let i = 0; i < 1000 && !refused; i++) await s.append(pkt(i)).catch(() => (refused = true));
  t.ok(refused, 'the store filled up');
  await s.ack(s.stats().lastSeq);
  const p = await s.append(pkt(9999));
  t.ok(p.seq > 0, 'the next append is accepted without waiting for the ack state to be written');
});

t.test('segment-store - seqs skipped by advanceSeq are neither acked nor pending', async (t) => {
  const s = await SegmentStore.open({ dir: t.testdir() });
  t.teardown(() => s.close());
  await s.append(pkt(1));
  await s.append(pkt(2));
  await s.advanceSeq(100);
  const p = await s.append(pkt(3));
  t.equal(p.seq, 101);
  t.equal(s.stats().backlogPackets, 3, 'three packets pending');
  await s.ack(101);
  t.equal(s.stats().acked, 3, 'acking them counts three, not 101');
  t.equal(s.stats().backlogPackets, 0);
});

t.test('segment-store - drop-oldest never refuses, also when many appends share one write', async (t) => {
  const s = await SegmentStore.open({ dir: t.testdir(), segmentBytes: 4096, bytesMax: 32768 });
  t.teardown(() => s.close());
  const results = await Promise.allSettled(Array.from({ length: 500 }, (_, i) => s.append(pkt(i))));
  t.equal(results.filter((r) => r.status === 'rejected').length, 0, 'no append refused');
  t.ok(s.stats().segments > 2, `a big batch is split across segments (${s.stats().segments})`);
  t.ok(s.stats().storeBytes <= 32768 + 128, 'the store stays within its capacity');
});

t.test('segment-store - bytes nested in a value survive a read from disk that reuses its buffer', async (t) => {
  const dir = t.testdir();
  const a = await SegmentStore.open({ dir, segmentBytes: 1 << 20 });
  for (let i = 0; i < 3000; i++) await a.append({ target: 't', ts: i, data: { i, b: new Uint8Array(200).fill(i & 255) } });
  await a.close();
  const b = await SegmentStore.open({ dir, segmentBytes: 1 << 20 });
  t.teardown(() => b.close());
  const all: { i: number; b: Uint8Array }[] = [];
  let after = 0;
  for (;;) {
    const got = await b.readAfter(after, 500);
    if (got.length === 0) break;
    all.push(...got.map((p) => p.data as unknown as { i: number; b: Uint8Array }));
    after = got[got.length - 1]!.seq;
  }
  t.equal(all.length, 3000);
  t.equal(all.filter((d) => d.b.some((x) => x !== (d.i & 255))).length, 0, 'every nested byte string holds what was appended');
});
