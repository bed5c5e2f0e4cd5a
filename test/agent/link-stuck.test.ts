/**
 * The agent's Link with a gateway that refuses its dials (issue 13, logs): the failed dials are
 * one stuck cause (common/stuck-log.ts), logged once at warn with the code, then summarised, and
 * cleared when a session opens. Time is a FakeClock; the transport is in memory.
 */
import t from 'tap';
import { Link, type LinkOptions } from '../../agent/link/link.js';
import { SegmentStore } from '../../agent/store/segment-store.js';
import { createLog } from '../../common/log.js';
import { StuckLog } from '../../common/stuck-log.js';
import { FrameType } from '../../protocol/frames.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { FakeClock } from './fixtures/fake-clock.js';
import { turn, until } from '../helpers/wait.js';

const options: LinkOptions = {
  agentId: 'pi-1', token: 'tok-1', inflightPacketsMax: 10, framePacketsMax: 10, frameBytesMax: 1_000_000,
  retryPacketsMax: 10, retryBytesMax: 1_000_000, reconnectDelayMsMin: 100, reconnectDelayMsMax: 1000,
  helloTimeoutMs: 1e9, pingIntervalMs: 1e8, peerTimeoutMs: 1e9,
};

interface Line { level: string; msg: string; code?: string; count?: number; total?: number }

t.test('link stuck - refused dials: one warn line with the code, summaries per interval, cleared when a session opens', async (t) => {
  const clock = new FakeClock();
  const raw: string[] = [];
  const log = createLog({ write: (l) => raw.push(l), now: () => clock.now(), format: 'json' });
  const lines = (): Line[] => raw.map((l) => JSON.parse(l) as Line);
  const store = await SegmentStore.open({ dir: t.testdir(), sync: 'none', clock, ackFlushMs: 1 });
  let dials = 0;
  let refuse = true;
  const transports: MemoryTransport[] = [];
  const link = new Link(options, {
    store, clock, rng: () => 0.5, log, stuck: new StuckLog({ log, clock, summaryIntervalMs: 10_000 }),
    dial: async () => {
      dials++;
      if (refuse) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7800'), { code: 'ECONNREFUSED' });
      const tr = new MemoryTransport();
      transports.push(tr);
      return tr;
    },
  });
  t.teardown(async () => {
    await link.stop();
    await store.close();
  });
  link.start();
  // 30 s of refused dials: back-off 75, 150, 300, 600 ms, then 1000 ms (half fixed, half jitter at 0.5 → 750) each.
  for (let ms = 0; ms < 30_000; ms += 50) {
    clock.advance(50);
    for (let i = 0; i < 3; i++) await turn();
  }
  t.ok(dials > 30, `the link kept dialing (${dials} dials)`);
  const refused = lines().filter((l) => l.code === 'ECONNREFUSED');
  t.same([refused[0]?.level, refused[0]?.msg], ['warn', 'link: disconnected; reconnecting'], 'the first line is a warning with the code');
  t.same(refused.slice(1).map((l) => l.msg), Array(refused.length - 1).fill('link: disconnected; reconnecting (summary)'), 'the rest are summaries');
  t.ok(refused.length <= 4, `at most one summary per 10 s (${refused.length} lines for ${dials} dials)`);
  t.equal(refused.slice(1).reduce((n, l) => n + (l.count ?? 0), 1), refused.at(-1)?.total, 'the start line and the summaries\' counts add up to the total');

  refuse = false;
  clock.advance(options.reconnectDelayMsMax);
  await until(() => transports.length > 0 && transports[0]!.sent.length > 0, 'a HELLO', 5000);
  transports[0]!.deliver({ t: FrameType.WELCOME, session: 's1', dispatchedSeq: 0, creditPackets: 10, creditBytes: 1_000_000 });
  await until(() => link.stats().state === 'connected', 'the session to open');
  const cleared = lines().find((l) => l.msg === 'link: disconnected; reconnecting (cleared)');
  t.same([cleared?.level, cleared?.code], ['info', 'ECONNREFUSED'], 'cleared once at info when the session opened');
  t.ok((cleared?.total ?? 0) >= dials - 1, 'with the count of failed dials');
});
