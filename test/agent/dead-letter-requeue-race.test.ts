/**
 * Found by review (issue 10, "a concurrent CLI command"; data loss): before the fix, SegmentStore.requeueDeadLetters lists
 * the dead letters, appends them (each waits for its sync), then truncates the dead-letter log.
 * Nothing serialises it with another requeue nor with SegmentStore.deadLetter:
 * - two `ferry dead-letters --requeue` (or two local API requests) at once both list the same
 *   letters and both append them: each rejected packet comes back twice (delivered twice);
 * - a packet the gateway rejects while a requeue runs is written to the log after the list and
 *   before the truncate: it is acked (ackOne) and then erased, in neither the store nor the log.
 */
import t from 'tap';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentStore } from '../../agent/store/segment-store.js';

const pkt = (n: number) => ({ target: 'dl', ts: n, data: { n } });

async function storeWithLetters(t: Test, letters: number) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-review-dl-'));
  const s = await SegmentStore.open({ dir: join(dir, 'store') });
  t.teardown(async () => {
    await s.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  for (let n = 0; n < letters; n++) {
    const p = await s.append(pkt(n));
    await s.deadLetter(p, 'HANDLER_REJECTED', 'refused');
  }
  return s;
}

/** The `n` of every packet pending in the store (after what was acked). */
async function pending(s: SegmentStore): Promise<number[]> {
  const got = await s.readAfter(0, 10_000);
  return got.map((p) => (p.data as { n: number }).n);
}

t.test('dead letters - two requeues at once bring each letter back once', async (t) => {
  const s = await storeWithLetters(t, 3);
  const [a, b] = await Promise.all([s.requeueDeadLetters(), s.requeueDeadLetters()]);
  t.comment(`the two requeues said ${a} and ${b}`);
  t.same((await pending(s)).sort(), [0, 1, 2], 'each rejected packet is pending once');
  t.same(await s.deadLetters(), [], 'the dead-letter log is empty');
});

t.test('dead letters - a packet rejected while a requeue runs is not lost', async (t) => {
  const s = await storeWithLetters(t, 3);
  const late = await s.append(pkt(99));
  const requeue = s.requeueDeadLetters();
  // The link moves a NACKed packet to the dead letters while the requeue's appends wait for their sync.
  await s.deadLetter(late, 'HANDLER_REJECTED', 'refused');
  await requeue;
  const inStore = await pending(s);
  const inLog = (await s.deadLetters()).map((d) => (d.packet.data as { n: number }).n);
  t.comment(`pending ${JSON.stringify(inStore)}, dead letters ${JSON.stringify(inLog)}`);
  t.ok(inStore.includes(99) || inLog.includes(99), 'the late rejected packet is pending or a dead letter');
});
