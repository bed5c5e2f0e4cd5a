/**
 * Security review (issue 10 case 10 on a new surface, DOWN/DOWN_ACK): a hostile authenticated agent
 * sends DOWN_ACK frames naming message IDs its session never received. Each is ignored (right), but
 * each frame writes one warn line (gateway/downlink/sender.ts DownlinkSender.onAck), with no summary
 * and no end to the session: DOWN_ACK frames take no credit, so the agent can make the gateway log
 * as fast as it can send ~30-byte frames. Refusals from strangers go through LogSummary; this one
 * should too (or end the session with a code after a few). Expected here: 10,000 such frames cost a
 * bounded number of log lines.
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { DownlinkSender } from '../../gateway/downlink/sender.js';
import type { DownlinkQueues } from '../../gateway/downlink/queue.js';
import { FrameType } from '../../protocol/frames.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';

t.test('downlink sender - DOWN_ACK frames for IDs never sent cost a bounded number of log lines', async (t) => {
  const lines: string[] = [];
  const log = createLog({ write: (l) => lines.push(l) });
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
  let byes = 0;
  const s = new DownlinkSender('hostile', { messages: 16, bytes: 1 << 20 }, {
    queues: q, clock: new FakeClock(), log, frameBytesMax: 64 * 1024, bye: () => void byes++, send: () => undefined,
  });
  t.teardown(() => s.close());
  const frames = 10_000;
  for (let i = 0; i < frames; i++) s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: `x${i}`, ok: true }] });
  const warned = lines.filter((l) => l.includes('DOWN_ACK names messages this session did not send')).length;
  t.ok(warned <= 10 || byes > 0, `${frames} bogus DOWN_ACK frames wrote ${warned} log lines (${lines.join('').length} bytes) and ended the session ${byes} times`);
});
