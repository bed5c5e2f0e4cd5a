import t from 'tap';
import { Lane, type LaneItem, type LaneOptions, type LaneRefusal } from '../../gateway/lane.js';
import type { HandlerResult } from '../../gateway/handlers/handler.js';
import { ErrorCode } from '../../protocol/errors.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const ok: HandlerResult = { ok: true };
const retry = (retryAfterMs: number): HandlerResult => ({ ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: 'broker down', retryAfterMs });
const permanent: HandlerResult = { ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED, message: 'bad payload' };

const item = (seq: number, bytes = 10): LaneItem => ({ packet: { agent: 'pi-1', seq, target: 'tele/temp', data: null, ts: 0 }, bytes });

/** Lets the lane's `.then` callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A lane over a handler whose calls the test resolves by hand, and a clock it advances by hand.
 * `started` lists the seqs handed to the handler, in call order.
 */
function harness(t: Test, opts: Partial<LaneOptions> = {}, timerSkewMs = 0) {
  const h = {
    now: 0,
    started: [] as number[],
    inHandler: 0,
    inHandlerMax: 0,
    settled: [] as [number, HandlerResult][],
    refused: [] as [number, LaneRefusal][],
    waiting: new Map<number, (r: HandlerResult) => void>(),
    lane: undefined as unknown as Lane,
    /** callbacks the lane asked to run later, with their due time */
    timers: [] as { at: number; fn: () => void }[],
    /** Moves the clock and runs the timers that came due. */
    async advance(ms: number): Promise<void> {
      h.now += ms;
      const due = h.timers.filter((x) => x.at <= h.now);
      h.timers = h.timers.filter((x) => x.at > h.now);
      for (const x of due) x.fn();
      await settle();
    },
    /** Resolves the handler call for `seq` and lets the lane react. */
    async finish(seq: number, result: HandlerResult = ok): Promise<void> {
      const resolve = h.waiting.get(seq);
      if (!resolve) throw new Error(`seq ${seq} is not in the handler`);
      h.waiting.delete(seq);
      h.inHandler--;
      resolve(result);
      await settle();
    },
    offer(seq: number, bytes?: number): LaneRefusal | null {
      return h.lane.offer(item(seq, bytes));
    },
  };
  h.lane = new Lane(
    { inflightMax: 1, slowMs: -1, queuePacketsMax: 10, bytesMax: 1_000_000, busyRetryAfterMs: 500, retriesInPlace: 0, retryInPlaceMsMax: 2000, ...opts },
    {
      run: (i) =>
        new Promise<HandlerResult>((resolve) => {
          const seq = i.packet.seq;
          t.notOk(h.waiting.has(seq), `seq ${seq} is not handed over twice at once`);
          h.started.push(seq);
          h.inHandler++;
          h.inHandlerMax = Math.max(h.inHandlerMax, h.inHandler);
          h.waiting.set(seq, resolve);
        }),
      settled: (i, r) => void h.settled.push([i.packet.seq, r]),
      refused: (i, r) => void h.refused.push([i.packet.seq, r]),
      now: () => h.now,
      // Timers may fire early or late (timerSkewMs), as real ones do; never in the instant they were set.
      later: (fn, ms) => void h.timers.push({ at: h.now + Math.max(Math.min(ms, 1), ms + timerSkewMs), fn }),
    },
  );
  return h;
}

t.test('lane - packets go to the handler in seq order, one at a time with inflightMax 1', async (t) => {
  const h = harness(t);
  for (const s of [1, 2, 3]) t.equal(h.offer(s), null, `${s} is taken`);
  t.same(h.started, [1]);
  await h.finish(1);
  t.same(h.started, [1, 2]);
  await h.finish(2);
  await h.finish(3);
  t.same(h.started, [1, 2, 3]);
  t.same(h.settled.map(([s, r]) => [s, r.ok]), [[1, true], [2, true], [3, true]]);
  t.equal(h.inHandlerMax, 1);
  t.same(h.refused, []);
});

t.test('lane - at most inflightMax packets are in the handler at once', async (t) => {
  const h = harness(t, { inflightMax: 3 });
  for (let s = 1; s <= 8; s++) t.equal(h.offer(s), null);
  t.same(h.started, [1, 2, 3], 'three handed over, the others wait');
  await h.finish(2); // verdicts may come in any order
  t.same(h.started, [1, 2, 3, 4]);
  await h.finish(1);
  await h.finish(3);
  t.same(h.started, [1, 2, 3, 4, 5, 6]);
  for (const s of [4, 5, 6, 7, 8]) await h.finish(s);
  t.same(h.started, [1, 2, 3, 4, 5, 6, 7, 8], 'handed over in seq order');
  t.same(h.settled.map(([s]) => s), [2, 1, 3, 4, 5, 6, 7, 8], 'settled in the order verdicts arrive');
  t.equal(h.inHandlerMax, 3);
  t.equal(h.lane.size, 0);
});

t.test('lane - size, bytes and idle count waiting and running packets', async (t) => {
  const h = harness(t, { inflightMax: 2 });
  t.equal(h.lane.size, 0);
  t.equal(h.lane.bytes, 0);
  t.equal(h.lane.idle, true);
  h.offer(1, 100);
  h.offer(2, 20);
  h.offer(3, 3);
  t.equal(h.lane.size, 3, 'two in the handler, one waiting');
  t.equal(h.lane.bytes, 123);
  t.equal(h.lane.idle, false);
  await h.finish(1);
  t.equal(h.lane.size, 2);
  t.equal(h.lane.bytes, 23);
  await h.finish(2);
  await h.finish(3);
  t.equal(h.lane.size, 0);
  t.equal(h.lane.bytes, 0);
  t.equal(h.lane.idle, true);
});

t.test('lane - busySinceMs is null when empty, else the last verdict or the start of the busy spell', async (t) => {
  const h = harness(t);
  t.equal(h.lane.busySinceMs, null);
  h.now = 100;
  h.offer(1);
  t.equal(h.lane.busySinceMs, 100, 'busy since the first packet came');
  h.now = 150;
  h.offer(2);
  t.equal(h.lane.busySinceMs, 100, 'a second packet does not count as progress');
  h.now = 300;
  await h.finish(1);
  t.equal(h.lane.busySinceMs, 300, 'a verdict is progress');
  h.now = 400;
  await h.finish(2);
  t.equal(h.lane.busySinceMs, null, 'empty again');
  h.now = 1000;
  h.offer(3);
  t.equal(h.lane.busySinceMs, 1000, 'a new busy spell starts now, not at the last verdict');
});

t.test('lane - a retryable failure refuses the packets behind it and later ones until it is offered again', async (t) => {
  const h = harness(t);
  h.now = 1000;
  for (const s of [5, 6, 7]) t.equal(h.offer(s), null);
  t.same(h.started, [5]);

  await h.finish(5, retry(3000)); // blocked until 4000
  t.same(h.settled, [[5, retry(3000)]], 'the failure itself goes to settled, with the handler retry-after');
  t.same(h.refused.map(([s, r]) => [s, r.code, r.retryAfterMs]), [[6, ErrorCode.TARGET_BUSY, 3000], [7, ErrorCode.TARGET_BUSY, 3000]], 'the queued packets come back with the block time');
  t.match(h.refused[0]![1].message, /HANDLER_FAILED: broker down/, 'the refusal says why');
  t.same(h.started, [5], '6 and 7 never reached the handler');
  t.equal(h.lane.size, 0);
  t.equal(h.lane.bytes, 0);
  t.equal(h.lane.idle, false, 'held seqs keep the lane from being idle');

  h.now = 2000;
  t.same(h.offer(8), { code: ErrorCode.TARGET_BUSY, message: h.refused[0]![1].message, retryAfterMs: 2000 }, 'a later packet is refused with the remaining block time');
  h.now = 2500;
  t.match(h.offer(5), { code: ErrorCode.TARGET_BUSY, retryAfterMs: 1500 }, 'the failed packet itself, offered too early, is refused again');
  t.equal(h.refused.length, 2, 'offer refusals are returned, not called back');

  h.now = 4000;
  t.match(h.offer(6), { code: ErrorCode.TARGET_BUSY }, 'after the block, 6 still may not overtake 5');
  t.same(h.started, [5]);
  t.equal(h.offer(5), null, '5 is taken once its block is over');
  t.same(h.started, [5, 5]);
  t.match(h.offer(7), { code: ErrorCode.TARGET_BUSY }, '7 may not overtake 6');
  await h.finish(5);
  t.equal(h.offer(6), null, '6 is taken in turn');
  t.same(h.started, [5, 5, 6]);
  t.equal(h.offer(7), null, '7 is taken in turn');
  t.equal(h.offer(8), null, '8 is taken in turn');
  await h.finish(6);
  await h.finish(7);
  await h.finish(8);
  t.same(h.started, [5, 5, 6, 7, 8]);
  t.equal(h.lane.idle, true);
});

t.test('lane - retryAfterMs of a refusal is at least 1', async (t) => {
  const h = harness(t);
  h.offer(1);
  h.offer(2);
  await h.finish(1, retry(100));
  h.now = 10_000; // long after the block
  t.match(h.offer(3), { retryAfterMs: 1 }, 'still held behind 1, retry at once');
});

t.test('lane - with inflightMax above 1, a failure refuses only the packets not yet handed over', async (t) => {
  const h = harness(t, { inflightMax: 2 });
  for (const s of [1, 2, 3, 4]) h.offer(s);
  t.same(h.started, [1, 2]);
  await h.finish(1, retry(1000));
  t.same(h.refused.map(([s]) => s), [3, 4]);
  t.same(h.started, [1, 2], 'nothing new is handed over while blocked');
  await h.finish(2);
  t.same(h.settled.map(([s, r]) => [s, r.ok]), [[1, false], [2, true]], 'the one already in the handler still gets its verdict');
  h.now = 1000;
  t.match(h.offer(3), { code: ErrorCode.TARGET_BUSY }, '3 waits for 1');
  t.equal(h.offer(1), null);
  t.equal(h.offer(3), null);
  t.same(h.started, [1, 2, 1, 3]);
});

t.test('lane - a permanent failure does not block the packets behind it', async (t) => {
  const h = harness(t);
  for (const s of [1, 2]) h.offer(s);
  await h.finish(1, permanent);
  t.same(h.settled, [[1, permanent]]);
  t.same(h.refused, []);
  t.same(h.started, [1, 2], '2 went to the handler right after');
  t.equal(h.offer(3), null);
  await h.finish(2);
  await h.finish(3);
  t.same(h.started, [1, 2, 3]);
  t.equal(h.lane.idle, true);
});

t.test('lane - a full queue refuses with TARGET_BUSY and the refused seq holds back later ones', async (t) => {
  const h = harness(t, { queuePacketsMax: 2, busyRetryAfterMs: 500 });
  h.now = 1000;
  for (const s of [1, 2, 3]) t.equal(h.offer(s), null, `${s} is taken`);
  t.equal(h.lane.size, 3, 'one in the handler, two waiting: the queue is full');
  const busy = h.offer(4);
  t.match(busy, { code: ErrorCode.TARGET_BUSY, retryAfterMs: 500 });
  t.match(busy!.message, /TARGET_BUSY: target tele\/temp is slow: 3 packets \(30 bytes\) wait/);
  t.equal(h.lane.size, 3, 'the refused packet is not kept');
  t.match(h.offer(5), { code: ErrorCode.TARGET_BUSY, retryAfterMs: 500 }, '5 may not overtake 4');
  await h.finish(1);
  t.same(h.started, [1, 2]);
  h.now = 1200;
  t.match(h.offer(4), { retryAfterMs: 300 }, 'room in the queue, but 4 waits out its retry-after');
  h.now = 1500;
  t.match(h.offer(5), { code: ErrorCode.TARGET_BUSY }, 'still behind 4');
  t.equal(h.offer(4), null, '4 is taken once its retry-after is over');
  t.match(h.offer(5), { code: ErrorCode.TARGET_BUSY, retryAfterMs: 500 }, 'the queue (3, 4) is full again');
  for (const s of [2, 3]) await h.finish(s);
  h.now = 2000;
  t.equal(h.offer(5), null);
  await h.finish(4);
  await h.finish(5);
  t.same(h.started, [1, 2, 3, 4, 5]);
  t.same(h.refused, [], 'the handler and the queue refused nothing themselves');
});

t.test('lane - forgetThrough lets go of held seqs up to it, not above', async (t) => {
  const h = harness(t);
  for (const s of [5, 6, 7, 8]) h.offer(s);
  await h.finish(5, retry(100));
  t.same(h.refused.map(([s]) => s), [6, 7, 8]);
  h.now = 100;
  t.match(h.offer(7), { code: ErrorCode.TARGET_BUSY }, 'the control: 7 is held behind 5 and 6');
  h.lane.forgetThrough(6); // the agent gave up on 5 and 6 (expired, dead-lettered)
  t.equal(h.lane.idle, false, '7 and 8 are still held');
  t.match(h.offer(8), { code: ErrorCode.TARGET_BUSY }, '8 is still held behind 7');
  t.equal(h.offer(7), null, '7 goes now');
  t.same(h.started, [5, 7]);
  h.lane.forgetThrough(8);
  t.equal(h.lane.idle, false, '7 is still in the handler');
  await h.finish(7);
  t.equal(h.lane.idle, true, 'nothing held, nothing running');
  t.equal(h.offer(9), null, '9 goes without 8');
});

t.test('lane - a brief retryable failure is retried in place, keeping its place and the order', async (t) => {
  const h = harness(t, { retriesInPlace: 2, retryInPlaceMsMax: 1000 });
  for (const s of [1, 2, 3]) t.equal(h.offer(s), null);
  await h.finish(1, retry(300));
  t.same(h.started, [1], 'nothing else starts while 1 waits for its retry');
  t.same(h.refused, [], 'nothing goes back to the agent');
  t.equal(h.offer(4), null, 'new packets still queue behind it');
  await h.advance(299);
  t.same(h.started, [1], 'not before the retry-after');
  await h.advance(1);
  t.same(h.started, [1, 1], '1 is tried again after its retry-after');
  await h.finish(1, retry(300));
  await h.advance(300);
  t.same(h.started, [1, 1, 1], 'and again, up to retriesInPlace');
  await h.finish(1, ok);
  for (const s of [2, 3, 4]) await h.finish(s);
  t.same(h.started, [1, 1, 1, 2, 3, 4], 'then the rest, in order');
  t.same(h.settled.map(([s, r]) => [s, r.ok]), [[1, true], [2, true], [3, true], [4, true]]);
});

t.test('lane - a failure that outlasts the retries in place goes back to the agent with the packets behind it', async (t) => {
  const h = harness(t, { retriesInPlace: 1, retryInPlaceMsMax: 1000 });
  for (const s of [1, 2]) h.offer(s);
  await h.finish(1, retry(100));
  await h.advance(100);
  await h.finish(1, retry(100));
  t.same(h.settled.map(([s]) => s), [1], '1 is settled as a retryable failure after its second attempt');
  t.same(h.refused.map(([s]) => s), [2], '2 is refused so it cannot overtake 1');
});

t.test('lane - a retry-after longer than retryInPlaceMsMax goes back to the agent at once', async (t) => {
  const h = harness(t, { retriesInPlace: 3, retryInPlaceMsMax: 1000 });
  h.offer(1);
  await h.finish(1, retry(5000));
  t.same(h.settled.map(([s]) => s), [1]);
  t.same(h.started, [1]);
});

t.test('lane - a lane holding its byte share refuses more with TARGET_BUSY, but always takes one packet', async (t) => {
  const h = harness(t, { bytesMax: 100 });
  t.equal(h.offer(1, 500), null, 'a packet bigger than the share is taken when the lane is empty');
  const r = h.offer(2, 10);
  t.equal(r?.code, ErrorCode.TARGET_BUSY, 'the next one is refused while the lane holds more than its share');
  await h.finish(1);
  await h.advance(500);
  t.equal(h.offer(2, 60), null, 'after the busy retry-after and with room, it is taken');
  t.equal(h.offer(3, 60)?.code, ErrorCode.TARGET_BUSY, '60 + 60 bytes is past the share of 100');
});

t.test('lane - a lane that makes progress is not bounded by its share; a slow one is, and sheds the excess latest first', async (t) => {
  const h = harness(t, { slowMs: 100, queuePacketsMax: 2 });
  for (let s = 1; s <= 6; s++) t.equal(h.offer(s), null, `${s} is taken while the lane is not slow`);
  await h.advance(50);
  t.equal(h.lane.shed().length, 0, 'nothing is shed before slowMs');
  await h.advance(51);
  t.equal(h.offer(7)?.code, ErrorCode.TARGET_BUSY, 'a slow lane over its share refuses');
  const shed = h.lane.shed().map((i) => i.packet.seq);
  t.same(shed, [6, 5, 4], 'the slow lane gives back what it holds beyond 2 waiting, latest first');
  t.same(h.refused.map(([s]) => s), [4, 5, 6], 'each goes back to the agent with a refusal, in seq order (7 was refused by offer)');
  t.ok(h.refused.every(([, r]) => r.code === ErrorCode.TARGET_BUSY && r.retryAfterMs > 0));
  await h.finish(1);
  t.same(h.started, [1, 2], 'the lane goes on with what it kept');
  await h.advance(500);
  await h.finish(2);
  t.equal(h.offer(4), null, 'after the retry-after, and with the lane moving again, the lowest given-back seq is taken again');
  t.equal(h.offer(5), null, 'and the next');
});

t.test('lane - packets retried in place go back in seq order, ahead of the later ones, whatever order their verdicts came in', async (t) => {
  const h = harness(t, { inflightMax: 3, retriesInPlace: 2, retryInPlaceMsMax: 1000 });
  for (let s = 1; s <= 5; s++) t.equal(h.offer(s), null);
  t.same(h.started, [1, 2, 3]);
  // One broker hiccup fails all three; verdicts come in seq order, then out of it.
  await h.finish(1, retry(100));
  await h.finish(2, retry(100));
  await h.finish(3, retry(100));
  t.same(h.started, [1, 2, 3], 'nothing starts while the retry waits');
  await h.advance(100);
  t.same(h.started, [1, 2, 3, 1, 2, 3], 'retried in seq order, not reversed');
  await h.finish(3, retry(100));
  await h.finish(1, retry(100));
  await h.finish(2);
  await h.advance(100);
  t.same(h.started, [1, 2, 3, 1, 2, 3, 1, 3, 4], 'verdicts out of order: retried in seq order, then the later packet');
  for (const s of [1, 3, 4, 5]) await h.finish(s);
  t.same(h.started, [1, 2, 3, 1, 2, 3, 1, 3, 4, 5]);
  t.same(h.settled.map(([s]) => s), [2, 1, 3, 4, 5]);
  t.same(h.refused, []);
});

t.test('lane - a retry-in-place timer that fires before its deadline still retries (timers are not exact)', async (t) => {
  const h = harness(t, { retriesInPlace: 1, retryInPlaceMsMax: 1000 }, -1);
  for (const s of [1, 2]) h.offer(s);
  await h.finish(1, retry(300));
  await h.advance(299); // the timer fires here, 1 ms early
  await h.advance(1000);
  t.same(h.started, [1, 1], 'retried: the lane is not left paused with no timer');
  await h.finish(1);
  t.same(h.started, [1, 1, 2], 'and the next goes after it');
});

t.test('lane - a pause extended while a retry timer is armed is waited out, with early timers too', async (t) => {
  const h = harness(t, { inflightMax: 2, retriesInPlace: 1, retryInPlaceMsMax: 1000 }, -1);
  for (const s of [1, 2, 3]) h.offer(s);
  await h.finish(1, retry(100)); // paused until 100
  h.now = 50;
  await h.finish(2, retry(300)); // paused until 350
  await h.advance(48); // the first timer fires at 99, early, and finds the pause extended
  t.same(h.started, [1, 2], 'not before the extended pause');
  await h.advance(250);
  t.same(h.started, [1, 2], 'still paused at 348');
  await h.advance(1); // the re-armed timer fires at 349, early
  t.same(h.started, [1, 2, 1, 2], 'both retried, in seq order');
});

t.test('lane - a retry-in-place timer that fires late retries then', async (t) => {
  const h = harness(t, { retriesInPlace: 1, retryInPlaceMsMax: 1000 }, 500);
  for (const s of [1, 2]) h.offer(s);
  await h.finish(1, retry(300));
  await h.advance(300);
  t.same(h.started, [1], 'the timer has not fired yet');
  await h.advance(500);
  t.same(h.started, [1, 1], 'retried when the late timer fires');
});

t.test('lane - a closed lane hands no more packets to its handler; the ones in it still get their verdicts', async (t) => {
  const h = harness(t, { inflightMax: 2, retriesInPlace: 1, retryInPlaceMsMax: 1000 });
  for (const s of [1, 2, 3, 4]) h.offer(s, 10);
  t.same(h.started, [1, 2]);
  h.lane.close();
  t.equal(h.lane.bytes, 20, 'the waiting packets no longer count');
  await h.finish(1);
  await h.finish(2, retry(100));
  await h.advance(1000);
  t.same(h.started, [1, 2], '3 and 4 never reach the handler, nor is 2 retried in place');
  t.same(h.settled.map(([s, r]) => [s, r.ok]), [[1, true], [2, false]], 'the verdicts still come');
  t.equal(h.lane.size, 0);
  t.equal(h.lane.bytes, 0);
});

t.test('lane - with a pipelining handler, a packet whose earlier one went back to the agent is not retried in place before it (found by the simulator, seed 1256)', async (t) => {
  const h = harness(t, { inflightMax: 4, retriesInPlace: 3, retryInPlaceMsMax: 1000 });
  t.equal(h.offer(1), null);
  t.equal(h.offer(2), null);
  t.equal(h.offer(3), null);
  t.same(h.started, [1, 2, 3]);
  await h.finish(1, retry(1500)); // too long to wait here: back to the agent
  await h.finish(2, retry(100)); // short: would be retried in place, ahead of 1
  await h.advance(200);
  t.same(h.started, [1, 2, 3], '2 is not handed over again while 1 is with the agent');
  t.same(h.refused.map(([seq]) => seq), [2], '2 goes back to the agent too, behind 1');
  await h.finish(3, ok);
  t.not(h.offer(4), null, 'a later packet is refused while 1 is held');
  t.same(h.started, [1, 2, 3]);
});

t.test('lane - a held seq found dispatched elsewhere no longer holds back the target (found by review)', async (t) => {
  const h = harness(t, { retriesInPlace: 0 });
  t.equal(h.offer(1), null);
  await h.finish(1, retry(100)); // back to the agent: 1 is held
  await h.advance(200);
  t.not(h.offer(2), null, '2 waits behind 1');
  h.lane.settledElsewhere(1); // 1 came back and another session had dispatched it
  await h.advance(600);
  t.equal(h.offer(2), null, '2 goes on');
});
