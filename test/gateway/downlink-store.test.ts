/**
 * DownlinkStore (gateway/downlink/store.ts): the DownlinkQueues contract over real files and over
 * SimDisk, and what survives a reopen.
 */
import t from 'tap';
import { silentLog } from '../../common/log.js';
import { realFiles } from '../../common/real-files.js';
import { DownlinkStore } from '../../gateway/downlink/store.js';
import type { DownlinkQueueLimits, MessageView } from '../../gateway/downlink/queue.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';
import { downlinkQueueContract, limitsDefault, ManualClock } from './downlink-queue-contract.js';

t.test('downlink-store - contract over real files', async (t) => {
  downlinkQueueContract(t, async (t, limits, clock) => {
    const q = await DownlinkStore.open({ dir: t.testdir(), files: realFiles, clock, log: silentLog, limits });
    t.teardown(() => q.close());
    return q;
  });
});

t.test('downlink-store - contract over SimDisk', async (t) => {
  let seed = 1;
  downlinkQueueContract(t, async (t, limits, clock) => {
    const disk = new SimDisk({ rng: new Rng(seed++).fn });
    const q = await DownlinkStore.open({ dir: '/gw/downlink', files: disk.process('gw'), clock, log: silentLog, limits });
    t.teardown(() => q.close());
    return q;
  });
});

const room = { messages: 100, bytes: 1_000_000, whole: true };
const strip = (vs: MessageView[]): MessageView[] => vs.map((v) => ({ ...v }));

t.test('downlink-store - a reopen gives the same states, order and history; delivered is queued again', async (t) => {
  const dir = t.testdir();
  const clock = new ManualClock();
  const limits: DownlinkQueueLimits = { ...limitsDefault, historyMessagesMax: 3 };
  const open = (): Promise<DownlinkStore> => DownlinkStore.open({ dir, clock, log: silentLog, limits });
  const q = await open();
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await q.enqueue('x', { target: `t${i}`, data: i % 2 === 0 ? new Uint8Array([i, 255]) : { n: i }, ttlMs: i === 5 ? 10 : undefined, from: 'app' });
    if (r.ok) ids.push(r.id);
  }
  await q.enqueue('y', { target: 'other', data: 'y' });
  q.take('x', { ...room, messages: 5 });
  q.requeue('x', [ids[3]!, ids[1]!]);
  await q.settle('x', [{ id: ids[0]!, ok: true }, { id: ids[2]!, ok: false, code: 'DOWNLINK_NO_ROUTE', reason: 'none' }]);
  clock.advance(10);
  t.equal(q.get('x', ids[5]!)?.state, 'expired');
  const before = strip(q.list('x'));
  t.same(before.map((m) => m.state), ['queued', 'queued', 'delivered', 'queued', 'queued', 'acked', 'rejected', 'expired']);
  await q.close();

  const r = await open();
  const after = strip(r.list('x'));
  t.same(after, before.map((m) => (m.state === 'delivered' ? { ...m, state: 'queued' } : m)), 'same messages, data, states, codes; delivered is queued');
  t.ok(after[2]!.data instanceof Uint8Array, 'bytes stay bytes');
  t.same(after[2]!.data, new Uint8Array([4, 255]));
  t.same(r.take('x', room).map((m) => m.id), [ids[1], ids[3], ids[4], ids[6], ids[7]], 'queue order holds');
  const late = await r.enqueue('x', { target: 'late', data: 1 });
  r.requeue('x', [ids[1]!, ids[6]!]);
  t.same(r.take('x', room).map((m) => m.target), ['t1', 't6', 'late'], 'the order counter went on after the reopen');
  t.ok(late.ok);
  t.equal(r.list('y').length, 1);
  t.same(r.stats().enqueued, 1, 'stats count since start');
  await r.close();
});

t.test('downlink-store - the history bound holds across reopens', async (t) => {
  const dir = t.testdir();
  const limits = { ...limitsDefault, historyMessagesMax: 2 };
  const q = await DownlinkStore.open({ dir, clock: new ManualClock(), log: silentLog, limits });
  for (let i = 0; i < 5; i++) {
    const r = await q.enqueue('x', { target: `t${i}`, data: i });
    q.take('x', room);
    if (r.ok) await q.settle('x', [{ id: r.id, ok: true }]);
  }
  await q.close();
  const r = await DownlinkStore.open({ dir, clock: new ManualClock(), log: silentLog, limits });
  t.same(r.list('x').map((m) => m.target), ['t3', 't4']);
  await r.close();
  const r0 = await DownlinkStore.open({ dir, clock: new ManualClock(), log: silentLog, limits: { ...limits, historyMessagesMax: 1 } });
  t.same(r0.list('x').map((m) => m.target), ['t4'], 'a smaller bound applies at open');
  await r0.close();
});

t.test('downlink-store - an enqueue that resolved survives a power cut right after', async (t) => {
  const disk = new SimDisk({ rng: new Rng(7).fn });
  const opts = { dir: '/gw/downlink', clock: new ManualClock(), log: silentLog, limits: limitsDefault };
  const q = await DownlinkStore.open({ ...opts, files: disk.process('gw') });
  const rs = await Promise.all(['a', 'b', 'c'].map((a) => q.enqueue(a, { target: 't', data: a })));
  disk.powerCut();
  const r = await DownlinkStore.open({ ...opts, files: disk.process('gw') });
  t.same(['a', 'b', 'c'].map((a, i) => r.get(a, rs[i]!.ok ? rs[i]!.id : '')?.state), ['queued', 'queued', 'queued']);
  t.equal(r.stats().syncs, 0);
  t.ok(q.stats().syncs >= 1 && q.stats().syncs <= 2, 'concurrent enqueues share a write (group commit)');
  await r.close();
});

t.test('downlink-store - a message sent once is never expired nor dropped at the gateway, also after a reopen (sim seeds 300022, 300031)', async (t) => {
  const dir = t.testdir();
  const clock = new ManualClock();
  const limits: DownlinkQueueLimits = { ...limitsDefault, queueMessagesMax: 2, fullPolicy: 'drop-oldest' };
  const open = (): Promise<DownlinkStore> => DownlinkStore.open({ dir, clock, log: silentLog, limits });
  let q = await open();
  const a = await q.enqueue('x', { target: 'a', data: 1, ttlMs: 100 });
  const b = await q.enqueue('x', { target: 'b', data: 2 });
  if (!a.ok || !b.ok) throw new Error('enqueue refused');
  t.same(q.take('x', { ...room, messages: 1 }).map((m) => m.id), [a.id], 'a is sent');
  q.requeue('x', [a.id]); // its session ended unanswered: its consumer may have taken it
  clock.advance(200);
  t.equal(q.get('x', a.id)?.state, 'queued', 'past its ttl, a is not expired at the gateway: its agent decides');
  t.equal(q.get('x', a.id)?.sent, true, 'and the API shows it was sent');
  const c = await q.enqueue('x', { target: 'c', data: 3 });
  t.ok(c.ok, 'drop-oldest makes room');
  t.equal(q.get('x', a.id)?.state, 'queued', 'by dropping b, never a');
  t.equal(q.get('x', b.id)?.state, 'dropped');
  await q.close();
  q = await open();
  t.teardown(() => q.close());
  t.same([q.get('x', a.id)?.state, q.get('x', a.id)?.sent], ['queued', true], 'after a reopen a is still queued and known as sent');
  t.same(q.take('x', room).map((m) => m.id), [a.id, (c as { id: string }).id], 'and goes first; the agent answers it (from its record, or expired by its own clock)');
  await q.settle('x', [{ id: a.id, ok: false, code: 'DOWNLINK_EXPIRED', reason: 'ttl' }]);
  t.equal(q.get('x', a.id)?.state, 'expired', 'the agent\'s DOWNLINK_EXPIRED makes it expired');
});
