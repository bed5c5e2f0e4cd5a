/**
 * The DownlinkQueues contract (gateway/downlink/queue.ts) as a suite, run against every
 * implementation: `downlinkQueueContract(t, make)` where `make` opens a fresh, empty one with the
 * limits given and a clock the suite moves.
 */
import type { Test } from 'tap';
import type { DownlinkQueueLimits, DownlinkQueues, EnqueueResult } from '../../gateway/downlink/queue.js';
import { downIdPattern } from '../../protocol/frames.js';

/** A clock moved by hand; the queue's one timer (a retry of records kept from a failed write) fires when `advance` passes it. */
export class ManualClock {
  private timers: { at: number; fn: () => void }[] = [];
  constructor(public ms = 1_700_000_000_000) {}
  now = (): number => this.ms;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { at: this.ms + ms, fn };
    this.timers.push(timer);
    return timer;
  };
  clearTimeout = (timer: unknown): void => {
    this.timers = this.timers.filter((x) => x !== timer);
  };
  advance(ms: number): void {
    this.ms += ms;
    const due = this.timers.filter((x) => x.at <= this.ms);
    this.timers = this.timers.filter((x) => x.at > this.ms);
    for (const x of due) x.fn();
  }
}

export type MakeQueues = (t: Test, limits: DownlinkQueueLimits, clock: ManualClock) => Promise<DownlinkQueues>;

export const limitsDefault: DownlinkQueueLimits = { queueMessagesMax: 100, queueBytesMax: 100_000, fullPolicy: 'reject', historyMessagesMax: 100 };

const room = (messages = 100, bytes = 1_000_000, whole = true): { messages: number; bytes: number; whole: boolean } => ({ messages, bytes, whole });

function idOf(r: EnqueueResult): string {
  if (!r.ok) throw new Error(`enqueue refused: ${r.code} ${r.message}`);
  return r.id;
}

export function downlinkQueueContract(tap: Test, make: MakeQueues): void {
  const open = (t: Test, limits: Partial<DownlinkQueueLimits> = {}, clock = new ManualClock()): Promise<DownlinkQueues> => make(t, { ...limitsDefault, ...limits }, clock);
  const put = async (q: DownlinkQueues, agent: string, target: string, extra: { ttlMs?: number; data?: string } = {}): Promise<string> =>
    idOf(await q.enqueue(agent, { target, data: extra.data ?? target, ...(extra.ttlMs !== undefined ? { ttlMs: extra.ttlMs } : {}) }));

  tap.test('take returns queued messages oldest first, once, marked delivered', async (t) => {
    const q = await open(t);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await put(q, 'a', `t${i}`));
    t.ok(ids.every((id) => downIdPattern.test(id)), 'ids fit the DOWN frame pattern');
    t.equal(new Set(ids).size, 5, 'ids are unique');
    const taken = q.take('a', room(3));
    t.same(taken.map((m) => m.id), ids.slice(0, 3));
    t.same(taken.map((m) => m.target), ['t0', 't1', 't2']);
    t.same(taken.map((m) => m.bytes), [6, 6, 6], 'bytes: target + data as JSON text (packetCreditBytes)');
    t.same(q.take('a', room()).map((m) => m.id), ids.slice(3));
    t.same(q.take('a', room()), [], 'nothing is taken twice');
    t.same(q.list('a').map((m) => m.state), ['delivered', 'delivered', 'delivered', 'delivered', 'delivered']);
    t.same(q.take('b', room()), [], 'another agent has its own queue');
  });

  tap.test('take fits the room; a first message too large is taken alone only when whole', async (t) => {
    const q = await open(t);
    const big = await put(q, 'a', 'big', { data: 'x'.repeat(50) });
    const small = await put(q, 'a', 's');
    t.same(q.take('a', room(10, 20, false)), [], 'not whole: a message over the bytes room waits');
    t.same(q.take('a', room(0, 1000, true)), [], 'no message room: nothing');
    t.same(q.take('a', room(10, 20, true)).map((m) => m.id), [big], 'whole: taken alone');
    t.same(q.take('a', room(10, 4, false)).map((m) => m.id), [small], 'an exact fit is taken');
  });

  tap.test('requeue puts delivered messages back in front, in their original order', async (t) => {
    const q = await open(t);
    const [a, b, c] = [await put(q, 'x', 'a'), await put(q, 'x', 'b'), await put(q, 'x', 'c')];
    q.take('x', room(3));
    const d = await put(q, 'x', 'd');
    q.requeue('x', [c!, a!]);
    t.same(q.list('x').map((m) => [m.id, m.state]), [[a, 'queued'], [b, 'delivered'], [c, 'queued'], [d, 'queued']]);
    t.same(q.take('x', room()).map((m) => m.id), [a, c, d], 'requeued ones first, in order, then the newer one');
    q.requeue('x', [b!]);
    const e = await put(q, 'x', 'e');
    t.same(q.take('x', room()).map((m) => m.id), [b, e]);
    q.requeue('x', ['unknown', d!, d!]);
    q.requeue('y', [a!]);
    t.same(q.list('x', { state: 'queued' }).map((m) => m.id), [d], 'unknown and repeated ids are ignored, another agent cannot requeue');
  });

  tap.test('a full queue with reject refuses QUEUE_FULL and queues nothing', async (t) => {
    const q = await open(t, { queueMessagesMax: 2, queueBytesMax: 20 });
    await put(q, 'a', 'm1');
    await put(q, 'a', 'm2');
    const r = await q.enqueue('a', { target: 'm3', data: 'm3' });
    t.equal(r.ok ? null : r.code, 'QUEUE_FULL');
    t.equal(q.list('a').length, 2);
    q.take('a', room(1));
    const r2 = await q.enqueue('a', { target: 'm3', data: 'm3' });
    t.equal(r2.ok ? null : r2.code, 'QUEUE_FULL', 'a delivered message still counts');
    const bytes = await q.enqueue('b', { target: 'x', data: 'y'.repeat(15) });
    t.ok(bytes.ok);
    const over = await q.enqueue('b', { target: 'x', data: 'y'.repeat(4) });
    t.equal(over.ok ? null : over.code, 'QUEUE_FULL', 'the bytes bound');
    const huge = await q.enqueue('c', { target: 'x', data: 'y'.repeat(30) });
    t.equal(huge.ok ? null : huge.code, 'QUEUE_FULL', 'a message larger than the whole queue');
    t.match(huge.ok ? '' : huge.message, /queueBytesMax/);
    t.equal(q.list('c').length, 0);
    t.equal(q.stats().enqueued, 3);
    t.equal(q.stats().dropped, 0);
  });

  tap.test('a full queue with drop-oldest drops the oldest queued, never a delivered one', async (t) => {
    const q = await open(t, { queueMessagesMax: 3, fullPolicy: 'drop-oldest' });
    const [a, b, c] = [await put(q, 'x', 'a'), await put(q, 'x', 'b'), await put(q, 'x', 'c')];
    q.take('x', room(1));
    const d = await put(q, 'x', 'd');
    const vb = q.get('x', b!);
    t.same([vb?.state, vb?.code], ['dropped', 'DOWNLINK_DROPPED']);
    t.equal(q.get('x', a!)?.state, 'delivered', 'the delivered one stays');
    t.same(q.list('x').filter((m) => m.state === 'queued' || m.state === 'delivered').map((m) => m.id), [a, c, d]);
    t.equal(q.stats().dropped, 1);
    q.take('x', room());
    const r = await q.enqueue('x', { target: 'e', data: 1 });
    t.equal(r.ok ? null : r.code, 'QUEUE_FULL', 'only delivered ones left: refused');
    t.equal(q.stats().dropped, 1, 'and nothing dropped for it');
    const q2 = await open(t, { queueMessagesMax: 10, queueBytesMax: 10, fullPolicy: 'drop-oldest' });
    const [s1, s2] = [await put(q2, 'y', 'aa'), await put(q2, 'y', 'bb')];
    const s3 = await put(q2, 'y', 'ccc'); // 6 bytes: both older ones must go
    t.same([q2.get('y', s1!)?.state, q2.get('y', s2!)?.state, q2.get('y', s3!)?.state], ['dropped', 'dropped', 'queued'], 'as many as it takes for the bytes');
  });

  tap.test('an expired message is never taken; get and list show it expired', async (t) => {
    const clock = new ManualClock();
    const q = await open(t, {}, clock);
    const a = await put(q, 'x', 'a', { ttlMs: 100 });
    const b = await put(q, 'x', 'b');
    const c = await put(q, 'x', 'c', { ttlMs: 1000 });
    t.equal(q.get('x', a!)?.expiresAt, clock.ms + 100, 'expiresAt = queuedAt + ttlMs');
    clock.advance(100);
    t.same(q.take('x', room()).map((m) => m.id), [b, c], 'the expired one is skipped');
    const va = q.get('x', a!);
    t.same([va?.state, va?.code], ['expired', 'DOWNLINK_EXPIRED']);
    t.equal(q.stats().expired, 1);
    const d = await put(q, 'x', 'd', { ttlMs: 50 });
    clock.advance(60);
    t.equal(q.get('x', d!)?.state, 'expired', 'get shows a queued one past expiry as expired');
    const e = await put(q, 'x', 'e', { ttlMs: 10 });
    clock.advance(10);
    t.same(q.list('x', { state: 'expired' }).map((m) => m.id), [a, d, e], 'list too');
    t.same(q.take('x', room()), []);
    t.equal(q.stats().expired, 3);
  });

  tap.test('expired messages make room in a full queue', async (t) => {
    const clock = new ManualClock();
    const q = await open(t, { queueMessagesMax: 2 }, clock);
    await put(q, 'x', 'a', { ttlMs: 10 });
    await put(q, 'x', 'b', { ttlMs: 10 });
    clock.advance(10);
    t.ok((await q.enqueue('x', { target: 'c', data: 1 })).ok, 'room made by expiry, not refused');
    t.equal(q.stats().expired, 2);
  });

  tap.test('settle applies only results for messages delivered to that agent', async (t) => {
    const q = await open(t);
    const [a, b, c, d] = [await put(q, 'x', 'a'), await put(q, 'x', 'b'), await put(q, 'x', 'c'), await put(q, 'x', 'd')];
    const other = await put(q, 'y', 'o');
    q.take('x', room(3));
    q.take('y', room());
    const r = await q.settle('x', [
      { id: a!, ok: true },
      { id: b!, ok: false, code: 'DOWNLINK_NO_ROUTE', reason: 'no route for b' },
      { id: c!, ok: false, code: 'DOWNLINK_EXPIRED', reason: 'too late' },
      { id: a!, ok: false, code: 'X', reason: 'repeat' },
      { id: d!, ok: true }, // queued, not delivered
      { id: other!, ok: true }, // another agent's
      { id: 'nope', ok: true },
    ]);
    t.same(r, { applied: 3, ignored: 4 });
    t.same([q.get('x', a!)?.state, q.get('x', b!)?.state, q.get('x', c!)?.state, q.get('x', d!)?.state], ['acked', 'rejected', 'expired', 'queued']);
    t.same([q.get('x', b!)?.code, q.get('x', b!)?.reason], ['DOWNLINK_NO_ROUTE', 'no route for b']);
    t.ok(typeof q.get('x', a!)?.finishedAt === 'number', 'finishedAt set');
    t.equal(q.get('y', other!)?.state, 'delivered', 'the other agent keeps its message');
    t.equal(q.get('x', other!), undefined, 'get is per agent');
    t.same(await q.settle('x', [{ id: a!, ok: true }]), { applied: 0, ignored: 1 }, 'a final one takes no second verdict');
    t.same(await q.settle('z', [{ id: other!, ok: true }]), { applied: 0, ignored: 1 });
    const s = q.stats();
    t.same([s.acked, s.rejected, s.expired, s.ignoredResults], [1, 1, 1, 6]);
  });

  tap.test('concurrent settles of one id apply it once', async (t) => {
    const q = await open(t);
    const a = await put(q, 'x', 'a');
    q.take('x', room());
    const rs = await Promise.all([q.settle('x', [{ id: a!, ok: true }]), q.settle('x', [{ id: a!, ok: false, code: 'C', reason: 'r' }])]);
    t.same(rs.map((r) => r.applied), [1, 0]);
    t.equal(q.get('x', a!)?.state, 'acked');
  });

  tap.test('history keeps the newest historyMessagesMax final messages', async (t) => {
    const q = await open(t, { historyMessagesMax: 2 });
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await put(q, 'x', `m${i}`));
    q.take('x', room());
    for (const id of ids) await q.settle('x', [{ id, ok: true }]);
    t.same(ids.map((id) => q.get('x', id)?.state), [undefined, undefined, 'acked', 'acked']);
    t.same(q.list('x').map((m) => m.id), ids.slice(2), 'oldest first');
    const q0 = await open(t, { historyMessagesMax: 0 });
    const z = await put(q0, 'x', 'z');
    q0.take('x', room());
    await q0.settle('x', [{ id: z, ok: true }]);
    t.equal(q0.get('x', z), undefined, 'no history');
    t.equal(q0.stats().agents, 0, 'an agent with nothing kept is forgotten');
  });

  tap.test('list: live in queue order, then history oldest first; state filter and limit', async (t) => {
    const q = await open(t);
    const [a, b, c] = [await put(q, 'x', 'a'), await put(q, 'x', 'b'), await put(q, 'x', 'c')];
    q.take('x', room(2));
    await q.settle('x', [{ id: b!, ok: true }]);
    await q.settle('x', [{ id: a!, ok: true }]);
    const d = await put(q, 'x', 'd');
    t.same(q.list('x').map((m) => m.id), [c, d, b, a]);
    t.same(q.list('x', { state: 'acked' }).map((m) => m.id), [b, a]);
    t.same(q.list('x', { limit: 1 }).map((m) => m.id), [c]);
    t.same(q.list('x', { state: 'queued', limit: 5 }).map((m) => m.id), [c, d]);
    t.same(q.list('nobody'), []);
    const v = q.list('x', { state: 'queued' })[0]!;
    t.same([v.agent, v.target, v.data, v.state], ['x', 'c', 'c', 'queued']);
  });

  tap.test('onQueued is called after the message is queued; unsubscribe stops it', async (t) => {
    const q = await open(t);
    const seen: string[][] = [];
    const off = q.onQueued((agent) => seen.push([agent, ...q.take(agent, room()).map((m) => m.target)]));
    let resolvedFirst = false;
    const p = q.enqueue('x', { target: 'a', data: 1 }).then((r) => {
      resolvedFirst = seen.length === 0;
      return r;
    });
    t.ok((await p).ok);
    await new Promise((r) => setImmediate(r));
    t.ok(resolvedFirst, 'enqueue resolved before the listener ran');
    t.same(seen, [['x', 'a']], 'the listener can take the message');
    off();
    await put(q, 'x', 'b');
    await new Promise((r) => setImmediate(r));
    t.equal(seen.length, 1);
  });

  tap.test('concurrent enqueues keep call order per agent, and stats count', async (t) => {
    const q = await open(t);
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => q.enqueue(`a${i % 4}`, { target: `t${i}`, data: i })));
    t.ok(rs.every((r) => r.ok));
    for (let a = 0; a < 4; a++) {
      t.same(q.take(`a${a}`, room(100)).map((m) => m.data), Array.from({ length: 10 }, (_, k) => a + 4 * k), `agent a${a} in order`);
    }
    q.requeue('a0', q.list('a0').slice(0, 3).map((m) => m.id));
    const s = q.stats();
    t.same([s.queued, s.delivered, s.enqueued, s.agents], [3, 37, 40, 4]);
  });
}
