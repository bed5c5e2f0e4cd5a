/**
 * gateway/log-summary.ts (issue 10, case 10): the first event of a kind is logged whole, then one
 * summary line per interval with the count and samples, then a line when the storm stops.
 * Time is a FakeClock; the log writes into an array.
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';

interface Line { level: string; msg: string; code?: string; count?: number; total?: number; sampleAddresses?: string[]; sampleAgents?: string[]; address?: string }

function rig() {
  const clock = new FakeClock();
  const raw: string[] = [];
  const summary = new LogSummary({ log: createLog({ write: (l) => raw.push(l), now: () => clock.now() }), clock, intervalMs: 10_000, samplesMax: 3 });
  return { clock, summary, lines: (): Line[] => raw.map((l) => JSON.parse(l) as Line) };
}

t.test('log summary - a lone event is one whole line, and nothing follows it', async (t) => {
  const r = rig();
  r.summary.note('warn', 'session: authentication failed', 'AUTH_FAILED', { agent: 'dev-3', address: '10.0.0.1', error: 'agent dev-3 is not registered' });
  r.clock.advance(60_000);
  t.same(r.lines().map((l) => [l.level, l.msg, l.code, l.address]), [['warn', 'session: authentication failed', 'AUTH_FAILED', '10.0.0.1']]);
  t.equal(r.clock.pendingTimers, 0, 'no timer left');
});

t.test('log summary - a storm: first whole, one summary per interval with counts and samples, a stop line with the total', async (t) => {
  const r = rig();
  const note = (i: number): void => r.summary.note('warn', 'session: authentication failed', 'AUTH_FAILED', { agent: `a${i % 5}`, address: `10.0.0.${i % 4}` });
  let n = 0;
  // 1,000 events in the first interval, 500 in the second, none in the third.
  for (; n < 1000; n++) note(n);
  r.clock.advance(10_000);
  for (; n < 1500; n++) note(n);
  r.clock.advance(10_000);
  r.clock.advance(10_000);
  const lines = r.lines();
  t.same(lines.map((l) => l.msg), [
    'session: authentication failed',
    'session: authentication failed (summary)',
    'session: authentication failed (summary)',
    'session: authentication failed (stopped)',
  ]);
  t.same(lines.slice(1, 3).map((l) => l.count), [999, 500], 'counts per interval');
  t.equal(lines[3]?.total, 1500, 'the stop line has the total');
  t.equal(1 + (lines[1]?.count ?? 0) + (lines[2]?.count ?? 0), n, 'whole + summaries = every event');
  t.same(lines[1]?.sampleAddresses, ['10.0.0.1', '10.0.0.2', '10.0.0.3'], 'at most samplesMax addresses');
  t.same(lines[1]?.sampleAgents, ['a1', 'a2', 'a3']);
  t.ok(lines.every((l) => l.code === 'AUTH_FAILED'));
  // After the stop the next one is logged whole again.
  note(0);
  t.equal(r.lines().at(-1)?.msg, 'session: authentication failed');
});

t.test('log summary - kinds are counted apart: by message and by code', async (t) => {
  const r = rig();
  for (let i = 0; i < 10; i++) {
    r.summary.note('warn', 'listener: connection refused', 'GATEWAY_BUSY', { address: 'x' });
    r.summary.note('warn', 'listener: connection refused', 'CONNECTIONS_PER_ADDRESS', { address: 'y' });
    r.summary.note('info', 'session: closed', 'AUTH_FAILED', {});
  }
  r.clock.advance(10_000);
  const summaries = r.lines().filter((l) => l.msg.endsWith('(summary)')).map((l) => `${l.level} ${l.msg} ${l.code} ${l.count}`).sort();
  t.same(summaries, [
    'info session: closed (summary) AUTH_FAILED 9',
    'warn listener: connection refused (summary) CONNECTIONS_PER_ADDRESS 9',
    'warn listener: connection refused (summary) GATEWAY_BUSY 9',
  ]);
  t.equal(r.lines().length, 6, 'three whole lines, three summaries');
});

t.test('log summary - close says what is counted and stops the timers', async (t) => {
  const r = rig();
  for (let i = 0; i < 5; i++) r.summary.note('warn', 'listener: connection refused', 'TLS_FAILED', { address: 'z' });
  r.summary.close();
  t.same(r.lines().map((l) => [l.msg, l.count]), [['listener: connection refused', undefined], ['listener: connection refused (summary)', 4]]);
  t.equal(r.clock.pendingTimers, 0);
});
