/**
 * The downlink sender holds a message's room in the window until the agent's answer is recorded,
 * records answers in order one write at a time, and tries a failed write again. Freeing room at
 * the DOWN_ACK let the agent answer more than its window past an answer the gateway failed to
 * record; after a restart that message came back to an agent whose answered log (a window of ids)
 * had forgotten it, and its consumer got it twice (simulator seed 300085); a failed write left its
 * message delivered for good in a session that lived on (seed 300096).
 */
import t from 'tap';
import { silentLog } from '../../common/log.js';
import { DownlinkSender, settleRetryMs } from '../../gateway/downlink/sender.js';
import type { DownlinkQueues, TakenMessage } from '../../gateway/downlink/queue.js';
import { FrameType, type DownResult, type Frame } from '../../protocol/frames.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';

interface Write {
  results: readonly DownResult[];
  resolve(): void;
  reject(err: Error): void;
}

/** Queues of `count` messages for agent a1, whose settles wait for the test to resolve or reject them. */
function fakeQueues(count: number) {
  const queued: TakenMessage[] = Array.from({ length: count }, (_, i) => ({ id: `m${i + 1}`, target: 'cmd/x', data: i + 1, queuedAt: 0, bytes: 16 }));
  const writes: Write[] = [];
  const requeued: string[][] = [];
  const q: DownlinkQueues = {
    enqueue: () => Promise.reject(new Error('not used')),
    get: () => undefined,
    list: () => [],
    take: (_agent, room) => queued.splice(0, Math.min(room.messages, queued.length)),
    sentRecorded: () => Promise.resolve(),
    requeue: (_agent, ids) => void requeued.push([...ids]),
    settle: (_agent, results) =>
      new Promise((resolve, reject) => writes.push({ results, resolve: () => resolve({ applied: results.length, ignored: 0 }), reject })),
    onQueued: () => () => undefined,
    stats: () => ({ queued: 0, delivered: 0, enqueued: 0, acked: 0, rejected: 0, expired: 0, dropped: 0, ignoredResults: 0, agents: 0, syncs: 0 }),
    close: async () => undefined,
  };
  return { q, writes, requeued };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function sender(q: DownlinkQueues, clock: FakeClock, windowMessages: number) {
  const sent: string[] = [];
  const s = new DownlinkSender('a1', { messages: windowMessages, bytes: 1 << 20 }, {
    queues: q, clock, log: silentLog, frameBytesMax: 64 * 1024, bye: () => undefined,
    send: (f: Frame) => {
      if (f.t === FrameType.DOWN) sent.push(...f.messages.map((m) => m.id));
    },
  });
  return { s, sent };
}

const ack = (...ids: string[]): { t: typeof FrameType.DOWN_ACK; results: DownResult[] } => ({ t: FrameType.DOWN_ACK, results: ids.map((id) => ({ id, ok: true as const })) });

t.test('downlink sender - room comes back only once the answer is recorded; a failed write is tried again', async (t) => {
  const clock = new FakeClock();
  const { q, writes } = fakeQueues(3);
  const { s, sent } = sender(q, clock, 1);
  await turn();
  t.same(sent, ['m1'], 'a window of one: one message out');
  s.onAck(ack('m1'));
  await turn();
  t.equal(writes.length, 1, 'the answer is being written');
  t.same(sent, ['m1'], 'no room yet: the answer is not recorded');
  writes[0]!.reject(Object.assign(new Error('disk full'), { code: 'ENOSPC' }));
  await turn();
  t.same(sent, ['m1'], 'a failed write frees no room');
  t.equal(s.outstandingMessages, 1, 'm1 still holds its place');
  clock.advance(settleRetryMs - 1);
  await turn();
  t.equal(writes.length, 1, 'not tried again before settleRetryMs');
  clock.advance(1);
  await turn();
  t.equal(writes.length, 2, 'tried again');
  t.same(writes[1]!.results.map((r) => r.id), ['m1'], 'with the same answer');
  writes[1]!.resolve();
  await turn();
  await turn();
  t.same(sent, ['m1', 'm2'], 'recorded: its room goes to the next message');
});

t.test('downlink sender - answers are written in order, one write at a time', async (t) => {
  const clock = new FakeClock();
  const { q, writes } = fakeQueues(4);
  const { s, sent } = sender(q, clock, 3);
  await turn();
  t.same(sent, ['m1', 'm2', 'm3']);
  s.onAck(ack('m1'));
  s.onAck(ack('m2'));
  s.onAck(ack('m2', 'm9'));
  await turn();
  t.equal(writes.length, 1, 'one write under way');
  t.same(writes[0]!.results.map((r) => r.id), ['m1']);
  writes[0]!.resolve();
  await turn();
  t.equal(writes.length, 2, 'the next write once the first is done');
  t.same(writes[1]!.results.map((r) => r.id), ['m2'], 'the answers that came meanwhile, each once, nothing it did not send');
  await turn();
  t.same(sent, ['m1', 'm2', 'm3', 'm4'], 'm1 recorded: one message more');
});

t.test('downlink sender - a session that ends sends back what was answered and not recorded', async (t) => {
  const clock = new FakeClock();
  const { q, writes, requeued } = fakeQueues(2);
  const { s } = sender(q, clock, 2);
  await turn();
  s.onAck(ack('m1'));
  await turn();
  writes[0]!.reject(new Error('EIO'));
  await turn();
  s.close();
  t.same(requeued, [['m1', 'm2']], 'm1 (answer not recorded) and m2 (unanswered) are queued again');
  clock.advance(settleRetryMs * 2);
  await turn();
  t.equal(writes.length, 1, 'no retry after the session ended');
});
