import t from 'tap';
import { RetryQueue } from '../../agent/link/retry-queue.js';
import type { Packet } from '../../protocol/packet.js';

const packet = (seq: number, target = 'a'): Packet => ({ seq, target, data: null, ts: 0 });
const always = (): boolean => true;
/** A `fits` that admits the first `n` packets it is asked about. */
const firstN = (n: number) => (): boolean => n-- > 0;
/** The seqs takeDue handed out. */
const seqs = (out: { packet: Packet }[]): number[] => out.map((e) => e.packet.seq);
/** Takes everything, due or not, so a test can see what the queue holds and in which order. */
const drain = (q: RetryQueue): number[] => seqs(q.takeDue(Infinity, always));

t.test('retry-queue - packets come out in seq order whatever order they were added in', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  for (const s of [5, 2, 9, 1, 7]) q.add(packet(s), 10, 0);
  t.equal(q.size, 5);
  t.same(drain(q), [1, 2, 5, 7, 9]);
  t.equal(q.size, 0);
});

t.test('retry-queue - a seq added twice is kept once, with its first bytes and due time', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(3), 10, 100);
  q.add(packet(1), 10, 0);
  q.add(packet(3), 999, 0);
  q.add(packet(1), 10, 0);
  t.equal(q.size, 2);
  t.same(seqs(q.takeDue(50, always)), [1], 'the duplicate did not make 3 due earlier');
  const out = q.takeDue(100, always);
  t.same(out.map((e) => [e.packet.seq, e.bytes]), [[3, 10]]);
});

t.test('retry-queue - a duplicate does not count against the bounds', async (t) => {
  const q = new RetryQueue(2, 1000);
  q.add(packet(1), 10, 0);
  q.add(packet(1), 10, 0);
  t.equal(q.full, false, 'one packet, not two');
  q.add(packet(2), 10, 0);
  t.equal(q.full, true);
});

t.test('retry-queue - full by packets', async (t) => {
  const q = new RetryQueue(3, 1_000_000);
  q.add(packet(1), 1, 0);
  q.add(packet(2), 1, 0);
  t.equal(q.full, false);
  q.add(packet(3), 1, 0);
  t.equal(q.full, true, 'at packetsMax');
  t.same(q.takeDue(0, () => false), [], 'nothing fits');
  t.equal(q.full, true);
  t.same(seqs(q.takeDue(0, firstN(1))), [1]);
  t.equal(q.full, false, 'below packetsMax again after one was taken');
});

t.test('retry-queue - full by bytes', async (t) => {
  const q = new RetryQueue(100, 100);
  q.add(packet(1), 60, 0);
  t.equal(q.full, false);
  q.add(packet(2), 39, 0);
  t.equal(q.full, false, '99 bytes');
  q.add(packet(3), 1, 0);
  t.equal(q.full, true, 'at bytesMax');
  q.remove((s) => s === 1);
  t.equal(q.full, false, 'bytes are given back on remove');
  q.add(packet(4), 61, 0);
  t.equal(q.full, true);
  t.same(seqs(q.takeDue(0, (b) => b < 50)), [2, 3], 'stops at 4, which does not fit');
  t.equal(q.full, false, 'bytes are given back on takeDue: 61 left');
  q.add(packet(5), 39, 0);
  t.equal(q.full, true, '100 bytes again');
  q.clear();
  t.equal(q.full, false, 'bytes are given back on clear');
});

t.test('retry-queue - takeDue returns the due packets in seq order and keeps the rest', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(3, 'x'), 10, 100);
  q.add(packet(1, 'y'), 10, 300);
  q.add(packet(2, 'z'), 10, 50);
  q.add(packet(4, 'w'), 10, 100);
  t.same(seqs(q.takeDue(49, always)), [], 'nothing due yet');
  t.equal(q.size, 4);
  t.same(seqs(q.takeDue(100, always)), [2, 3, 4], 'due means dueMs <= now');
  t.equal(q.size, 1);
  t.same(seqs(q.takeDue(299, always)), []);
  t.same(seqs(q.takeDue(300, always)), [1]);
  t.equal(q.size, 0);
});

t.test('retry-queue - takeDue hands out each packet once', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  for (const s of [1, 2, 3]) q.add(packet(s), 10, 0);
  t.same(seqs(q.takeDue(0, always)), [1, 2, 3]);
  t.same(seqs(q.takeDue(0, always)), []);
  t.equal(q.nextDueMs(0), null);
});

t.test('retry-queue - a packet not yet due holds back later packets of its target, not of other targets', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(1, 'a'), 10, 0);
  q.add(packet(2, 'a'), 10, 500); // not due
  q.add(packet(3, 'b'), 10, 0);
  q.add(packet(4, 'a'), 10, 0); // due, but behind 2
  q.add(packet(5, 'b'), 10, 0);
  q.add(packet(6, 'c'), 10, 0);
  t.same(seqs(q.takeDue(100, always)), [1, 3, 5, 6]);
  t.equal(q.size, 2);
  t.same(seqs(q.takeDue(499, always)), [], '4 still waits for 2');
  t.same(seqs(q.takeDue(500, always)), [2, 4], 'then both go, in order');
});

t.test('retry-queue - a later packet of a target that is due earlier still waits for the earlier seq', async (t) => {
  // The earlier seq got the longer retry-after; its target's order still wins.
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(1, 'a'), 10, 1000);
  q.add(packet(2, 'a'), 10, 10);
  q.add(packet(3, 'b'), 10, 10);
  t.same(seqs(q.takeDue(10, always)), [3]);
  t.same(seqs(q.takeDue(1000, always)), [1, 2]);
});

t.test('retry-queue - takeDue stops at the first packet that does not fit', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(1, 'a'), 10, 0);
  q.add(packet(2, 'b'), 10, 0);
  q.add(packet(3, 'c'), 50, 0);
  q.add(packet(4, 'd'), 10, 0);
  const asked: number[] = [];
  let room = 30;
  const fits = (bytes: number): boolean => {
    asked.push(bytes);
    if (bytes > room) return false;
    room -= bytes;
    return true;
  };
  const out = q.takeDue(0, fits);
  t.same(out.map((e) => [e.packet.seq, e.bytes]), [[1, 10], [2, 10]]);
  t.same(asked, [10, 10, 50], 'nothing after the packet that did not fit is asked about, though 4 would fit');
  t.equal(q.size, 2);
  t.same(drain(q), [3, 4], 'the packet that did not fit and those after it are kept, in order');
});

t.test('retry-queue - fits is not asked about packets that are not due', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(1, 'a'), 7, 100);
  q.add(packet(2, 'b'), 8, 0);
  const asked: number[] = [];
  t.same(seqs(q.takeDue(0, (b) => (asked.push(b), true))), [2]);
  t.same(asked, [8]);
});

t.test('retry-queue - remove forgets the packets done says are done', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  for (let s = 1; s <= 6; s++) q.add(packet(s), 10, s * 10);
  q.remove((s) => s <= 2 || s === 5);
  t.equal(q.size, 3);
  t.equal(q.nextDueMs(0), 30, 'the due times of the removed packets are gone too');
  q.remove(() => false);
  t.equal(q.size, 3);
  t.same(drain(q), [3, 4, 6]);
});

t.test('retry-queue - nextDueMs is the earliest due time, or null when empty', async (t) => {
  const q = new RetryQueue(100, 1_000_000);
  t.equal(q.nextDueMs(0), null);
  q.add(packet(1, 'a'), 10, 500);
  q.add(packet(2, 'b'), 10, 200);
  q.add(packet(3, 'c'), 10, 900);
  t.equal(q.nextDueMs(0), 200, 'not the due time of the lowest seq');
  t.same(seqs(q.takeDue(200, always)), [2]);
  t.equal(q.nextDueMs(200), 500);
  q.clear();
  t.equal(q.nextDueMs(0), null);
});

t.test('retry-queue - clear empties the queue', async (t) => {
  const q = new RetryQueue(2, 1_000_000);
  q.add(packet(1), 10, 0);
  q.add(packet(2), 10, 0);
  t.equal(q.full, true);
  q.clear();
  t.equal(q.size, 0);
  t.equal(q.full, false);
  t.same(q.takeDue(Infinity, always), []);
  q.add(packet(1), 10, 0);
  t.equal(q.size, 1, 'a seq from before the clear can be added again');
});

t.test('retry-queue - nextDueMs ignores a packet held back by an earlier seq of its target', async (t) => {
  // 2 was refused with a shorter retry-after than 1 (both target a; e.g. pipelined, 2 failed first).
  const q = new RetryQueue(100, 1_000_000);
  q.add(packet(1, 'a'), 10, 1000);
  q.add(packet(2, 'a'), 10, 100);
  t.same(seqs(q.takeDue(100, always)), [], 'at 100 nothing can be taken: 2 waits for 1');
  // The link arms its retry timer for the next due time after now: a due time takeDue cannot
  // honour yet must not count, or the timer would fire at 0 ms again and again until 1000.
  t.equal(q.nextDueMs(100), 1000, 'the next time takeDue can hand something out');
});
