/**
 * A hostile authenticated agent sends DOWN_ACK frames naming message IDs its session never
 * received. Each is ignored (the queue would ignore it too), but DOWN_ACKs take no credit: with a
 * log line per frame (10,000 frames were 1.56 MB) and no end to the session, the agent could make
 * the gateway log as fast as it sends ~30-byte frames. They go through the log summary, and past
 * more than the window ever allowed the session ends with BYE PROTOCOL_STATE. Found by the
 * security review (issue 10 case 10 on the DOWN/DOWN_ACK surface).
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { DownlinkSender, ignoredResultsMax } from '../../gateway/downlink/sender.js';
import type { DownlinkQueues } from '../../gateway/downlink/queue.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { FrameType } from '../../protocol/frames.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function rig(t: Test, window: { messages: number; bytes: number }, withSummary: boolean): { s: DownlinkSender; lines: string[]; byes: { code: string; reason: string }[] } {
  const lines: string[] = [];
  const log = createLog({ write: (l) => lines.push(l) });
  const clock = new FakeClock();
  const summary = new LogSummary({ log, clock, intervalMs: 10_000 });
  const q: DownlinkQueues = {
    enqueue: () => Promise.reject(new Error('not used')),
    get: () => undefined,
    list: () => [],
    take: () => [],
    sentRecorded: () => Promise.resolve(),
    requeue: () => undefined,
    settle: (_agent, results) => Promise.resolve({ applied: 0, ignored: results.length }),
    onQueued: () => () => undefined,
    stats: () => ({ queued: 0, delivered: 0, enqueued: 0, acked: 0, rejected: 0, expired: 0, dropped: 0, ignoredResults: 0, agents: 0, syncs: 0 }),
    close: async () => undefined,
  };
  const byes: { code: string; reason: string }[] = [];
  const s = new DownlinkSender('hostile', window, {
    queues: q, clock, log, frameBytesMax: 64 * 1024, bye: (code, reason) => void byes.push({ code, reason }), send: () => undefined,
    ...(withSummary ? { note: (level: 'info' | 'warn', msg: string, code: string, fields: Record<string, unknown>) => summary.note(level, msg, code, fields) } : {}),
  });
  t.teardown(() => {
    s.close();
    summary.close();
  });
  return { s, lines, byes };
}

const warned = (lines: string[]): number => lines.filter((l) => l.includes('DOWN_ACK names messages this session did not send')).length;

t.test('downlink sender - DOWN_ACK frames for IDs never sent cost a bounded number of log lines', async (t) => {
  const { s, lines, byes } = rig(t, { messages: 16, bytes: 1 << 20 }, false);
  const frames = 10_000;
  for (let i = 0; i < frames; i++) s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: `x${i}`, ok: true }] });
  t.ok(warned(lines) <= 20 && byes.length > 0, `${frames} bogus DOWN_ACK frames wrote ${warned(lines)} log lines (${lines.join('').length} bytes) and ended the session ${byes.length} times`);
});

t.test('downlink sender - past more ignored results than the window, the session ends once with PROTOCOL_STATE; the log has one line', async (t) => {
  const window = { messages: 40, bytes: 1 << 20 };
  const { s, lines, byes } = rig(t, window, true);
  const max = ignoredResultsMax(window);
  t.equal(max, 40, 'the bound is the window');
  for (let i = 0; i < max; i++) s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: `x${i}`, ok: true }] });
  t.same(byes, [], `${max} ignored results: the session lives on`);
  s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: 'one-more', ok: false, code: 'X', reason: 'forged' }] });
  t.equal(byes.length, 1, 'one more ends it');
  t.match(byes[0], { code: 'PROTOCOL_STATE', reason: /41 messages this session did not send/ });
  for (let i = 0; i < 1000; i++) s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: `y${i}`, ok: true }] });
  t.equal(byes.length, 1, 'what comes after the BYE is not read');
  t.equal(warned(lines), 1, `the ignored results wrote one log line, the rest are counted for the summary: ${lines.slice(0, 2).join('')}`);
});

t.test('downlink sender - a small window still allows 16 ignored results', async (t) => {
  const { s, byes } = rig(t, { messages: 1, bytes: 1 << 20 }, true);
  for (let i = 0; i < 16; i++) s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: `x${i}`, ok: true }] });
  t.same(byes, []);
  s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: 'x16', ok: true }] });
  t.equal(byes.length, 1);
});
