import t from 'tap';
import { AckWaiters, type SendVerdict } from '../../agent/ack-waiters.js';
import { FakeClock } from './fixtures/fake-clock.js';

function setup(over: { lastSeq?: number; done?: Set<number>; letters?: Map<number, { code: string; message: string }>; waitersMax?: number } = {}) {
  const clock = new FakeClock();
  const done = over.done ?? new Set<number>();
  const letters = over.letters ?? new Map();
  const w = new AckWaiters({ waitersMax: over.waitersMax ?? 8, waitMsMax: 60_000 }, {
    clock, lastSeq: () => over.lastSeq ?? 10, isDone: (s) => done.has(s), refusalOf: async (s) => letters.get(s),
  });
  return { clock, w, done };
}

const settled = async <T>(p: Promise<T>): Promise<T | 'pending'> => Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);

t.test('ack-waiters - an ack answers the waits in its range, and only those', async (t) => {
  const { w } = setup();
  const a = w.wait(3, 1000);
  const b = w.wait(7, 1000);
  w.acked(1, 5);
  t.same(await settled(a), { acked: true });
  t.equal(await settled(b), 'pending', 'seq 7 is not in 1..5');
  w.acked(7, 7);
  t.same(await b, { acked: true });
  t.equal(w.size, 0);
});

t.test('ack-waiters - a dead letter being written wins over a cumulative ack that covers it', async (t) => {
  const { w } = setup();
  const p = w.wait(4, 1000);
  w.refusalStarted(4);
  w.acked(1, 9);
  t.equal(await settled(p), 'pending', 'the ack is not the verdict');
  w.refused(4, 'UNKNOWN_TARGET', 'no route');
  t.same(await p, { acked: false, refusal: { code: 'UNKNOWN_TARGET', message: 'no route' } } satisfies SendVerdict);
});

t.test('ack-waiters - a seq done before the wait answers at once: acked, or the dead letter', async (t) => {
  const { w } = setup({ done: new Set([2, 3]), letters: new Map([[3, { code: 'DATA_TOO_LARGE', message: 'big' }]]) });
  t.same(await settled(w.wait(2, 1000)), { acked: true });
  t.same(await settled(w.wait(3, 1000)), { acked: false, refusal: { code: 'DATA_TOO_LARGE', message: 'big' } });
  t.equal(w.size, 0, 'nothing kept');
});

t.test('ack-waiters - time-out, limit, unknown seq and failAll each answer with their code', async (t) => {
  const { w, clock } = setup({ waitersMax: 2 });
  const a = w.wait(5, 1000);
  const b = w.wait(6, 5000);
  await t.rejects(w.wait(7, 1000), { code: 'SEND_WAITERS_FULL' }, 'over waitersMax');
  await t.rejects(w.wait(11, 1000), { code: 'LOCAL_REQUEST_INVALID' }, 'above lastSeq');
  await t.rejects(w.wait(5, 120_000), { code: 'LOCAL_REQUEST_INVALID' }, 'over waitMsMax');
  clock.advance(1000);
  await t.rejects(a, { code: 'SEND_WAIT_TIMEOUT' });
  t.equal(w.size, 1, 'the timed-out wait is gone');
  w.failAll(Object.assign(new Error('x'), { code: 'SHUTDOWN' }) as never);
  await t.rejects(b, { code: 'SHUTDOWN' });
  t.equal(w.size, 0);
});

t.test('ack-waiters - a wait whose client went away ends at once and gives its slot back', async (t) => {
  const { w } = setup({ waitersMax: 1 });
  const gone = new AbortController();
  const a = w.wait(3, 60_000, gone.signal);
  await t.rejects(w.wait(4, 1000), { code: 'SEND_WAITERS_FULL' }, 'the one slot is taken');
  gone.abort();
  await t.rejects(a, { code: 'SEND_WAIT_TIMEOUT', message: /given up by its client/ });
  t.equal(w.size, 0, 'no wait is left');
  const b = w.wait(4, 1000);
  w.acked(1, 4);
  t.same(await b, { acked: true }, 'the slot serves the next client');
  const already = new AbortController();
  already.abort();
  await t.rejects(w.wait(5, 1000, already.signal), { code: 'SEND_WAIT_TIMEOUT' }, 'a client gone before its wait began waits for nothing');
  t.equal(w.size, 0);
});
